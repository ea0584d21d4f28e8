"""Server-side apply of a build, in stages, as the tenant's service account; prune; health waits.

All calls go through the ``Kube`` it is given, which the reconciler builds impersonating
``system:serviceaccount:<namespace>:<serviceAccountName or applier>``: the API server's RBAC decides
what a tenant may change, and a refusal names the object.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

from fluxwarden.controllers.apply.drift import UNLISTED, Applied, LiveObjects, drifted, resource_version
from fluxwarden.controllers.apply.health import compute
from fluxwarden.controllers.apply.inventory import Entry
from fluxwarden.controllers.apply.takeover import SSA_ANNOTATION, Cleanup, cleanup_patch
from fluxwarden.controllers.runtime.kube import APPLY_PATCH, JSON_PATCH, Conflict, Forbidden, Kube, KubeError, NotFound
from fluxwarden.controllers.runtime.restmapper import NoMatch, RestMapper

# Flux's per-object annotations, honoured for every object applied through this module.
PRUNE_ANNOTATION = "kustomize.toolkit.fluxcd.io/prune"
RECREATE_WAIT = 30.0  # seconds ``force`` waits for the old object to go before creating it again
# Applied and waited for before the rest, so that what depends on them can be applied.
CLUSTER_DEFINITIONS = frozenset({"CustomResourceDefinition", "Namespace", "ClusterRole"})


class ApplyError(Exception):
    """An object could not be applied or deleted; ``forbidden`` when RBAC said no."""

    def __init__(self, message: str, forbidden: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.forbidden = forbidden


class PruneError(ApplyError):
    """Some objects could not be pruned; ``failed`` stay in the inventory, ``deleted`` are gone."""

    def __init__(self, message: str, failed: list[Entry], deleted: list[Change]) -> None:
        super().__init__(message)
        self.failed = failed
        self.deleted = deleted


class HealthError(Exception):
    pass


@dataclass(frozen=True)
class Change:
    entry: Entry
    action: str  # created, configured, unchanged, skipped, deleted; without repair: removed, changed

    def __str__(self) -> str:
        return f"{self.entry.display} {self.action}"


def _only_ours(obj: dict[str, Any], manager: str) -> bool:
    """Every field of ``obj`` is managed by ``manager``: our apply created it (a takeover shows others too)."""
    managers = {m.get("manager") for m in (obj.get("metadata") or {}).get("managedFields") or []}
    return managers <= {manager}


def digest(obj: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class LiveVersions(Protocol):
    """Live watches of applied objects (kustomize's ``--live-drift``): versions known without a call."""

    def version(self, entry: Entry) -> str | None: ...

    def record(self, entry: Entry, obj: dict[str, Any], owner: dict[str, str]) -> None: ...

    def forget(self, entries: list[Entry]) -> None: ...


class Applier:
    """Applies a build as one identity, repairing drift: see :mod:`.drift` for how drift is found."""

    def __init__(
        self,
        kube: Kube,
        mapper: RestMapper,
        owner: dict[str, str],
        field_manager: str,
        live_drift: LiveVersions | None = None,
        repair: bool = True,
        cleanup: Cleanup | None = None,
    ) -> None:
        if not owner:
            raise ValueError("an Applier needs the owner labels: without them a prune could delete anything")
        self.kube = kube
        self.mapper = mapper
        self.field_manager = field_manager
        self.owner = owner  # selects the live objects, and guards every prune
        self.live = LiveObjects(kube, mapper, self.owner)
        self.live_drift = live_drift  # live watches: a no-op needs no API call at all
        self.repair = repair  # False: only report drift (``removed``, ``changed``), write nothing
        self.cleanup = cleanup  # the other managers' fields taken over before an apply (see .takeover)

    def _path(self, entry: Entry) -> str:
        try:
            resource = self.mapper.resource_for(entry.api_version, entry.kind)
        except NoMatch as exc:
            raise ApplyError(f"{entry.display}: {exc}") from None
        return resource.path(entry.namespace or None, entry.name)

    def _served(self, entry: Entry) -> bool:
        try:
            self.mapper.resource_for(entry.api_version, entry.kind)
            return True
        except NoMatch:
            return False

    def apply_all(self, objects: list[dict[str, Any]], applied: dict[str, Applied], force: bool) -> list[Change]:
        """Apply cluster definitions first (and wait for them), then the rest; only what drifted is sent.

        ``applied`` maps inventory id to what the last apply left (digest and resourceVersion); it is
        updated in place as objects are applied or found unchanged.
        """
        first = [o for o in objects if o.get("kind") in CLUSTER_DEFINITIONS]
        rest = [o for o in objects if o.get("kind") not in CLUSTER_DEFINITIONS]
        changes = self._apply_stage(first, applied, force)
        if self.repair:  # a report-only pass applied nothing to wait for
            self._wait_established(first)
        return changes + self._apply_stage(rest, applied, force)

    def _apply_stage(self, objects: list[dict[str, Any]], applied: dict[str, Applied], force: bool) -> list[Change]:
        desired = [(Entry.of(o), o, digest(o)) for o in objects]
        proven = {e.id for e, _, fingerprint in desired if self._proven_by_watch(e, fingerprint, applied.get(e.id))}
        self.live.prefetch(e for e, _, _ in desired if e.id not in proven)
        return [
            Change(e, "unchanged") if e.id in proven else self.apply(o, applied, force, fingerprint)
            for e, o, fingerprint in desired
        ]

    def _proven_by_watch(self, entry: Entry, fingerprint: str, record: Applied | None) -> bool:
        """No call needed: a healthy live watch shows the version our last apply of this very object left."""
        if record is None or self.live_drift is None or record.digest != fingerprint:
            return False
        return self.live_drift.version(entry) == record.resource_version

    def _record(self, applied: dict[str, Applied], entry: Entry, fingerprint: str, obj: dict[str, Any]) -> None:
        applied[entry.id] = Applied(fingerprint, resource_version(obj))
        if self.live_drift is not None:
            self.live_drift.record(entry, obj, self.owner)

    def apply(self, obj: dict[str, Any], applied: dict[str, Applied], force: bool, fingerprint: str = "") -> Change:
        """One object: read what is live, dry-run when it may have drifted, apply only what would change."""
        entry = Entry.of(obj)
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        policy = str(annotations.get(SSA_ANNOTATION, "")).lower()
        if policy == "ignore":
            return Change(entry, "skipped")
        if not self.repair and not self._served(entry):
            return Change(entry, "removed")  # its kind is gone (a CRD deleted): so is the object
        path = self._path(entry)
        fingerprint = fingerprint or digest(obj)
        record = applied.get(entry.id)
        live = self.live.get(entry, applied_before=record is not None or not self.repair)
        taken_over = False
        if isinstance(live, dict):
            if policy == "ifnotpresent" or record == Applied(fingerprint, resource_version(live)):
                return Change(entry, "unchanged")  # never overwritten, or nobody wrote to it since our apply
            taken_over = self.repair and self._take_over(path, obj, entry, live)
            if not taken_over and not self._would_change(path, obj, entry, live):
                self._record(applied, entry, fingerprint, live)
                return Change(entry, "unchanged")
        if not self.repair:
            return Change(entry, "removed" if live is None else "changed" if isinstance(live, dict) else "unchanged")
        elif live is not None and policy == "ifnotpresent":
            return self._create_if_absent(path, obj, entry, applied, fingerprint)
        result = self._apply(path, obj, entry, force)
        action = "configured" if taken_over else self._action(live, record, result)
        if not isinstance(live, dict) and self._take_over(path, obj, entry, result):
            # seen for the first time in the apply's answer: apply again, now owning what kubectl held
            result, action = self._apply(path, obj, entry, force), "configured"
        self._record(applied, entry, fingerprint, result)
        return Change(entry, action)

    def _take_over(self, path: str, obj: dict[str, Any], entry: Entry, current: dict[str, Any]) -> bool:
        """Flux's cleanup before an apply: the fields of kubectl and the like become ours (see .takeover)."""
        patch = cleanup_patch(obj, current, self.cleanup, self.field_manager) if self.cleanup else []
        if not patch:
            return False
        query = {"fieldManager": self.field_manager}
        try:
            self.kube.request("PATCH", path, query=query, body=patch, content_type=JSON_PATCH, what=entry.display)
        except KubeError as exc:
            message = f"{entry.display} metadata.managedFields cleanup failed: {exc}"
            raise ApplyError(message, forbidden=isinstance(exc, Forbidden)) from None
        return True

    def _action(self, live: dict[str, Any] | object | None, record: Applied | None, result: dict[str, Any]) -> str:
        """What an apply did, judged against the version before it (live, else what our last apply left)."""
        if live is None or (live is UNLISTED and _only_ours(result, self.field_manager)):
            return "created"
        baseline = resource_version(live) if isinstance(live, dict) else (record.resource_version if record else "")
        return "unchanged" if resource_version(result) == baseline else "configured"

    def _create_if_absent(
        self, path: str, obj: dict[str, Any], entry: Entry, applied: dict[str, Applied], fingerprint: str
    ) -> Change:
        """``ssa: IfNotPresent`` when the live object cannot be read: a create, which never overwrites."""
        collection = path.rsplit("/", 1)[0]
        try:
            created = self.kube.request("POST", collection, body=obj, what=entry.display)
        except Conflict:
            return Change(entry, "unchanged")
        except KubeError as exc:
            raise ApplyError(str(exc), forbidden=isinstance(exc, Forbidden)) from None
        self._record(applied, entry, fingerprint, created)
        return Change(entry, "created")

    def _would_change(self, path: str, obj: dict[str, Any], entry: Entry, live: dict[str, Any]) -> bool:
        """A server-side dry-run of the apply, compared with the live object (Flux's drift check)."""
        query = {"fieldManager": self.field_manager, "force": "true", "dryRun": "All"}
        try:
            dry = self.kube.request("PATCH", path, query=query, body=obj, content_type=APPLY_PATCH, what=entry.display)
        except KubeError:
            return True  # the real apply reports (or, with force, handles) the same error
        return drifted(live, dry)

    def _apply(self, path: str, obj: dict[str, Any], entry: Entry, force: bool) -> dict[str, Any]:
        query = {"fieldManager": self.field_manager, "force": "true"}
        try:
            return self.kube.request("PATCH", path, query=query, body=obj, content_type=APPLY_PATCH, what=entry.display)
        except Forbidden as exc:
            raise ApplyError(str(exc), forbidden=True) from None
        except KubeError as exc:
            if not (force and exc.status == 422 and "immutable" in str(exc)):
                raise ApplyError(str(exc)) from None
            return self._recreate(path, obj, entry, query)

    def _recreate(self, path: str, obj: dict[str, Any], entry: Entry, query: dict[str, str]) -> dict[str, Any]:
        """``spec.force``: an immutable field changed, so delete the object and create it again."""
        try:
            self.kube.request("DELETE", path, query={"propagationPolicy": "Background"}, what=entry.display)
            deadline = time.monotonic() + RECREATE_WAIT
            while self._exists(path, entry):
                if time.monotonic() > deadline:  # a finalizer holds it: applying now would write to a dying object
                    raise ApplyError(f"{entry.display} is still being deleted after {RECREATE_WAIT:g}s (force)")
                time.sleep(0.2)
            return self.kube.request("PATCH", path, query=query, body=obj, content_type=APPLY_PATCH, what=entry.display)
        except KubeError as exc:
            raise ApplyError(str(exc), forbidden=isinstance(exc, Forbidden)) from None

    def _exists(self, path: str, entry: Entry) -> bool:
        try:
            self.kube.request("GET", path, what=entry.display)
            return True
        except NotFound:
            return False
        except KubeError as exc:
            raise ApplyError(str(exc), forbidden=isinstance(exc, Forbidden)) from None

    def _wait_established(self, definitions: list[dict[str, Any]], timeout: float = 60) -> None:
        crds = [o for o in definitions if o.get("kind") == "CustomResourceDefinition"]
        deadline = time.monotonic() + timeout
        for crd in crds:
            entry = Entry.of(crd)
            while True:
                state, _ = compute(self.kube.request("GET", self._path(entry), what=entry.display))
                if state == "Current":
                    break
                if time.monotonic() > deadline:
                    raise ApplyError(f"{entry.display} was not established within {timeout:g}s")
                time.sleep(0.2)
            spec = crd.get("spec") or {}
            for version in spec.get("versions") or []:
                self.mapper.forget(f"{spec.get('group')}/{version.get('name')}")

    def prune(self, entries: list[Entry]) -> list[Change]:
        """Delete what left the inventory, if it still carries our owner labels and allows pruning.

        Every entry is tried; those that could not be read or deleted raise one :class:`PruneError`
        at the end, which lists them so that the caller keeps them in the inventory.
        """
        changes, failed, messages = [], [], []
        for entry in entries:
            try:
                path = self._path(entry)
            except ApplyError:
                continue  # its kind is no longer served: nothing of it can exist
            except KubeError as exc:  # discovery failed: whether it exists is unknown, so it stays listed
                failed.append(entry)
                messages.append(str(exc))
                continue
            try:
                current = self.kube.request("GET", path, what=entry.display)
                meta = current.get("metadata") or {}
                labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
                theirs = any(labels.get(k) != v for k, v in self.owner.items())
                if theirs or annotations.get(PRUNE_ANNOTATION) == "disabled":
                    continue
                if self.live_drift is not None:
                    self.live_drift.forget([entry])  # our own deletion is no drift
                self.kube.request("DELETE", path, query={"propagationPolicy": "Background"}, what=entry.display)
            except NotFound:
                continue
            except KubeError as exc:
                failed.append(entry)
                messages.append(str(exc))
                continue
            changes.append(Change(entry, "deleted"))
        if failed:
            raise PruneError("prune failed: " + "; ".join(messages), failed, changes)
        return changes

    def wait_healthy(self, entries: list[Entry], timeout: float) -> None:
        """Poll until every object is Current; fail at once on Failed, or at the timeout."""
        pending = {e.id: e for e in entries}
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while pending:
            for key, entry in list(pending.items()):
                try:
                    state, reason = compute(self.kube.request("GET", self._path(entry), what=entry.display))
                except NotFound:
                    state, reason = "InProgress", "not found"
                except (KubeError, ApplyError) as exc:
                    raise HealthError(f"{entry.display}: {exc}") from None
                if state == "Current":
                    del pending[key]
                elif state == "Failed":
                    raise HealthError(f"{entry.display} failed: {reason}")
                else:
                    states[key] = f"{entry.display} status: '{state}' ({reason})"
            if not pending:
                return
            if time.monotonic() > deadline:
                waiting = ", ".join(states[k] for k in sorted(pending) if k in states)
                raise HealthError(f"timeout waiting for: [{waiting}]")
            time.sleep(0.5)
