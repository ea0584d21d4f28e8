"""The Kustomization reconciler: tenancy, dependencies, source, build, apply, prune, health.

Steps, in order, each raising a reconcile error on failure:
``tenancy`` (cross-namespace source, service account) -> ``dependencies`` -> ``source`` (artifact
revision) -> ``build`` (fetch, unpack, kustomize build, substitutions; cached per input) ->
``apply`` (staged server-side apply as the tenant) -> ``prune`` -> ``health``.
Nothing is applied or pruned after a failed build, and the inventory always lists every object
applied, so a failure never orphans or loses what was there before.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fluxwarden.controllers.apply import inventory
from fluxwarden.controllers.apply.applier import Applier, ApplyError, Change, HealthError, PruneError
from fluxwarden.controllers.apply.drift import Applied
from fluxwarden.controllers.apply.redact import Redactor
from fluxwarden.controllers.apply.takeover import kustomize_cleanup
from fluxwarden.controllers.kustomize.api import (
    FIELD_MANAGER,
    FINALIZER,
    KUSTOMIZATION,
    NAME_LABEL,
    NAMESPACE_LABEL,
    SOURCE_KINDS,
    UNSUPPORTED,
    KustomizationSpec,
)
from fluxwarden.controllers.kustomize.build import BuildError, Listings, Overlay, build
from fluxwarden.controllers.kustomize.fetch import FetchError, fetch_artifact
from fluxwarden.controllers.kustomize.live import LiveDrift
from fluxwarden.controllers.kustomize.substitute import SubstitutionError, substitute, variables_from
from fluxwarden.controllers.runtime import conditions
from fluxwarden.controllers.runtime.controller import Context, Success, Watch, artifact_revision, dependants
from fluxwarden.controllers.runtime.errors import Failure, ReconcileError, Stalling, Waiting
from fluxwarden.controllers.runtime.events import NORMAL
from fluxwarden.controllers.runtime.impersonation import Impersonator
from fluxwarden.controllers.runtime.kube import Kube, KubeError, NotFound, key_of
from fluxwarden.controllers.runtime.restmapper import RestMapper
from fluxwarden.controllers.runtime.spec import mapping
from fluxwarden.tenancy import Settings, evaluate, legacy_fix
from fluxwarden.tenancy.kinds import kind_of

BUILD_CACHE_SIZE = 10_000  # Kustomizations whose last build is kept
BUILT_IN_CLUSTER_KINDS = frozenset({"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"})
TAKEOVER = kustomize_cleanup(FIELD_MANAGER)  # kubectl's fields become ours before an apply, as in Flux
DENIED_RULES = frozenset({"cross-namespace-ref", "service-account", "cross-namespace-dependency", "remote-cluster"})


@dataclass
class KustomizeOptions:
    settings: Settings = field(default_factory=Settings)
    auto_fix_legacy: bool = False
    live_drift: bool = False  # watch applied kinds (metadata only): drift repaired within seconds


class BuildCache:
    """The last build of each Kustomization (by uid) and the input it came from.

    A no-op reconcile (same artifact digest, path and overlay) reuses it instead of fetching,
    unpacking and running kustomize again. Keyed per object, not per input, so thousands of
    distinct Kustomizations never evict each other; about 32 KiB per Kustomization of 10 objects.
    """

    def __init__(self, size: int = BUILD_CACHE_SIZE) -> None:
        self._items: OrderedDict[str, tuple[str, list[dict[str, Any]]]] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, uid: str, key: str) -> list[dict[str, Any]] | None:
        with self._lock:
            found = self._items.get(uid)
            if found is None or found[0] != key:
                return None
            self._items.move_to_end(uid)
        return copy.deepcopy(found[1])

    def put(self, uid: str, key: str, objects: list[dict[str, Any]]) -> None:
        with self._lock:
            self._items[uid] = (key, copy.deepcopy(objects))
            self._items.move_to_end(uid)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def forget(self, uid: str) -> None:
        with self._lock:
            self._items.pop(uid, None)


def _owner(obj: dict[str, Any]) -> dict[str, str]:
    """The owner labels a Kustomization puts on everything it applies, and prunes only with."""
    return {NAME_LABEL: obj["metadata"]["name"], NAMESPACE_LABEL: obj["metadata"]["namespace"]}


def _crd_scopes(objects: list[dict[str, Any]]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> namespaced, for the kinds the CRDs of a build define (not served until applied)."""
    scopes = {}
    for crd in objects:
        if crd.get("kind") == "CustomResourceDefinition":
            spec = crd.get("spec") or {}
            kind = (spec.get("names") or {}).get("kind")
            if kind:
                scopes[(str(spec.get("group") or ""), str(kind))] = spec.get("scope") != "Cluster"
    return scopes


