"""Live drift detection (``--live-drift``): metadata-only watches of every kind the controller applied.

Beyond Flux, which finds drift only at the next interval. Each applied kind gets one cluster-wide
watch, selected by the owner label, carrying metadata only. An object that is deleted, or written
by someone else (its resourceVersion is not the one our apply left), queues its Kustomization at
once. The same cache proves a no-op reconcile without any API call: an object whose live
resourceVersion is the one recorded after our apply cannot have drifted.

Rights this adds to the controller's own account: ``list`` and ``watch`` on every kind that
Kustomizations apply (in practice ``*/*``), cluster-wide.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fluxwarden.controllers.apply.inventory import Entry
from fluxwarden.controllers.kustomize.api import NAME_LABEL, NAMESPACE_LABEL
from fluxwarden.controllers.runtime.informer import Informer
from fluxwarden.controllers.runtime.kube import Kube, KubeError, Resource
from fluxwarden.controllers.runtime.metadata import MetadataKube
from fluxwarden.controllers.runtime.restmapper import RestMapper

logger = logging.getLogger("fluxwarden.controllers.kustomize")

Enqueue = Callable[[tuple[str, str]], None]


@dataclass(frozen=True)
class Seen:
    """The metadata our apply left: enough to tell a hand edit from a status write by a controller."""

    resource_version: str
    generation: int | None  # None: the kind keeps no generation (ConfigMap, Secret): any write counts
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    owner: tuple[str, str] = ("", "")  # the Kustomization that applied it (not read back from its labels)

    @classmethod
    def of(cls, obj: dict[str, Any], owner: tuple[str, str] = ("", "")) -> Seen:
        meta = obj.get("metadata") or {}
        generation = meta.get("generation")
        return cls(
            str(meta.get("resourceVersion") or ""),
            int(generation) if generation else None,
            tuple(sorted((meta.get("labels") or {}).items())),
            tuple(sorted((meta.get("annotations") or {}).items())),
            owner,
        )

    def changed_by(self, live: dict[str, Any]) -> bool:
        """Did ``live`` (metadata) change what we apply? A spec edit moves the generation; a status write does not."""
        now = Seen.of(live)
        if now.resource_version == self.resource_version:
            return False
        if self.generation is None or now.generation is None:
            return True
        return (now.generation, now.labels, now.annotations) != (self.generation, self.labels, self.annotations)


class LiveDrift:
    """One metadata informer per applied kind, started on first use; thread-safe."""

    def __init__(self, kube: Kube, mapper: RestMapper, watch_timeout: int = 300) -> None:
        self.kube = MetadataKube(kube.api)
        self.mapper = mapper
        self.watch_timeout = watch_timeout
        self._informers: dict[tuple[str, str], Informer] = {}  # (group, plural) -> informer
        self._recorded: dict[str, Seen] = {}  # inventory id -> what our last apply left
        self._lock = threading.Lock()
        self._enqueue: Enqueue | None = None
        self._stop: threading.Event | None = None

    def bind(self, enqueue: Enqueue, stop: threading.Event) -> None:
        """The runtime's queue and stop signal; nothing is watched before this is called."""
        self._enqueue, self._stop = enqueue, stop

    def _informer(self, entry: Entry) -> Informer | None:
        try:
            api = self.mapper.resource_for(entry.api_version, entry.kind)
        except KubeError:
            return None
        key = (api.group, api.plural)
        with self._lock:
            found = self._informers.get(key)
            if found is not None or self._stop is None:
                return found
            resource = Resource(api.group, api.version, api.plural, api.kind)
            found = Informer(self.kube, resource, self._handler(resource), None, NAME_LABEL, self.watch_timeout)
            self._informers[key] = found
        threading.Thread(target=found.run, args=(self._stop,), name=f"live-{api.plural}", daemon=True).start()
        return found

    def record(self, entry: Entry, obj: dict[str, Any], owner: dict[str, str]) -> None:
        """What our apply (or a clean dry-run) for ``owner`` (its owner labels) left; starts watching its kind."""
        with self._lock:
            self._recorded[entry.id] = Seen.of(obj, (owner.get(NAMESPACE_LABEL, ""), owner.get(NAME_LABEL, "")))
        self._informer(entry)

    def healthy(self) -> bool:
        """Every live watch listed and watching (``/readyz``): a stale cache must not prove a no-op."""
        with self._lock:
            informers = list(self._informers.values())
        return all(informer.healthy() for informer in informers)

    def version(self, entry: Entry) -> str | None:
        """The live resourceVersion from the watch cache; None unless that watch is healthy and has it."""
        informer = self._informer(entry)
        if informer is None or not informer.healthy():
            return None
        found = informer.get((entry.namespace, entry.name))
        return str(found["metadata"].get("resourceVersion") or "") if found else None

    def _handler(self, resource: Resource) -> Callable[[str, dict[str, Any], dict[str, Any] | None], None]:
        def on_event(event_type: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
            if self._enqueue is None:
                return
            meta = new.get("metadata") or {}
            entry = Entry(str(meta.get("namespace") or ""), str(meta.get("name")), resource.group, resource.kind)
            with self._lock:
                expected = self._recorded.get(entry.id)
            if expected is None or not all(expected.owner):
                return  # not applied by this process (yet): its Kustomization's next reconcile decides
            # An object whose owner label is edited away leaves the labelled watch: it arrives as DELETED.
            if event_type != "DELETED" and not expected.changed_by(new):
                return  # our own apply, or a write that leaves what we apply alone (status)
            logger.info("%s %s by someone else: reconciling Kustomization %s/%s", entry.display,
                        event_type.lower(), *expected.owner)  # fmt: skip
            self._enqueue(expected.owner)

        return on_event

    def forget(self, entries: list[Entry]) -> None:
        """Entries no longer applied (pruned, or their Kustomization deleted): their events are ignored."""
        with self._lock:
            for entry in entries:
                self._recorded.pop(entry.id, None)
