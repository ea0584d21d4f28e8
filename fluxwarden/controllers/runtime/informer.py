"""List and watch one kind, keep a cache, and report changes; survives 410 Gone and API restarts.

One thread per informer. A full list (at start, after ``410 Gone`` or after a broken connection)
reports every object again, so nothing changed during an outage is missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from fluxwarden.controllers.runtime.kube import Gone, Kube, KubeError, Resource, key_of

logger = logging.getLogger("fluxwarden.controllers.informer")

Key = tuple[str, str]
Handler = Callable[[str, dict[str, Any], dict[str, Any] | None], None]
"""``handler(event_type, new_object, old_object_or_None)``; event types ADDED, MODIFIED, DELETED, LISTED."""


def _slim(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop ``managedFields``: half of a cached object's memory, and no reconciler reads it."""
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj


class Informer:
    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        handler: Handler | None = None,
        namespace: str | None = None,
        label_selector: str | None = None,
        watch_timeout: int = 300,
    ) -> None:
        self.kube = kube
        self.resource = resource
        self.handlers: list[Handler] = [handler] if handler else []
        self.namespace = namespace
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self.synced = threading.Event()
        self._cache: dict[Key, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add_handler(self, handler: Handler) -> None:
        """Another consumer of the same stream (one list+watch and one cache per kind and selector)."""
        self.handlers.append(handler)

    def handler(self, event_type: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        for handle in self.handlers:
            handle(event_type, new, old)

    def get(self, key: Key) -> dict[str, Any] | None:
        with self._lock:
            return self._cache.get(key)

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._cache.values())

    def _relist(self) -> str:
        items, version = self.kube.list(self.resource, self.namespace, self.label_selector)
        fresh = {key_of(obj): _slim(obj) for obj in items}
        with self._lock:
            old, self._cache = self._cache, fresh
        for key, obj in old.items():
            if key not in fresh:
                self.handler("DELETED", obj, obj)
        for key, obj in fresh.items():
            self.handler("LISTED", obj, old.get(key))
        self.synced.set()
        return version

    def _apply(self, event_type: str, obj: dict[str, Any]) -> None:
        obj = _slim(obj)
        key = key_of(obj)
        with self._lock:
            old = self._cache.get(key)
            if event_type == "DELETED":
                self._cache.pop(key, None)
            else:
                self._cache[key] = obj
        self.handler(event_type, obj, old)

    def run(self, stop: threading.Event) -> None:
        """List, then watch until ``stop``; relist on 410, back off (1s to 30s) on errors."""
        backoff = 1.0
        while not stop.is_set():
            try:
                version = self._relist()
                backoff = 1.0
                while not stop.is_set():
                    for event_type, obj in self.kube.watch(
                        self.resource, version, self.namespace, self.label_selector, self.watch_timeout
                    ):
                        version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                        if event_type != "BOOKMARK":
                            self._apply(event_type, obj)
                        if stop.is_set():
                            return
            except Gone:
                logger.info("watch of %s expired; listing again", self.resource.plural)
            except KubeError as exc:
                logger.warning("watch of %s failed, retrying in %.0fs: %s", self.resource.plural, backoff, exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
