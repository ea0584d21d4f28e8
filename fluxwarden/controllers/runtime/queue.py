"""A de-duplicating work queue with delays and per-key exponential backoff (client-go's workqueue).

Guarantees: a key is handed to one worker at a time; a key added while it is being processed is
handed out again once ``done`` is called; a key waiting for a delay keeps only its earliest time.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import deque
from collections.abc import Hashable

BACKOFF_BASE = 1.0
BACKOFF_MAX = 300.0


class WorkQueue:
    """Thread-safe; ``get`` blocks until a key is due or the queue shuts down (then returns None)."""

    def __init__(self, backoff_base: float = BACKOFF_BASE, backoff_max: float = BACKOFF_MAX) -> None:
        self._lock = threading.Condition()
        self._ready: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._due: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._sequence = 0
        self._failures: dict[Hashable, int] = {}
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._shutdown = False

    def add(self, key: Hashable) -> None:
        with self._lock:
            self._add_locked(key)

    def _add_locked(self, key: Hashable) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._due.pop(key, None)  # an immediate add supersedes a delayed one
        self._dirty.add(key)
        if key not in self._processing:
            self._ready.append(key)
            self._lock.notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._lock:
            if self._shutdown:
                return
            when = time.monotonic() + delay
            if key in self._due and self._due[key] <= when:
                return
            self._due[key] = when
            self._sequence += 1
            heapq.heappush(self._heap, (when, self._sequence, key))
            self._lock.notify()

    def add_rate_limited(self, key: Hashable) -> float:
        """Requeue after an exponential, jittered backoff; returns the delay chosen."""
        with self._lock:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay = min(self._backoff_max, self._backoff_base * 2.0**failures) * random.uniform(0.9, 1.1)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Hashable) -> None:
        """Reset the backoff of ``key`` (after a success, or when the object is gone)."""
        with self._lock:
            self._failures.pop(key, None)

    def discard(self, key: Hashable) -> None:
        """Drop a pending delayed requeue (the object was deleted)."""
        with self._lock:
            self._due.pop(key, None)
            self._failures.pop(key, None)

    def _promote_due_locked(self) -> float | None:
        """Move keys whose time has come to the ready queue; return seconds until the next one."""
        now = time.monotonic()
        while self._heap:
            when, _, key = self._heap[0]
            if self._due.get(key) != when:
                heapq.heappop(self._heap)  # superseded entry
                continue
            if when > now:
                return when - now
            heapq.heappop(self._heap)
            del self._due[key]
            self._add_locked(key)
        return None

    def get(self, timeout: float | None = None) -> Hashable | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                wait = self._promote_due_locked()
                if self._ready:
                    key = self._ready.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                if self._shutdown:
                    return None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._lock.wait(wait)

    def done(self, key: Hashable) -> None:
        with self._lock:
            self._processing.discard(key)
            if key in self._dirty:
                self._ready.append(key)
                self._lock.notify()

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown = True
            self._lock.notify_all()

    def __len__(self) -> int:
        with self._lock:
            return len(self._ready) + len(self._due)
