"""Every Alert, compiled and indexed by the namespaces it takes events from, kept current by its informer.

Reads happen on the event server's loop for every event; writes only when an Alert changes. A write
builds a new index and swaps it in whole, so a reader never sees half of one and never takes a lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from fluxwarden.controllers.notification.api import INVALID_CONFIG
from fluxwarden.controllers.notification.matching import CompiledAlert, compile_alert
from fluxwarden.controllers.runtime.events import WARNING, EventRecorder
from fluxwarden.controllers.runtime.informer import Informer
from fluxwarden.controllers.runtime.kube import key_of
from fluxwarden.tenancy.settings import Settings

logger = logging.getLogger("fluxwarden.controllers.notification")

Key = tuple[str, str]


class AlertIndex:
    def __init__(self, settings: Settings, events: EventRecorder, forget: Callable[[str], None]) -> None:
        self.settings = settings
        self.events = events
        self.forget = forget  # an Alert is gone: drop what was kept for its uid
        self._alerts: dict[Key, CompiledAlert] = {}
        self._by_namespace: dict[str, tuple[CompiledAlert, ...]] = {}
        self._writing = threading.Lock()  # the informer thread and the seeding in follow()

    def follow(self, informer: Informer) -> None:
        """Subscribe, then index what the cache already holds (a handler added late missed the first list)."""
        self._informer = informer
        informer.add_handler(self._on_event)
        for obj in informer.items():
            self._refresh(key_of(obj))

    def for_namespace(self, namespace: str) -> tuple[CompiledAlert, ...]:
        """The Alerts with a source in ``namespace`` (an event can only match those)."""
        return self._by_namespace.get(namespace, ())

    def get(self, key: Key) -> CompiledAlert | None:
        return self._alerts.get(key)

    def _on_event(self, event_type: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        self._refresh(key_of(new))

    def _refresh(self, key: Key) -> None:
        with self._writing:
            self._rebuild(key)

    def _rebuild(self, key: Key) -> None:
        obj = self._informer.get(key)  # the cache, not the event: a late seed never undoes a newer change
        alerts = dict(self._alerts)
        before = alerts.pop(key, None)
        if before is not None and (obj is None or str((obj.get("metadata") or {}).get("uid")) != before.uid):
            self.forget(before.uid)
        if obj is not None:
            if before is not None and _same(before.obj, obj):
                alerts[key] = before
            else:
                compiled = compile_alert(obj, self.settings)
                alerts[key] = compiled
                for problem in compiled.problems:
                    self.events.record(obj, WARNING, INVALID_CONFIG, problem)
        index: dict[str, list[CompiledAlert]] = {}
        for alert in alerts.values():
            for namespace in {source.namespace for source in alert.sources}:
                index.setdefault(namespace, []).append(alert)
        self._alerts, self._by_namespace = alerts, {ns: tuple(found) for ns, found in index.items()}


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Nothing matching reads changed: the spec (generation), the annotations (mode), the uid."""
    o, n = old.get("metadata") or {}, new.get("metadata") or {}
    return (o.get("uid"), o.get("generation"), o.get("annotations")) == (
        n.get("uid"),
        n.get("generation"),
        n.get("annotations"),
    )
