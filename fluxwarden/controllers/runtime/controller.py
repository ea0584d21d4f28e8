"""What a controller is to the runtime: a kind, a finalizer, and reconcile/finalize functions."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fluxwarden.controllers.runtime.conditions import is_true as is_ready
from fluxwarden.controllers.runtime.events import EventRecorder
from fluxwarden.controllers.runtime.kube import Kube, KubeError, Resource, key_of

Key = tuple[str, str]


@dataclass(frozen=True)
class Success:
    """A reconcile that did its work: the Ready reason and message, and an optional early requeue."""

    message: str
    reason: str = "Succeeded"
    requeue_after: float | None = None  # None: at spec.interval


class Cache(Protocol):
    """An informer's cache, read-only: objects as the watch last saw them (shared: copy before changing)."""

    synced: threading.Event

    def get(self, key: Key) -> dict[str, Any] | None: ...

    def items(self) -> list[dict[str, Any]]: ...


@dataclass
class Context:
    """What one reconcile may use besides the object; built by the runtime per call."""

    kube: Kube
    events: EventRecorder
    log: logging.LoggerAdapter[logging.Logger]
    resource: Resource | None = None
    written: dict[str, Any] = field(default_factory=dict)  # status fields written mid-reconcile
    caches: dict[Watch, Cache] = field(default_factory=dict)  # the controller's declared watches

    def cache(self, watch: Watch) -> Cache | None:
        """The cache of one of the controller's watches once it has listed; None before (read the API)."""
        found = self.caches.get(watch)
        return found if found is not None and found.synced.is_set() else None

    def progress(self, obj: dict[str, Any], fields: dict[str, Any]) -> None:
        """Write some status fields before the reconcile ends (a long helm run); best effort.

        The runtime's final status write then starts from what this wrote, so nothing is left stale.
        """
        meta = obj.get("metadata") or {}
        if self.resource is None:
            return
        try:
            self.kube.patch_status(self.resource, str(meta.get("namespace")), str(meta.get("name")), fields)
        except KubeError as exc:
            self.log.debug("progress of %s/%s not written: %s", meta.get("namespace"), meta.get("name"), exc)
            return
        self.written.update(copy.deepcopy(fields))


Mapper = Callable[[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]], list[Key]]
"""``mapper(new, old, own_objects) -> keys``: which of this controller's objects a change affects."""


@dataclass(frozen=True)
class Watch:
    """Another kind to watch, and how its changes map to this controller's objects."""

    resource: Resource
    mapper: Mapper
    label_selector: str | None = None  # watch only the objects that carry this label (values sources)
    metadata_only: bool = False  # names, labels and versions only: never a Secret's data in memory
    cluster_scoped: bool = False  # a kind without namespaces (ClusterRoleBinding): listed cluster-wide always


def artifact_revision(obj: dict[str, Any] | None) -> str | None:
    """``status.artifact.revision`` of a source, the change that dependants react to."""
    artifact = ((obj or {}).get("status") or {}).get("artifact") or {}
    revision = artifact.get("revision")
    return str(revision) if revision else None


def dependants(new: dict[str, Any], old: dict[str, Any] | None, own: list[dict[str, Any]]) -> list[Key]:
    """A :class:`Mapper` for a controller's own kind: the objects whose ``dependsOn`` names one whose
    Ready or applied revision changed (Kustomization, HelmRelease)."""

    def ready(obj: dict[str, Any] | None) -> tuple[bool, Any]:
        # Ready, and the revision it applied: a dependant waits for both (a Kustomization on the same source)
        return obj is not None and is_ready(obj), ((obj or {}).get("status") or {}).get("lastAppliedRevision")

    if ready(new) == ready(old):
        return []
    namespace, name = key_of(new)
    return [
        key_of(o)
        for o in own
        if any(
            isinstance(d, dict) and d.get("name") == name and (d.get("namespace") or key_of(o)[0]) == namespace
            for d in (o.get("spec") or {}).get("dependsOn") or []
        )
    ]


class Controller(Protocol):
    """Implement these; the runtime does list/watch, queueing, finalizers, suspend and status.

    Optional attributes: ``watches`` (a list of :class:`Watch`) and ``unsupported`` (an
    ``unsupported.Table`` of spec fields that stall the object before ``reconcile`` is called), and
    ``static(obj) -> bool``: True for an object that is only data (Flux's OCI HelmRepository), which the
    runtime leaves without a finalizer or status and never reconciles.
    """

    resource: Resource
    finalizer: str
    name: str

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        """Do the work; set detail conditions and status fields on ``obj["status"]``; raise on failure."""
        ...

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        """Clean up what this controller made for ``obj`` (it is being deleted)."""
        ...
