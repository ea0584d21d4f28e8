"""Flux's duplicate-event limit: one event per key within ``--rate-limit-interval``, then 429.

The key is Flux's (``notifier.EventKey``): the involved object's name, namespace and kind, the
message, and the ``<group>/originRevision``, ``revision`` and ``token`` metadata, each labelled, so the
same failure at a new revision is news and is not dropped.
"""

from __future__ import annotations

import hashlib
import threading
import time

from fluxwarden.controllers.notification.event import Event

_PRUNE_EVERY = 4096  # keys added between sweeps of expired ones
MAX_KEYS = 200_000  # beyond, the oldest keys go first: a flood of distinct events cannot grow it further


def event_key(event: Event) -> str:
    obj = event.involved_object
    parts = ["event", f"name={obj.name}", f"namespace={obj.namespace}", f"kind={obj.kind}", f"message={event.message}"]
    for key in ("originRevision", "revision", "token"):
        if (value := event.metadata.get(f"{obj.group}/{key}")) is not None:
            parts.append(f"{key}={value}")
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


class RateLimiter:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._seen: dict[str, float] = {}
        self._added = 0
        self._lock = threading.Lock()

    def allow(self, event: Event) -> bool:
        """True for the first event of its key in the interval (and records it); False for a duplicate."""
        if self.interval <= 0:
            return True
        key, now = event_key(event), time.monotonic()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last < self.interval:
                return False
            self._seen[key] = now
            self._added += 1
            if self._added >= _PRUNE_EVERY:
                self._added = 0
                self._seen = {k: t for k, t in self._seen.items() if now - t < self.interval}
            while len(self._seen) > MAX_KEYS:
                del self._seen[next(iter(self._seen))]
            return True

    def forget(self, event: Event) -> None:
        """Undo ``allow`` for an event that was refused later (queue full): its retry is not a duplicate."""
        with self._lock:
            self._seen.pop(event_key(event), None)
