"""``msteams``: an Adaptive Card message for a Teams Workflows webhook (Flux's default), or the
retired Office 365 connector's MessageCard when the host ends in ``.webhook.office.com``."""

from __future__ import annotations

import urllib.parse
from typing import Any

from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.notification.providers.metadata import object_name
from fluxwarden.controllers.notification.providers.request import JSON_TYPE, Request, json_body
from fluxwarden.controllers.notification.providers.target import Target

CARD_VERSION = "1.4"  # the newest Adaptive Card schema Teams renders
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CONNECTOR_SUFFIX = ".webhook.office.com"


def connector(address: str) -> bool:
    host = urllib.parse.urlsplit(address).hostname or ""
    return host.endswith(CONNECTOR_SUFFIX)


def facts(metadata: dict[str, str]) -> list[tuple[str, str]]:
    """``summary`` first, then the rest by key (Flux's order)."""
    first = [("summary", metadata["summary"])] if "summary" in metadata else []
    return first + sorted((k, v) for k, v in metadata.items() if k != "summary")


def adaptive_card(event: Event) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "TextBlock", "text": event.message, "wrap": True}
    if event.severity == "error":
        message["color"] = "attention"
    title = {"type": "TextBlock", "text": object_name(event), "size": "large", "weight": "bolder", "wrap": True}
    fact_set = {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts(event.metadata)]}
    if not event.metadata:
        fact_set = {"type": "FactSet"}  # Go's omitempty drops an empty facts list
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": CARD_TYPE,
                "content": {
                    "$schema": CARD_SCHEMA,
                    "type": "AdaptiveCard",
                    "version": CARD_VERSION,
                    "body": [{"type": "Container", "items": [title, message, fact_set]}],
                    "msteams": {"width": "Full"},
                },
            }
        ],
    }


def message_card(event: Event) -> dict[str, Any]:
    name = object_name(event)
    return {
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": "FF0000" if event.severity == "error" else "0076D7",
        "summary": name,
        "sections": [
            {
                "activityTitle": event.message,
                "activitySubtitle": name,
                "facts": [{"name": k, "value": v} for k, v in sorted(event.metadata.items())],
            }
        ],
    }


def build(target: Target, event: Event) -> Request:
    payload = message_card(event) if connector(target.address) else adaptive_card(event)
    return Request("POST", target.address, {"Content-Type": JSON_TYPE}, json_body(payload))
