"""The HelmRelease reconciler: prerequisites, then the release state machine, as the tenant.

Steps, in order, each raising a reconcile error on failure:
``tenancy`` (cross-namespace chart source, service account) -> ``storage namespace`` ->
``dependencies`` -> ``service account`` -> ``chart`` (HelmChart template or chartRef, artifact,
unpacked once per digest) -> ``values`` (valuesFrom + values, config digest) -> ``adoption``
(records Flux stored in the HelmRelease's namespace move to the target namespace) -> ``failure
counters`` (reset on a new generation, chart, values or ``resetAt``) -> the state machine.
A reconcile of an unchanged release reads the stored release and runs no helm process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fluxwarden.controllers.apply.drift import Applied
from fluxwarden.controllers.apply.redact import Redactor
from fluxwarden.controllers.helm import chart as charts
from fluxwarden.controllers.helm import commands, history, postrender
from fluxwarden.controllers.helm.actions import Request, clear_failures
from fluxwarden.controllers.helm.api import (
    DEPENDENCY_REQUEUE,
    FINALIZER,
    FORCE_AT,
    HELM_RELEASE,
    RESET_AT,
    UNSUPPORTED,
    WATCH_LABEL,
    HelmReleaseSpec,
    owner_labels,
)
from fluxwarden.controllers.helm.machine import Machine
from fluxwarden.controllers.helm.oci_version import source_version
from fluxwarden.controllers.helm.runner import Helm, HelmError, Identity
from fluxwarden.controllers.helm.storage import ReleaseStorage, StorageError
from fluxwarden.controllers.helm.values import Values, ValuesError, compose
from fluxwarden.controllers.runtime import conditions
from fluxwarden.controllers.runtime.controller import Context, Mapper, Success, Watch, artifact_revision, dependants
from fluxwarden.controllers.runtime.errors import Failure, ReconcileError, Stalling, Waiting
from fluxwarden.controllers.runtime.impersonation import Impersonator
from fluxwarden.controllers.runtime.kube import Kube, NotFound, Resource, key_of
from fluxwarden.controllers.runtime.prologue import requested_at
from fluxwarden.controllers.runtime.restmapper import RestMapper
from fluxwarden.controllers.runtime.spec import mapping
from fluxwarden.tenancy import Settings, evaluate

CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
SERVICE_ACCOUNTS = "/api/v1/namespaces/{namespace}/serviceaccounts/{name}"


@dataclass
class HelmOptions:
    settings: Settings = field(default_factory=Settings)
    helm_binary: str = "helm"


def _annotation(obj: dict[str, Any], name: str) -> str | None:
    value = mapping(obj["metadata"].get("annotations")).get(name)
    return str(value) if value else None


def _chart_users(kind: str) -> Mapper:
    """HelmReleases installing from a ``kind`` (HelmChart, OCIRepository) whose artifact or readiness changed."""

    def users(new: dict[str, Any], old: dict[str, Any] | None, own: list[dict[str, Any]]) -> list[tuple[str, str]]:
        if (
            old is not None
            and artifact_revision(new) == artifact_revision(old)
            and (conditions.is_true(new) == conditions.is_true(old))
        ):
            return []
        changed = (kind, *key_of(new))
        refs = [(r, charts.chart_ref(r)) for r in own]
        return [key_of(r) for r, ref in refs if (ref.kind, ref.namespace, ref.name) == changed]

    return users


def _values_watch(kind: str) -> Mapper:
    """HelmReleases whose ``valuesFrom`` names a watched (labelled) ConfigMap or Secret that changed."""

    def users(new: dict[str, Any], old: dict[str, Any] | None, own: list[dict[str, Any]]) -> list[tuple[str, str]]:
        if old is not None and new["metadata"].get("resourceVersion") == old["metadata"].get("resourceVersion"):
            return []
        namespace, name = key_of(new)
        return [
            key_of(r)
            for r in own
            if key_of(r)[0] == namespace
            and any(
                isinstance(v, dict) and v.get("kind") == kind and v.get("name") == name
                for v in mapping(r.get("spec")).get("valuesFrom") or []
            )
        ]

    return users


class HelmReleaseReconciler:
    name = "helm-controller"
    resource = HELM_RELEASE
    finalizer = FINALIZER
    unsupported = UNSUPPORTED

    def __init__(self, kube: Kube, options: HelmOptions, work_dir: Path, max_artifact_size: int) -> None:
        self.options = options
        self.helm = Helm(options.helm_binary, kube.api.configuration, work_dir / "helm")
        self.charts = charts.ChartCache(work_dir / "charts", max_artifact_size)
        self.impersonator = Impersonator(kube)
        self.mapper = RestMapper(kube)
        # The drift baseline per HelmRelease (by uid): what the last look at each object found.
        self.applied: dict[str, dict[str, Applied]] = {}
        selector = f"{WATCH_LABEL}=Enabled"
        self.watches = [
            Watch(charts.HELM_CHART, _chart_users("HelmChart")),
            Watch(charts.OCI_REPOSITORY, _chart_users("OCIRepository")),
            Watch(HELM_RELEASE, dependants),
            Watch(CONFIG_MAPS, _values_watch("ConfigMap"), selector, metadata_only=True),
            Watch(SECRETS, _values_watch("Secret"), selector, metadata_only=True),
        ]

    # -- the reconcile ---------------------------------------------------------------------------

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        spec = HelmReleaseSpec.of(obj)
        status = obj["status"]
        self._tenancy(obj)
        storage_namespace = spec.storage_namespace()
        self._dependencies(ctx, spec)
        identity = self._identity(ctx, obj, spec)
        chart = self._chart(ctx, obj, spec)
        values = self._values(ctx, obj, spec)
        secrets = Redactor(values.secrets)
        tenant = self.impersonator.client_for(identity.user)
        storage = ReleaseStorage(tenant, storage_namespace, spec.release_name)
        try:
            self._adopt(ctx, obj, spec, storage)
            self._retarget(ctx, obj, spec, chart, identity)
            recorded = str(status.get("storageNamespace") or "")
            status["storageNamespace"] = storage_namespace
            self._attempt(obj, status, chart, values)
            force = self._force_requested(obj)
            request = Request(
                obj, spec, chart, values, storage, identity, tenant, force,
                self._post_render(obj), self.applied.setdefault(str(obj["metadata"].get("uid")), {}),
                recorded if recorded != storage_namespace else "",
            )  # fmt: skip
            try:
                return Machine(ctx, request, self.helm, self.mapper, secrets).run()
            finally:
                if force:  # the state machine saw it: handled, whatever the release did
                    status["lastHandledForceAt"] = _annotation(obj, FORCE_AT)
        except StorageError as exc:
            if exc.forbidden and not status.get("history"):  # as Flux shows it: the install is refused
                where = f"{spec.target_namespace}/{spec.release_name}"
                message = secrets(f"Helm install failed for release {where} with chart {chart.display}: {exc}")
                generation = obj["metadata"].get("generation")
                conditions.set_condition(status, "Released", False, "InstallFailed", message, generation)
                raise Failure("InstallFailed", message) from None
            raise Failure("StateError", secrets(f"Could not determine release state: {exc}")) from None
        except ReconcileError as exc:
            exc.message = secrets(exc.message)
            raise

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        """Uninstall the release (unless suspended or its service account is gone); delete the HelmChart."""
        self.applied.pop(str(obj["metadata"].get("uid")), None)
        if mapping(obj.get("spec")).get("suspend"):
            return  # as Flux: a suspended release, and its chart, are left as they are
        self._uninstall_on_delete(ctx, obj)
        self._delete_template(ctx, obj)

    def _uninstall_on_delete(self, ctx: Context, obj: dict[str, Any]) -> None:
        try:
            spec = HelmReleaseSpec.of(obj)
        except Stalling:
            return
        status = mapping(obj.get("status"))
        if not status.get("history") and not status.get("storageNamespace"):
            return  # no release action was ever attempted by this object
        name = self._account(spec)
        if not self._service_account_exists(ctx, spec.namespace, name):
            ctx.log.info(
                "HelmRelease %s/%s deleted without uninstall: its service account is gone", spec.namespace, spec.name
            )
            return
        identity = Identity(spec.namespace, name)
        storage = ReleaseStorage(self.impersonator.client_for(identity.user), spec.target_namespace, spec.release_name)
        try:
            if storage.latest() is None:
                return
            self.helm.run(commands.uninstall(spec), identity, spec.action_timeout("uninstall"))
        except (HelmError, StorageError) as exc:
            raise Failure(
                "UninstallFailed",
                f"Helm uninstall failed for release {spec.target_namespace}/{spec.release_name}: {exc}",
            ) from None

    def _delete_template(self, ctx: Context, obj: dict[str, Any]) -> None:
        helm_chart = str(mapping(obj.get("status")).get("helmChart") or "")
        if "/" in helm_chart:
            namespace, _, name = helm_chart.partition("/")
            charts.delete_template(ctx.kube, namespace, name)

    # -- steps ------------------------------------------------------------------------------------

    def _tenancy(self, obj: dict[str, Any]) -> None:
        for finding in evaluate(obj, self.options.settings):
            if not finding.denies:
                continue
            if finding.rule == "cross-namespace-ref":
                ref = self._source_ref(obj)
                raise Stalling(
                    "AccessDenied",
                    f"cross-namespace references are not allowed: cannot access {ref.kind} {ref.namespace}/{ref.name}",
                )
            if finding.rule in ("service-account", "cross-namespace-dependency", "remote-cluster"):
                raise Stalling("AccessDenied", finding.message)

    def _source_ref(self, obj: dict[str, Any]) -> charts.ChartRef:
        spec = mapping(obj.get("spec"))
        if spec.get("chartRef"):
            return charts.chart_ref(obj)
        source = mapping(mapping(mapping(spec.get("chart")).get("spec")).get("sourceRef"))
        return charts.ChartRef(
            str(source.get("kind")),
            str(source.get("namespace") or obj["metadata"]["namespace"]),
            str(source.get("name")),
        )

    def _dependencies(self, ctx: Context, spec: HelmReleaseSpec) -> None:
        for namespace, name in spec.depends_on:
            try:
                other = ctx.kube.get(HELM_RELEASE, namespace, name)
            except NotFound:
                other = None
            current = other is not None and mapping(other.get("status")).get("observedGeneration") == (
                other["metadata"].get("generation")
            )
            if other is None or not current or not conditions.is_true(other):
                raise Waiting(
                    "DependencyNotReady",
                    f"dependency '{namespace}/{name}' is not ready",
                    DEPENDENCY_REQUEUE,
                    on_another=True,
                )

    def _service_account_exists(self, ctx: Context, namespace: str, name: str) -> bool:
        try:
            ctx.kube.request("GET", SERVICE_ACCOUNTS.format(namespace=namespace, name=name))
            return True
        except NotFound:
            return False

    def _account(self, spec: HelmReleaseSpec) -> str:
        """``serviceAccountName``, else the applier (``flux-applier``): for every helm run, delete included."""
        return spec.service_account or self.options.settings.applier

    def _identity(self, ctx: Context, obj: dict[str, Any], spec: HelmReleaseSpec) -> Identity:
        """Whom helm runs as (see ``_account``); it must exist."""
        name = self._account(spec)
        if not self._service_account_exists(ctx, spec.namespace, name):
            raise Waiting(
                "AccessDenied",
                f"ServiceAccount '{spec.namespace}/{name}' not found: HelmRelease '{spec.namespace}/{spec.name}' is "
                f"released as system:serviceaccount:{spec.namespace}:{name}; create that ServiceAccount "
                "(with its RoleBindings) in this namespace",
                spec.interval,
            )
        return Identity(spec.namespace, name)

    def _chart(self, ctx: Context, obj: dict[str, Any], spec: HelmReleaseSpec) -> charts.Chart:
        status = obj["status"]
        if spec.raw.get("chartRef"):
            self._delete_template(ctx, obj)  # moved from spec.chart: the template goes
            status.pop("helmChart", None)
            ref, live = charts.chart_ref(obj), None
        else:
            ref, live = charts.apply_template(ctx.kube, obj, str(spec.raw.get("interval")))
            if status.get("helmChart") not in (None, f"{ref.namespace}/{ref.name}"):
                self._delete_template(ctx, obj)  # the source moved namespace: the old template goes
            status["helmChart"] = f"{ref.namespace}/{ref.name}"
        artifact = charts.artifact(ctx.kube, ref, live)
        chart = self.charts.get(artifact, spec.timeout)
        if ref.kind != "OCIRepository":
            status.pop("lastAttemptedRevisionDigest", None)
            return chart
        revision = str(artifact.get("revision") or "")
        try:
            version = source_version(chart.version, revision)
        except ValueError as exc:
            raise Failure("ChartMutateError", str(exc)) from None
        status["lastAttemptedRevisionDigest"] = revision.rpartition("@")[2]  # Flux: the OCI manifest's digest
        return self.charts.versioned(chart, str(artifact.get("digest")), version)

    def _values(self, ctx: Context, obj: dict[str, Any], spec: HelmReleaseSpec) -> Values:
        refs = [v for v in spec.raw.get("valuesFrom") or [] if isinstance(v, dict)]
        try:
            return compose(ctx.kube, spec.namespace, mapping(spec.raw.get("values")), refs)
        except ValuesError as exc:
            raise Failure("ValuesError", str(exc)) from None

    def _adopt(self, ctx: Context, obj: dict[str, Any], spec: HelmReleaseSpec, storage: ReleaseStorage) -> None:
        """A release upstream Flux stored in the HelmRelease's namespace moves into the target namespace."""
        if spec.raw.get("storageNamespace") or spec.namespace == spec.target_namespace:
            return
        if storage.latest() is not None:
            return
        try:
            count = storage.adopt_from(ReleaseStorage(storage.kube, spec.namespace, spec.release_name))
        except StorageError as exc:
            if not exc.forbidden:
                raise
            return  # the tenant may not list Secrets in its own namespace: nothing there it could adopt
        if count:
            ctx.log.info(
                "HelmRelease %s/%s: moved %d release records of %s from %s to %s",
                spec.namespace, spec.name, count, spec.release_name, spec.namespace, spec.target_namespace,
            )  # fmt: skip

    def _retarget(
        self, ctx: Context, obj: dict[str, Any], spec: HelmReleaseSpec, chart: charts.Chart, identity: Identity
    ) -> None:
        """Flux's release target check: a new release name or namespace (or, with the default
        ``chartNameChangeStrategy: Reinstall``, a new chart name) uninstalls the old release first."""
        status = obj["status"]
        current = history.latest(status)
        if current is None or not status.get("storageNamespace"):
            return
        moved = (current.get("name"), current.get("namespace")) != (spec.release_name, spec.target_namespace)
        strategy = spec.block("upgrade").get("chartNameChangeStrategy") or "Reinstall"
        renamed = current.get("chartName") != chart.name and strategy == "Reinstall"
        if not moved and not renamed:
            return
        name, namespace = str(current.get("name")), str(current.get("namespace"))
        old = ReleaseStorage(self.impersonator.client_for(identity.user), namespace, name)
        if old.latest() is not None:
            try:
                self.helm.run(commands.uninstall(spec, name, namespace), identity, spec.action_timeout("uninstall"))
            except HelmError as exc:
                raise Failure(
                    "UninstallFailed", f"Helm uninstall failed for release {namespace}/{name}: {exc}"
                ) from None
        why = "the release name or namespace changed" if moved else "the chart name changed"
        ctx.log.info(
            "HelmRelease %s/%s: %s, release %s/%s uninstalled", spec.namespace, spec.name, why, namespace, name
        )
        status.pop("history", None)
        status.pop("storageNamespace", None)
        clear_failures(status)

    def _attempt(self, obj: dict[str, Any], status: dict[str, Any], chart: charts.Chart, values: Values) -> None:
        """Flux's failure reset (new generation, chart, values or ``resetAt``) and the attempted fields."""
        generation = obj["metadata"].get("generation")
        reset = _annotation(obj, RESET_AT)
        if (
            status.get("lastAttemptedGeneration") != generation
            or status.get("lastAttemptedRevision") != chart.version
            or status.get("lastAttemptedConfigDigest") not in (None, values.digest)
            or (reset is not None and reset != status.get("lastHandledResetAt") and reset == requested_at(obj))
        ):
            clear_failures(status)
        if reset is not None:
            status["lastHandledResetAt"] = reset
        status["lastAttemptedGeneration"] = generation
        status["lastAttemptedRevision"] = chart.version
        status["lastAttemptedConfigDigest"] = values.digest

    def _force_requested(self, obj: dict[str, Any]) -> bool:
        force = _annotation(obj, FORCE_AT)
        handled = mapping(obj.get("status")).get("lastHandledForceAt")
        return force is not None and force != handled and force == requested_at(obj)

    def _post_render(self, obj: dict[str, Any]) -> Callable[[Path], tuple[list[str], dict[str, str], Path]]:
        spec = mapping(obj.get("spec"))

        def prepare(scratch: Path) -> tuple[list[str], dict[str, str], Path]:
            renderers = [r for r in spec.get("postRenderers") or [] if isinstance(r, dict)]
            common = mapping(spec.get("commonMetadata")) or None
            strategy = str(spec["postRenderStrategy"]) if spec.get("postRenderStrategy") else None
            try:
                prepared = postrender.prepare(scratch, renderers, common, owner_labels(obj), strategy=strategy)
            except postrender.InvalidPostRenderer as exc:
                raise Stalling("InvalidSpec", str(exc)) from None
            except FileNotFoundError as exc:
                raise Failure("InstallFailed", str(exc)) from None
            return list(prepared.args), dict(prepared.env), prepared.error_file

        return prepare