def _source_watch(kind: str) -> Watch:
    def users(new: dict[str, Any], old: dict[str, Any] | None, own: list[dict[str, Any]]) -> list[tuple[str, str]]:
        if artifact_revision(new) == artifact_revision(old):
            return []
        namespace, name = key_of(new)
        return [
            key_of(k)
            for k in own
            if (ref := (k.get("spec") or {}).get("sourceRef") or {}).get("kind") == kind
            and ref.get("name") == name
            and (ref.get("namespace") or key_of(k)[0]) == namespace
        ]

    return Watch(SOURCE_KINDS[kind], users)


class KustomizationReconciler:
    name = "kustomize-controller"
    resource = KUSTOMIZATION
    finalizer = FINALIZER
    unsupported = UNSUPPORTED

    def __init__(self, kube: Kube, options: KustomizeOptions, work_dir: Path, max_artifact_size: int) -> None:
        self.options = options
        self.max_artifact_size = max_artifact_size  # --max-source-size: what a download or unpack may reach
        self.mapper = RestMapper(kube)
        self.impersonator = Impersonator(kube)
        self.builds = BuildCache()
        self.listings = Listings()  # generated kustomization.yaml listings, by artifact digest and path
        self.work_dir = work_dir
        # What the last apply left per Kustomization (by uid) and object id: the drift check's baseline.
        self.applied: dict[str, dict[str, Applied]] = {}
        self.live_drift = LiveDrift(kube, self.mapper) if options.live_drift else None
        self.dependencies = Watch(KUSTOMIZATION, dependants)  # its cache also answers the dependency checks
        self.watches = [*(_source_watch(kind) for kind in SOURCE_KINDS), self.dependencies]

    def healthy(self) -> bool:
        """For ``/readyz``: the live drift watches, when on, are listed and watching."""
        return self.live_drift is None or self.live_drift.healthy()

    def bind(self, enqueue: Callable[[tuple[str, str]], None], stop: threading.Event) -> None:
        """Called by the runtime with this controller's queue: live drift watches queue from it."""
        if self.live_drift is not None:
            self.live_drift.bind(enqueue, stop)

    # -- the reconcile ---------------------------------------------------------------------------

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        spec = KustomizationSpec.of(obj)
        status = obj["status"]
        self._tenancy(obj, spec)
        artifact = self._artifact(ctx, spec)
        revision = str(artifact["revision"])
        self._dependencies(ctx, obj, spec, revision)
        status["lastAttemptedRevision"] = revision
        variables, secrets = self._variables(ctx, obj, spec) if spec.raw.get("postBuild") else ({}, Redactor())
        objects = self._build(ctx, obj, spec, artifact, variables)
        try:
            self._sync(ctx, obj, spec, objects, revision, secrets)
        except ReconcileError as exc:
            if secrets:
                exc.message = secrets(exc.message)
                exc.args = (exc.message,)
            raise
        except KubeError as exc:  # the API failed around the steps (discovery): masked all the same
            raise Failure("ReconciliationFailed", secrets(str(exc))) from None
        status["lastAppliedRevision"] = revision
        return Success(f"Applied revision: {revision}", reason="ReconciliationSucceeded")

    def _sync(
        self,
        ctx: Context,
        obj: dict[str, Any],
        spec: KustomizationSpec,
        objects: list[dict[str, Any]],
        revision: str,
        secrets: Redactor,
    ) -> None:
        """Apply what drifted, prune what left, record the inventory, wait for health."""
        status = obj["status"]
        kube = self.impersonator.client_for(self._service_account(obj, spec))
        applier = Applier(kube, self.mapper, _owner(obj), FIELD_MANAGER, live_drift=self.live_drift, cleanup=TAKEOVER)
        old = inventory.read(status)
        applied = self.applied.setdefault(str(obj["metadata"].get("uid")), {})
        new = [inventory.Entry.of(o) for o in objects]
        changes = self._apply(applier, objects, old, applied, spec, status)
        inventory.write(status, sorted(set(old) | set(new)))  # without prune, or until the prune says what went
        if spec.prune:
            try:
                changes += applier.prune(inventory.stale(old, new))
            except PruneError as exc:
                inventory.write(status, new + exc.failed)
                self._announce(ctx, obj, changes + exc.deleted, revision, secrets)
                raise Waiting("PruneFailed", exc.message, spec.retry_interval) from None
            inventory.write(status, new)
        for gone in set(applied) - {e.id for e in new}:
            del applied[gone]
        self._announce(ctx, obj, changes, revision, secrets)
        self._health(applier, spec, new)

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        """With ``prune``, delete what the inventory lists (and still carries our labels)."""
        spec = obj.get("spec") or {}
        uid = str(obj["metadata"].get("uid"))
        self.applied.pop(uid, None)
        self.builds.forget(uid)
        listed = inventory.read(obj.get("status") or {})
        if self.live_drift is not None:
            self.live_drift.forget(listed)
        if not spec.get("prune") or spec.get("suspend"):
            return
        kube = self.impersonator.client_for(self._service_account(obj, None))
        try:
            Applier(kube, self.mapper, _owner(obj), FIELD_MANAGER).prune(sorted(listed, reverse=True))
        except ApplyError as exc:
            raise Failure("PruneFailed", exc.message) from None

    # -- steps ------------------------------------------------------------------------------------

    def _tenancy(self, obj: dict[str, Any], spec: KustomizationSpec) -> None:
        denials = [f for f in evaluate(obj, self.options.settings) if f.denies and f.rule in DENIED_RULES]
        for finding in denials:
            if finding.rule == "cross-namespace-ref":
                ref = spec.source
                target = f"{ref.kind}/{ref.namespace}/{ref.name}"
                raise Stalling("AccessDenied", f"can't access '{target}', cross-namespace references have been blocked")
        if denials:
            raise Stalling("AccessDenied", denials[0].message)

    def _dependencies(self, ctx: Context, obj: dict[str, Any], spec: KustomizationSpec, revision: str) -> None:
        """Each dependency Ready at its generation and, when it applies the same source, at that source's
        current revision (as Flux: infra applies a new commit before apps does)."""
        cache = ctx.cache(self.dependencies)  # as fresh as the event that woke this reconcile
        for dependency in spec.depends_on:
            key = (dependency.namespace, dependency.name)
            try:
                other = cache.get(key) if cache is not None else ctx.kube.get(KUSTOMIZATION, *key)
            except NotFound:
                other = None
            where = f"dependency '{dependency.namespace}/{dependency.name}'"
            status = (other or {}).get("status") or {}
            current = other is not None and status.get("observedGeneration") == other["metadata"].get("generation")
            if other is None or not current or not conditions.is_true(other):
                raise Waiting("DependencyNotReady", f"{where} is not ready", spec.retry_interval, on_another=True)
            try:
                same_source = KustomizationSpec.of(other).source == spec.source
            except Stalling:  # the dependency's own spec is broken: its status says so, not ours
                same_source = False
            if same_source and status.get("lastAppliedRevision") != revision:
                raise Waiting(
                    "DependencyNotReady", f"{where} revision is not up to date", spec.retry_interval, on_another=True
                )

    def _artifact(self, ctx: Context, spec: KustomizationSpec) -> dict[str, Any]:
        ref = spec.source
        where = f"{ref.kind} '{ref.namespace}/{ref.name}'"
        try:
            source = ctx.kube.get(SOURCE_KINDS[ref.kind], ref.namespace, ref.name)
        except NotFound:
            raise Waiting("ArtifactFailed", f"Source {where} not found", spec.retry_interval, on_another=True) from None
        artifact = (source.get("status") or {}).get("artifact")
        if not artifact or not artifact.get("url"):
            raise Waiting(
                "ArtifactFailed",
                f"Source {where} is not ready, artifact not found",
                spec.retry_interval,
                on_another=True,
            )
        return dict(artifact)

    def _variables(self, ctx: Context, obj: dict[str, Any], spec: KustomizationSpec) -> tuple[dict[str, str], Redactor]:
        """``postBuild`` variables, and a redactor for the values that came from Secrets."""
        sources: list[dict[str, str]] = []
        secret_values: list[str] = []
        namespace = obj["metadata"]["namespace"]
        for item in spec.substitute_from:
            kind, name = item.get("kind"), str(item.get("name"))
            try:
                if kind == "Secret":
                    data = {k: v.decode() for k, v in ctx.kube.secret_data(namespace, name).items()}
                    secret_values.extend(data.values())
                else:
                    data = ctx.kube.config_map_data(namespace, name)
            except NotFound:
                if item.get("optional"):
                    continue
                raise Waiting(
                    "BuildFailed",
                    f"postBuild.substituteFrom {kind} '{namespace}/{name}' not found",
                    spec.retry_interval,
                ) from None
            sources.append(data)
        try:
            return variables_from(spec.substitute, sources), Redactor(secret_values)
        except SubstitutionError as exc:
            raise Waiting("BuildFailed", str(exc), spec.retry_interval) from None

    def _build(
        self,
        ctx: Context,
        obj: dict[str, Any],
        spec: KustomizationSpec,
        artifact: dict[str, Any],
        variables: dict[str, str],
    ) -> list[dict[str, Any]]:
        overlay = Overlay.from_spec(spec.raw)
        key = json.dumps([artifact.get("digest"), spec.path, spec.raw.get("targetNamespace"), spec.raw.get("patches"),
                          spec.raw.get("images"), spec.raw.get("namePrefix"), spec.raw.get("nameSuffix"),
                          spec.raw.get("components")], sort_keys=True, default=str)  # fmt: skip
        uid = str(obj["metadata"].get("uid"))
        objects = self.builds.get(uid, key)
        if objects is None:
            objects = self._fresh_build(spec, artifact, overlay)
            self.builds.put(uid, key, objects)
        if spec.raw.get("postBuild"):
            try:
                objects = substitute(objects, variables, strict=True)
            except SubstitutionError as exc:
                raise Waiting("BuildFailed", str(exc), spec.retry_interval) from None
        if self.options.auto_fix_legacy:
            objects = self._auto_fix(ctx, obj, objects)
        scopes = _crd_scopes(objects)
        return [self._own(o, obj, scopes) for o in objects]

    def _fresh_build(self, spec: KustomizationSpec, artifact: dict[str, Any], overlay: Overlay) -> list[dict[str, Any]]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="build-", dir=self.work_dir) as scratch:
            root = Path(scratch) / "source"
            try:
                url, expected = str(artifact["url"]), str(artifact["digest"])
                fetch_artifact(url, expected, root, self.max_artifact_size, spec.timeout)
            except FetchError as exc:
                raise Waiting("ArtifactFailed", str(exc), spec.retry_interval) from None
            try:
                return build(
                    root, spec.path, overlay, block_remote_bases=self._block_remote_bases(), timeout=spec.timeout,
                    listings=(self.listings, expected),
                )  # fmt: skip
            except BuildError as exc:
                raise Waiting("BuildFailed", str(exc), spec.retry_interval) from None
            finally:
                shutil.rmtree(root, ignore_errors=True)

    def _block_remote_bases(self) -> bool:
        return self.options.settings.enforce and self.options.settings.block_remote_bases

    def _auto_fix(self, ctx: Context, obj: dict[str, Any], objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Opt-in: TENANCY.md's legacy transform on the built Flux objects, each fix in an event."""
        flux = [o for o in objects if kind_of(o) is not None]
        if not flux:
            return objects
        result = legacy_fix(flux, obj["metadata"]["namespace"])
        for note in result.notes:
            ctx.events.record(obj, NORMAL, "LegacyManifestFixed", note)
        return [o for o in objects if kind_of(o) is None] + list(result.objects)

    def _own(
        self, resource: dict[str, Any], obj: dict[str, Any], scopes: dict[tuple[str, str], bool]
    ) -> dict[str, Any]:
        """``commonMetadata`` and the owner labels (which win) on every object; the namespace where none is set."""
        meta = resource.setdefault("metadata", {})
        common = mapping((obj.get("spec") or {}).get("commonMetadata"))
        for field_name in ("labels", "annotations"):
            if extra := mapping(common.get(field_name)):
                meta[field_name] = {**mapping(meta.get(field_name)), **{str(k): str(v) for k, v in extra.items()}}
        meta.setdefault("labels", {}).update(_owner(obj))
        try:
            namespaced = self.mapper.resource_for(str(resource.get("apiVersion")), str(resource.get("kind"))).namespaced
        except KubeError:  # not served yet: a CRD of this build may define it, else the built-in cluster kinds
            group = str(resource.get("apiVersion", "")).rpartition("/")[0]
            defined = scopes.get((group, str(resource.get("kind"))))
            namespaced = defined if defined is not None else resource.get("kind") not in BUILT_IN_CLUSTER_KINDS
        if namespaced and not meta.get("namespace"):
            meta["namespace"] = obj["metadata"]["namespace"]
        return resource

    def _service_account(self, obj: dict[str, Any], spec: KustomizationSpec | None) -> str | None:
        """``system:serviceaccount:<ns>:<sa>`` to impersonate; None applies as the controller itself."""
        name = spec.service_account if spec else (obj.get("spec") or {}).get("serviceAccountName")
        if not name and self.options.settings.enforce:
            name = self.options.settings.applier
        return f"system:serviceaccount:{obj['metadata']['namespace']}:{name}" if name else None

    def _apply(
        self,
        applier: Applier,
        objects: list[dict[str, Any]],
        old: list[inventory.Entry],
        applied: dict[str, Applied],
        spec: KustomizationSpec,
        status: dict[str, Any],
    ) -> list[Change]:
        try:
            return applier.apply_all(objects, applied, spec.force)
        except (ApplyError, KubeError) as exc:
            # Keep everything that may now exist in the inventory: nothing is orphaned by a failure.
            reached = [e for e in (inventory.Entry.of(o) for o in objects) if e.id in applied]
            inventory.write(status, sorted(set(old) | set(reached)))
            message = exc.message if isinstance(exc, ApplyError) else str(exc)
            raise Waiting("ReconciliationFailed", message, spec.retry_interval) from None

    def _announce(
        self, ctx: Context, obj: dict[str, Any], changes: list[Change], revision: str, secrets: Redactor
    ) -> None:
        """The change set (what was created, repaired or deleted) in one event and one log line."""
        moved = [secrets(str(c)) for c in changes if c.action in ("created", "configured", "deleted")]
        if moved:
            metadata = {"kustomize.toolkit.fluxcd.io/revision": revision}
            ctx.events.record(obj, NORMAL, "ReconciliationSucceeded", "\n".join(moved), metadata)
            meta = obj["metadata"]
            ctx.log.info("Kustomization %s/%s changes: %s", meta["namespace"], meta["name"], ", ".join(moved))

    def _health(self, applier: Applier, spec: KustomizationSpec, applied: list[inventory.Entry]) -> None:
        checks = list(applied) if spec.wait else []
        for ref in spec.health_checks:
            group, _, version = ref.api_version.rpartition("/")
            checks.append(inventory.Entry(ref.namespace, ref.name, group, ref.kind, version))
        if not checks:
            return
        try:
            applier.wait_healthy(checks, spec.timeout)
        except HealthError as exc:
            raise Waiting("HealthCheckFailed", str(exc), spec.retry_interval) from None
