"""``alertmanager``: a list of one ``firing`` alert (Alertmanager API v2 ``POST /api/v2/alerts``):
metadata as labels plus alertname/severity/reason/kind/name/namespace/reportingcontroller, the message
(and ``summary``) as annotations, ``startsAt`` the event's time; Basic auth or a Bearer token."""

from __future__ import annotations

import base64
import datetime
from typing import Any

from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.notification.providers.request import JSON_TYPE, Request, json_body
from fluxwarden.controllers.notification.providers.target import Target


def title(text: str) -> str:
    """Go's cases.Title(language.Und): each word's first letter upper, the rest lower."""
    return " ".join(word[:1].upper() + word[1:].lower() for word in text.split(" "))


def starts_at(timestamp: str) -> str:
    """RFC 3339 to the second, as Flux's AlertManagerTime; now when the event has no time."""
    try:
        when = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        when = datetime.datetime.now(datetime.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    text = when.replace(microsecond=0).isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def alerts(event: Event) -> list[dict[str, Any]]:
    labels = {k: v for k, v in event.metadata.items() if k != "summary"}
    obj = event.involved_object
    labels |= {
        "alertname": "Flux" + obj.kind + title(event.reason),
        "severity": event.severity,
        "reason": event.reason,
        "kind": obj.kind,
        "name": obj.name,
        "namespace": obj.namespace,
        "reportingcontroller": event.reporting_controller,
    }
    annotations = {"message": event.message}
    if "summary" in event.metadata:
        annotations["summary"] = event.metadata["summary"]
    return [{"status": "firing", "labels": labels, "annotations": annotations, "startsAt": starts_at(event.timestamp)}]


def build(target: Target, event: Event) -> Request:
    headers = {"Content-Type": JSON_TYPE}
    if target.username and target.password:  # Flux: Basic auth replaces the Bearer token when both are set
        pair = base64.b64encode(f"{target.username}:{target.password}".encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
    elif target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    return Request("POST", target.address, headers, json_body(alerts(event)), credentials=frozenset({"Authorization"}))
