"""A Flux event as the controllers post it (``fluxcd/pkg/apis/event/v1beta1``): parsed, checked, cleaned.

``parse`` turns a request body into an :class:`Event` or raises :class:`BadEvent` with a one-line
reason (the event server answers 400 with it). ``Event.body()`` is the JSON that generic providers
send on, with Flux's field names.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from fluxwarden.controllers.notification.api import EVENT_GROUP

SEVERITIES = ("info", "error", "trace")  # trace: Flux's controllers use it for notification-only events
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")  # DNS-1123 subdomain (and so label)
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}")
_API_VERSION = re.compile(r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?v[0-9a-z]{1,20}")
_REFERENCE_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")


class BadEvent(ValueError):
    """The body is not a Flux event; the message names the field."""


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    api_version: str = ""
    resource_version: str = ""
    field_path: str = ""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""

    def body(self) -> dict[str, str]:
        values = (self.kind, self.namespace, self.name, self.uid, self.api_version, self.resource_version)
        names = _REFERENCE_FIELDS[:6]
        return {k: v for k, v in zip(names, values, strict=True) if v} | (
            {"fieldPath": self.field_path} if self.field_path else {}
        )


@dataclass(frozen=True)
class Event:
    involved_object: ObjectRef
    severity: str
    timestamp: str
    message: str
    reason: str
    metadata: dict[str, str] = field(default_factory=dict)
    reporting_controller: str = ""
    reporting_instance: str = ""

    def body(self) -> dict[str, Any]:
        """Flux's JSON shape (what a generic provider posts)."""
        out: dict[str, Any] = {
            "involvedObject": self.involved_object.body(),
            "severity": self.severity,
            "timestamp": self.timestamp,
            "message": self.message,
            "reason": self.reason,
        }
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        out["reportingController"] = self.reporting_controller
        if self.reporting_instance:
            out["reportingInstance"] = self.reporting_instance
        return out

    def without_internal(self) -> Event:
        """The event without ``<group>/token``, which only feeds the rate-limit key (as Flux)."""
        token = f"{self.involved_object.group}/token"
        if token not in self.metadata:
            return self
        return replace(self, metadata={k: v for k, v in self.metadata.items() if k != token})

    def meta(self, key: str) -> str | None:
        """A metadata value by its short name (``revision``): under the object's group or Flux's event group."""
        for prefix in (self.involved_object.group, EVENT_GROUP):
            if prefix and (value := self.metadata.get(f"{prefix}/{key}")) is not None:
                return value
        return self.metadata.get(key)


def parse(body: bytes) -> Event:
    """The event in ``body``, metadata cleaned as Flux's event server does."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise BadEvent("the body nests too deeply to be a Flux event") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadEvent(f"the body is not JSON ({_short(exc)}); post a Flux event") from None
    if not isinstance(data, dict):
        raise BadEvent("the body is not a JSON object; post a Flux event")
    involved = data.get("involvedObject")
    if not isinstance(involved, dict):
        raise BadEvent("involvedObject is missing or not an object")
    ref = {name: _string(involved, name, "involvedObject.") for name in _REFERENCE_FIELDS}
    if not ref["kind"] or not ref["name"]:
        raise BadEvent("involvedObject needs kind and name")
    # They name API paths (matchLabels reads the object): only what Kubernetes itself accepts.
    if not _NAME.fullmatch(ref["name"]) or (ref["namespace"] and not _NAME.fullmatch(ref["namespace"])):
        raise BadEvent("involvedObject.name and .namespace must be Kubernetes object names")
    if not _KIND.fullmatch(ref["kind"]) or (ref["apiVersion"] and not _API_VERSION.fullmatch(ref["apiVersion"])):
        raise BadEvent("involvedObject.kind or .apiVersion is not a Kubernetes kind or group/version")
    severity = _string(data, "severity")
    if severity not in SEVERITIES:
        raise BadEvent(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    timestamp = _timestamp(_string(data, "timestamp"))
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise BadEvent("metadata must map strings to strings")
    obj = ObjectRef(
        kind=ref["kind"],
        name=ref["name"],
        namespace=ref["namespace"],
        uid=ref["uid"],
        api_version=ref["apiVersion"],
        resource_version=ref["resourceVersion"],
        field_path=ref["fieldPath"],
    )
    return Event(
        involved_object=obj,
        severity=severity,
        timestamp=timestamp,
        message=_string(data, "message"),
        reason=_string(data, "reason"),
        metadata=clean_metadata(obj, metadata),
        reporting_controller=_string(data, "reportingController"),
        reporting_instance=_string(data, "reportingInstance"),
    )


def clean_metadata(obj: ObjectRef, metadata: dict[str, str]) -> dict[str, str]:
    """Keep ``event.toolkit.fluxcd.io/*`` and ``<object group>/*`` keys; drop the group's checksum and digest."""
    group = f"{obj.group}/"
    dropped = {f"{group}checksum", f"{group}digest"}
    return {
        key: value
        for key, value in metadata.items()
        if key.lower() not in dropped and (key.startswith(f"{EVENT_GROUP}/") or (obj.group and key.startswith(group)))
    }


def _timestamp(text: str) -> str:
    """RFC 3339 in UTC to the second, as Flux re-marshals ``metav1.Time``; now when absent."""
    if not text:
        moment = datetime.datetime.now(datetime.UTC)
    else:
        try:
            moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise BadEvent(f"timestamp {text[:40]!r} is not RFC 3339") from None
        if moment.tzinfo is None:
            raise BadEvent(f"timestamp {text[:40]!r} has no time zone (RFC 3339 needs one)")
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _string(data: dict[str, Any], name: str, where: str = "") -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadEvent(f"{where}{name} must be a string")
    return value


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:120]
