"""Receivers by ``status.webhookPath``, kept current from the shared informer's events (Flux's field index).

A lookup reads the object from the informer's cache and checks its path again, so an entry left
behind by a race between the first fill and an event can never serve a request: at worst it is skipped.
"""

from __future__ import annotations

import threading
from typing import Any

from fluxwarden.controllers.runtime.controller import Cache, Key
from fluxwarden.controllers.runtime.kube import key_of


def path_of(obj: dict[str, Any] | None) -> str:
    return str(((obj or {}).get("status") or {}).get("webhookPath") or "")


class ReceiverIndex:
    def __init__(self) -> None:
        self._paths: dict[str, set[Key]] = {}
        self._lock = threading.Lock()

    def _add(self, path: str, key: Key) -> None:
        if path:
            self._paths.setdefault(path, set()).add(key)

    def _drop(self, path: str, key: Key) -> None:
        keys = self._paths.get(path)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._paths[path]

    def handle(self, event_type: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        """An informer handler: ADDED, MODIFIED, LISTED move the object's path; DELETED drops it."""
        key = key_of(new)
        with self._lock:
            if old is not None:
                self._drop(path_of(old), key)
            if event_type == "DELETED":
                self._drop(path_of(new), key)
            else:
                self._add(path_of(new), key)

    def fill(self, objects: list[dict[str, Any]]) -> None:
        """Index what the cache held before the handler was added."""
        with self._lock:
            for obj in objects:
                self._add(path_of(obj), key_of(obj))

    def find(self, path: str, cache: Cache) -> dict[str, Any] | None:
        """The Receiver serving ``path`` as the cache has it now; None when none does."""
        with self._lock:
            keys = sorted(self._paths.get(path, ()))
        for key in keys:
            obj = cache.get(key)
            if obj is not None and path_of(obj) == path:
                return obj
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._paths)
