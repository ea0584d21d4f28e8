"""A watch on one collection (all namespaces) that records every event with the time it arrived.

A benchmark reads from it when each object first reached a state, and how many writes each object
took in a window, without polling: a poll would miss writes between two lists, and its interval
would bound the timing.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench.cluster import KubeApi
from tests.support.control_plane import ControlPlane


@dataclass(frozen=True)
class Event:
    at: float  # time.monotonic() when it arrived
    type: str  # ADDED, MODIFIED, DELETED
    key: str  # namespace/name
    obj: dict[str, Any]  # managedFields dropped


class Watcher:
    """``GET <collection>?watch=1`` from the collection's current resourceVersion, in a thread; it resumes
    from the last event seen when the apiserver ends the stream."""

    def __init__(self, plane: ControlPlane, collection: str) -> None:
        self.plane, self.collection = plane, collection
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._api: KubeApi | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch {collection}", daemon=True)

    def __enter__(self) -> Watcher:
        api = KubeApi(self.plane)
        try:
            self._version = str(api.must("GET", f"{self.collection}?limit=1")["metadata"]["resourceVersion"])
        finally:
            api.close()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        if self._api is not None and self._api.connection.sock is not None:
            with contextlib.suppress(OSError):
                self._api.connection.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._stream()
        except BaseException as exc:
            if not self._stopping.is_set():
                self.error = exc

    def _stream(self) -> None:
        self._api = api = KubeApi(self.plane, timeout=None)  # blocks until an event
        query = f"watch=1&allowWatchBookmarks=true&timeoutSeconds=3600&resourceVersion={self._version}"
        try:
            api.connection.request("GET", f"{self.collection}?{query}", headers={"Accept": "application/json"})
            response = api.connection.getresponse()
            if response.status != 200:
                raise RuntimeError(f"watch {self.collection}: HTTP {response.status}: {response.read()[:300]!r}")
            for line in response:
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    raise RuntimeError(f"watch {self.collection}: {obj.get('message')}")
                meta = obj.get("metadata") or {}
                self._version = str(meta.get("resourceVersion") or self._version)
                if event.get("type") == "BOOKMARK":
                    continue
                meta.pop("managedFields", None)
                key = f"{meta.get('namespace', '')}/{meta.get('name')}"
                with self._lock:
                    self.events.append(Event(time.monotonic(), str(event["type"]), key, obj))
        except OSError:
            if not self._stopping.is_set():
                time.sleep(0.2)  # the apiserver hung up: resume from the last version seen
        finally:
            api.close()

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"watch {self.collection} failed: {self.error}") from self.error

    def snapshot(self) -> list[Event]:
        self.check()
        with self._lock:
            return list(self.events)

    def first_times(self, since: float, done: Callable[[dict[str, Any]], bool], keys: set[str]) -> dict[str, float]:
        """Seconds from ``since`` until each of ``keys`` was first seen passing ``done`` (in an event after it)."""
        found: dict[str, float] = {}
        for event in self.snapshot():
            if event.at >= since and event.key in keys and event.key not in found and done(event.obj):
                found[event.key] = event.at - since
        return found

    def wait_all(
        self, since: float, done: Callable[[dict[str, Any]], bool], keys: set[str], timeout: float,
        alive: Callable[[], None], what: str,
    ) -> dict[str, float]:  # fmt: skip
        """``first_times`` once every key is there; raises naming ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.first_times(since, done, keys)
            if keys <= found.keys():
                return found
            alive()
            if time.monotonic() > deadline:
                missing = sorted(keys - found.keys())
                last = {k: self.last(k) for k in missing[:2]}
                raise RuntimeError(
                    f"{what}: {len(missing)} of {len(keys)} not done after {timeout:.0f}s, e.g. "
                    f"{json.dumps({k: (v or {}).get('status') for k, v in last.items()})[:1500]}"
                )
            time.sleep(0.25)

    def last(self, key: str) -> dict[str, Any] | None:
        for event in reversed(self.snapshot()):
            if event.key == key:
                return event.obj
        return None


@dataclass(frozen=True)
class Writes:
    """The MODIFIED events of a window, by what changed against the same object's previous event."""

    status: dict[str, int]  # key -> events whose status differed (beyond the ignored fields)
    ignored: int  # events whose status differed only in the ignored fields
    spec: int  # metadata.generation moved
    other: int  # neither: labels, annotations, finalizers, ...

    @property
    def status_total(self) -> int:
        return sum(self.status.values())


def writes(events: list[Event], start: float, end: float, ignore: tuple[str, ...] = ()) -> Writes:
    """Classify the MODIFIED events that arrived in [start, end); ``ignore``: status fields not counted."""
    previous: dict[str, dict[str, Any]] = {}
    status: dict[str, int] = {}
    ignored = spec = other = 0
    for event in events:
        before = previous.get(event.key)
        previous[event.key] = event.obj
        if event.type != "MODIFIED" or before is None or not start <= event.at < end:
            continue
        new, old = event.obj.get("status") or {}, before.get("status") or {}
        if new != old:
            kept_new, kept_old = ({k: v for k, v in s.items() if k not in ignore} for s in (new, old))
            if kept_new != kept_old:
                status[event.key] = status.get(event.key, 0) + 1
            else:
                ignored += 1
        elif event.obj["metadata"].get("generation") != before["metadata"].get("generation"):
            spec += 1
        else:
            other += 1
    return Writes(status, ignored, spec, other)


@contextlib.contextmanager
def watching(plane: ControlPlane, *collections: str) -> Iterator[list[Watcher]]:
    """One ``Watcher`` per collection, all stopped on the way out."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(Watcher(plane, c)) for c in collections]
