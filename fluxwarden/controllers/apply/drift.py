"""Drift detection: what the cluster holds now for each object of a build, and whether it drifted.

Flux reads every object and dry-runs its apply on each reconcile. This module does the same work
in fewer calls: one LIST per kind and namespace (selected by the owner labels) replaces the GETs,
and a dry-run is skipped only when the live ``resourceVersion`` is the one our last apply or
dry-run produced, which proves that nobody wrote to the object since. Anything else (a hand edit,
a deletion, another writer) is compared by a server-side dry-run, exactly as Flux does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fluxwarden.controllers.apply.inventory import Entry
from fluxwarden.controllers.runtime.kube import Kube, KubeError, NotFound
from fluxwarden.controllers.runtime.restmapper import RestMapper

# Fields a no-op apply may still report differently; they never make an object drifted.
_VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation")


@dataclass(frozen=True)
class Applied:
    """What we last applied for one object: the desired state's digest and the resulting version."""

    digest: str
    resource_version: str


UNKNOWN = object()  # the live state could not be read (e.g. RBAC forbids reading): apply blindly
UNLISTED = object()  # never applied by us, and not in its kind's labelled list: almost surely new


def resource_version(obj: dict[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without status and the metadata that changes without anyone editing the object."""
    found = copy.copy(obj)
    found.pop("status", None)
    meta = dict(found.get("metadata") or {})
    for key in _VOLATILE_METADATA:
        meta.pop(key, None)
    found["metadata"] = meta
    return found


def drifted(live: dict[str, Any], dry_run: dict[str, Any]) -> bool:
    """Would applying change ``live``? ``dry_run`` is the server's answer to a dry-run apply."""
    if (dry_run.get("metadata") or {}).get("deletionTimestamp"):
        return True
    return comparable(live) != comparable(dry_run)


class LiveObjects:
    """The live objects of one build, fetched lazily and in bulk.

    ``prefetch`` lists each (kind, namespace) once with the owner label selector. An object the
    list did not return (deleted, or its labels edited away) is read by a GET. A LIST the tenant may
    not make falls back to GETs; a GET it may not make leaves the state unknown.
    """

    def __init__(self, kube: Kube, mapper: RestMapper, owner: dict[str, str]) -> None:
        self.kube = kube
        self.mapper = mapper
        self.selector = ",".join(f"{k}={v}" for k, v in sorted(owner.items()))
        self._listed: dict[str, dict[str, dict[str, Any]]] = {}  # collection path -> name -> object

    def _collection(self, entry: Entry) -> tuple[str, str]:
        resource = self.mapper.resource_for(entry.api_version, entry.kind)
        return resource.path(entry.namespace or None), resource.path(entry.namespace or None, entry.name)

    def prefetch(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            try:
                collection, _ = self._collection(entry)
            except KubeError:
                continue  # a kind not served yet (its CRD comes with this build): nothing live
            if collection in self._listed:
                continue
            try:
                found = self.kube.request("GET", collection, query={"labelSelector": self.selector})
            except KubeError:
                continue  # forbidden or not served: per-object GETs decide
            items = [i for i in found.get("items") or [] if isinstance(i, dict)]
            for item in items:  # a list leaves kind and apiVersion off its items; a dry-run answer has them
                item.setdefault("apiVersion", entry.api_version)
                item.setdefault("kind", entry.kind)
            self._listed[collection] = {str(i["metadata"]["name"]): i for i in items}

    def get(self, entry: Entry, applied_before: bool = True) -> dict[str, Any] | object | None:
        """The live object, None when it does not exist, or ``UNKNOWN`` when it cannot be read.

        An object we never applied that its kind's labelled list does not hold is ``UNLISTED``: a
        GET would almost always answer 404, and the apply that follows tells a takeover apart.
        """
        try:
            collection, path = self._collection(entry)
        except KubeError:
            return None
        listed = self._listed.get(collection)
        if listed is not None and entry.name in listed:
            return listed[entry.name]
        if listed is not None and not applied_before:
            return UNLISTED
        try:
            return self.kube.request("GET", path, what=entry.display)
        except NotFound:
            return None
        except KubeError:  # forbidden, or the API failing: the apply that follows says which
            return UNKNOWN
