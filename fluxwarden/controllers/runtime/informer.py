"""List and watch one kind, keep a cache, and report changes; survives 410 Gone, API restarts and its handlers.

One thread per informer. A full list (at start, after ``410 Gone``, a broken connection or a failed
handler) reports every object again, so nothing changed during an outage is missed.

A handler (or a watch mapper behind it) that raises is a bug: the informer logs it once, without a
traceback or the object, reports itself down (``healthy()`` is False, so ``/readyz`` fails), keeps
delivering events for the other objects, and lists again after a backoff (1 s doubling to 30 s)
until every object is delivered cleanly.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from fluxwarden.controllers.runtime.kube import Gone, Kube, KubeError, Resource, key_of

logger = logging.getLogger("fluxwarden.controllers.informer")

Key = tuple[str, str]
Handler = Callable[[str, dict[str, Any], dict[str, Any] | None], None]
"""``handler(event_type, new_object, old_object_or_None)``; event types ADDED, MODIFIED, DELETED, LISTED."""

MIN_BACKOFF = 1.0
MAX_BACKOFF = 30.0


def _slim(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop ``managedFields``: half of a cached object's memory, and no reconciler reads it."""
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj


def _where(exc: BaseException) -> str:
    """``module.py:line in function`` of the frame that raised: enough to find the bug, no traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"


def _describe(exc: BaseException) -> str:
    # The message is cut short: it is the code's own text, but it must never carry a whole object.
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text[:200]}" if text else exc.__class__.__name__


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
        self.synced = threading.Event()  # the first list is done (and the cache filled) once
        self._healthy = threading.Event()  # listed and watching, every handler call clean since
        self._failed = False  # a handler raised since the last clean list
        self._retry: dict[Key, dict[str, Any]] = {}  # objects whose event a handler failed on: deliver again
        self._cache: dict[Key, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def healthy(self) -> bool:
        """Synced, watching, and no handler failure since the last clean list (``/readyz``)."""
        return self._healthy.is_set()

    def add_handler(self, handler: Handler) -> None:
        """Another consumer of the same stream (one list+watch and one cache per kind and selector)."""
        self.handlers.append(handler)

    def handler(self, event_type: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Every handler gets the event, whatever another one does; a failure marks the informer down."""
        for handle in self.handlers:
            try:
                handle(event_type, new, old)
            except Exception as exc:  # a bug in a handler or mapper must not stop the stream
                namespace, name = key_of(new)
                if not self._failed:
                    logger.error(
                        "handler of %s events failed on %s %s/%s (%s, at %s); listing again after a backoff",
                        self.resource.kind, event_type, namespace, name, _describe(exc), _where(exc),
                    )  # fmt: skip
                self._failed = True
                self._healthy.clear()
                self._retry[key_of(new)] = new

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
        retry, self._retry = self._retry, {}
        for key, obj in {**old, **retry}.items():
            if key not in fresh:
                self.handler("DELETED", obj, obj)
                self._retry.pop(key, None)  # a deletion is delivered again once, not at every list forever
        for key, obj in fresh.items():
            # An object a handler failed on comes again as new, so the change it carried is not lost.
            self.handler("LISTED", obj, None if key in retry else old.get(key))
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
        """List, then watch until ``stop``; list again on 410, after errors and handler failures, with backoff."""
        backoff = MIN_BACKOFF
        while not stop.is_set():
            try:
                self._failed = False
                version = self._relist()
                if not self._failed:
                    backoff = MIN_BACKOFF
                    self._healthy.set()
                self._watch(version, stop, backoff)
                if self._failed:
                    backoff = min(backoff * 2, MAX_BACKOFF)
            except Gone:
                logger.info("watch of %s expired; listing again", self.resource.plural)
            except Exception as exc:  # KubeError: the API; anything else: a bug here, never the end of the thread
                self._healthy.clear()
                if stop.is_set():
                    return  # stopping: the watch was cut under it, nothing to report
                what = exc if isinstance(exc, KubeError) else f"{_describe(exc)} at {_where(exc)}"
                logger.warning("watch of %s failed, retrying in %.0fs: %s", self.resource.plural, backoff, what)
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _watch(self, version: str, stop: threading.Event, backoff: float) -> None:
        """Watch from ``version`` until ``stop``, or until ``backoff`` after a handler failed.

        After a failure the events keep flowing, so one bad object holds back no other, in watches
        that end when the backoff has passed; then the caller lists again.
        """
        relist_at: float | None = None
        while not stop.is_set():
            if self._failed and relist_at is None:
                relist_at = time.monotonic() + backoff
            timeout = self.watch_timeout
            if relist_at is not None:
                remaining = relist_at - time.monotonic()
                if remaining <= 0:
                    return
                timeout = max(1, math.ceil(remaining))
            events = self.kube.watch(self.resource, version, self.namespace, self.label_selector, timeout)
            try:
                for event_type, obj in events:
                    version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                    if event_type != "BOOKMARK":
                        self._apply(event_type, obj)
                    if stop.is_set() or (self._failed and relist_at is None):
                        break  # stopping, or the first failure: go on in watches bounded by the backoff
            finally:
                events.close()
