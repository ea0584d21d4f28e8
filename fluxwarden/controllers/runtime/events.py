"""Kubernetes Events and Flux event posts (``--events-addr``) for one controller.

Identical events for the same object within ``DEDUP_SECONDS`` are sent once, so a failing object
retried with backoff does not flood the API server or the notification controller.
"""

from __future__ import annotations

import datetime
import logging
import socket
import threading
import time
import uuid
from typing import Any

from kubernetes import client

from fluxwarden.controllers.runtime.event_poster import EventPoster
from fluxwarden.controllers.runtime.kube import Kube, KubeError

logger = logging.getLogger("fluxwarden.controllers.events")

DEDUP_SECONDS = 300.0
EVENT_ANNOTATION_PREFIX = "event.toolkit.fluxcd.io/"
NORMAL = "Normal"
WARNING = "Warning"


class EventRecorder:
    def __init__(self, kube: Kube, controller: str, events_addr: str | None = None) -> None:
        self.kube = kube
        self.controller = controller
        self.events_addr = events_addr
        self.poster = EventPoster(events_addr) if events_addr else None
        self.instance = socket.gethostname()
        self._recent: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def _first_in_window(self, uid: str, reason: str, message: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._recent) > 10_000:
                self._recent = {k: t for k, t in self._recent.items() if now - t < DEDUP_SECONDS}
            last = self._recent.get((uid, reason, message))
            if last is not None and now - last < DEDUP_SECONDS:
                return False
            self._recent[(uid, reason, message)] = now
            return True

    def record(
        self, obj: dict[str, Any], type_: str, reason: str, message: str, metadata: dict[str, str] | None = None
    ) -> None:
        """Emit one event about ``obj``; failures to deliver are logged, never raised."""
        meta = obj.get("metadata") or {}
        if not self._first_in_window(str(meta.get("uid", "")), reason, message):
            return
        now = datetime.datetime.now(datetime.UTC)
        involved = {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=f"{meta.get('name')}.{uuid.uuid4().hex[:16]}"),
            involved_object=client.V1ObjectReference(**{_snake(k): v for k, v in involved.items()}),
            reason=reason,
            message=message,
            type=type_,
            count=1,
            first_timestamp=now,
            last_timestamp=now,
            source=client.V1EventSource(component=self.controller),
            reporting_component=self.controller,
            reporting_instance=self.instance,
        )
        try:
            self.kube.create_event(str(meta.get("namespace")), event)
        except KubeError as exc:
            logger.warning("event not recorded: %s", exc)
        if self.events_addr:
            # As Flux's recorder: the object's event.toolkit.fluxcd.io/ annotations travel as metadata.
            annotations = {
                str(k): str(v)
                for k, v in (meta.get("annotations") or {}).items()
                if str(k).startswith(EVENT_ANNOTATION_PREFIX)
            }
            self._post(involved, type_, reason, message, {**annotations, **(metadata or {})}, now)

    def _post(
        self,
        involved: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        metadata: dict[str, str],
        now: datetime.datetime,
    ) -> None:
        payload = {
            "involvedObject": involved,
            "severity": "error" if type_ == WARNING else "info",
            "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "message": message,
            "reason": reason,
            "metadata": metadata,
            "reportingController": self.controller,
            "reportingInstance": self.instance,
        }
        assert self.poster is not None
        self.poster.post(payload)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
