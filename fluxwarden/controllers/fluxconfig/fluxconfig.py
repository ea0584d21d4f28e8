"""The FluxConfig reconciler: Azure's fluxConfigurations turned into Flux objects, and one compliance state.

Steps, in order: ``tenancy`` (the Azure CLI's rules and who may grant scope cluster, from
``fluxwarden.tenancy``) -> ``identity`` (flux-applier and its binding) -> ``credentials`` (the auth
Secret; a generated key pair for an ssh URL without one) -> ``source`` -> ``kustomizations`` (and the
removal of entries no longer listed) -> ``compliance`` (every object made, and the HelmReleases and
Kustomizations those applied). Everything is made by server-side apply and deleted by the finalizer:
a bare API server runs no garbage collector.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

from fluxwarden.controllers.fluxconfig import children, keys, objects
from fluxwarden.controllers.fluxconfig.api import (
    FINALIZER,
    FLUX_CONFIG,
    GENERATED_KEY_LABEL,
    HELM_RELEASE,
    KUSTOMIZATION,
    MANAGED_LABEL,
    NAME_LABEL,
    NAMESPACE_LABEL,
    SOURCES,
    UNSUPPORTED,
    FluxConfigOptions,
    FluxConfigSpec,
)
from fluxwarden.controllers.fluxconfig.auth import credentials
from fluxwarden.controllers.fluxconfig.compliance import COMPLIANT, NON_COMPLIANT, SUSPENDED, Observed, assess
from fluxwarden.controllers.fluxconfig.watches import (
    KUSTOMIZE_NAME,
    KUSTOMIZE_NAMESPACE,
    flux_object_watch,
    protected_settings_watch,
    source_watches,
)
from fluxwarden.controllers.runtime.conditions import now_rfc3339
from fluxwarden.controllers.runtime.controller import Context, Success
from fluxwarden.controllers.runtime.errors import Failure, ReconcileError, Stalling, Waiting
from fluxwarden.controllers.runtime.kube import Kube, KubeError, NotFound
from fluxwarden.controllers.runtime.prologue import interval_of, jittered
from fluxwarden.controllers.runtime.spec import mapping
from fluxwarden.tenancy import CLUSTER_SCOPE_RULE, evaluate
from fluxwarden.tenancy.fluxconfig import cluster_scope_allowed

ARM_FIELDS = ("complianceState", "statuses", "repositoryPublicKey", "sourceSyncedCommitId", "sourceUpdatedAt",
              "provisioningState", "errorMessage")  # fmt: skip
TIMED_OUT = "not Compliant within reconciliationWaitDuration"
DELETE_POLL = 2.0


def _selector(name: str, namespace: str) -> str:
    return f"{NAME_LABEL}={name},{NAMESPACE_LABEL}={namespace}"


def _managed(obj: dict[str, Any] | None) -> bool:
    return obj is not None and mapping(mapping(obj.get("metadata")).get("labels")).get(MANAGED_LABEL) == "true"


def _age(obj: dict[str, Any]) -> float:
    created = str(mapping(obj.get("metadata")).get("creationTimestamp") or "")
    try:
        born = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (datetime.datetime.now(datetime.UTC) - born).total_seconds()


class FluxConfigReconciler:
    name = "fluxconfig-controller"
    resource = FLUX_CONFIG
    finalizer = FINALIZER
    unsupported = UNSUPPORTED
    reconciles_suspended = True  # spec.suspend is passed on to the children, not a stop

    def __init__(self, kube: Kube, options: FluxConfigOptions) -> None:
        self.options = options
        self.applier = options.settings.applier
        self.watches = [
            *source_watches(),
            flux_object_watch(KUSTOMIZATION),
            flux_object_watch(HELM_RELEASE),
            protected_settings_watch(),
        ]

    # -- reconcile ---------------------------------------------------------------------------------

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        status = obj["status"]
        before = {k: status.get(k) for k in ARM_FIELDS}
        try:
            spec = self._tenancy(ctx, obj)
            self._identity(ctx, obj, spec)
            secret, public_key = self._credentials(ctx, obj, spec)
            source = self._source(ctx, obj, spec, secret)
            made = self._kustomizations(ctx, obj, spec)
            outcome = self._compliance(ctx, obj, spec, source, made, public_key)
        except (ReconcileError, KubeError) as exc:
            message = exc.message if isinstance(exc, ReconcileError) else str(exc)
            status.update(provisioningState="Failed", errorMessage=message, complianceState=NON_COMPLIANT)
            raise
        finally:
            if any(status.get(k) != v for k, v in before.items()):
                status["statusUpdatedAt"] = now_rfc3339()
        if isinstance(outcome, Waiting):  # not this object's error: its children are on their way, or failing
            raise outcome
        return outcome

    def _tenancy(self, ctx: Context, obj: dict[str, Any]) -> FluxConfigSpec:
        """The same rules as the webhook, since a cluster may run without it."""
        denials = [f for f in evaluate(obj, self.options.settings) if f.denies]
        if refused := [f for f in denials if f.rule == CLUSTER_SCOPE_RULE]:
            self._revoke_cluster_admin(ctx, str(obj["metadata"]["namespace"]))
            raise Stalling("AccessDenied", refused[0].message)
        if denials:
            raise Stalling("InvalidSpec", denials[0].message)
        spec = FluxConfigSpec.of(obj)
        if spec.namespace != obj["metadata"]["namespace"]:
            raise Stalling("InvalidSpec", f"spec.namespace {spec.namespace!r}: must equal metadata.namespace")
        return spec

    def _identity(self, ctx: Context, obj: dict[str, Any], spec: FluxConfigSpec) -> None:
        """flux-applier, bound to cluster-admin cluster-wide (scope cluster) or in its namespace only."""
        account = objects.service_account(spec.namespace, self.applier)
        live = children.get(ctx.kube, account)
        if live is None or _managed(live):  # an applier the platform made itself is left as it is
            children.apply(ctx.kube, account, live)
        try:
            if spec.scope == "cluster":
                children.apply(ctx.kube, objects.cluster_role_binding(spec.namespace, self.applier))
            else:
                children.apply(ctx.kube, objects.role_binding(spec.namespace, self.applier))
                if not self._cluster_scoped_configs(ctx, spec.namespace, exclude=None):
                    self._revoke_cluster_admin(ctx, spec.namespace)
        except KubeError as exc:
            raise Failure("RBACFailed", f"could not bind {self.applier} in {spec.namespace}: {exc}") from None

    def _credentials(self, ctx: Context, obj: dict[str, Any], spec: FluxConfigSpec) -> tuple[str | None, str | None]:
        """The Secret the source uses (ours, or localAuthRef) and the repository's public key."""
        local = spec.source.get("localAuthRef")
        protected: dict[str, bytes] = {}
        if spec.protected_settings and not local:
            try:
                protected = ctx.kube.secret_data(spec.namespace, spec.protected_settings)
            except NotFound:
                raise Failure(
                    "ProtectedSettingsNotFound",
                    f"spec.configurationProtectedSettingsRef: Secret {spec.namespace}/{spec.protected_settings} "
                    "not found; create it with the keys sshPrivateKey, httpsKey or bucketSecretKey",
                ) from None
        found = credentials(spec, protected)
        owner = objects.owner_reference(obj)
        body = objects.auth_secret(spec, owner, {}, generated=False)
        live = children.get(ctx.kube, body)
        data, generated, public = dict(found.data), False, None
        if found.needs_key:
            data.update(self._key_pair(live, spec))
            generated = True
        if identity := data.get("identity"):
            public = data["identity.pub"].decode() if "identity.pub" in data else keys.public_of(identity)
        if not data:
            if _managed(live):
                children.delete(ctx.kube, body)
            return (str(local) if local else None), public
        children.apply(ctx.kube, objects.auth_secret(spec, owner, data, generated), live)
        return body["metadata"]["name"], public

    def _key_pair(self, live: dict[str, Any] | None, spec: FluxConfigSpec) -> dict[str, bytes]:
        """The generated pair, made once: the one in our Secret is kept across restarts and edits."""
        meta = mapping((live or {}).get("metadata"))
        stored = mapping((live or {}).get("data"))
        if mapping(meta.get("labels")).get(GENERATED_KEY_LABEL) == "true" and stored.get("identity"):
            private = base64.b64decode(stored["identity"])
            public = keys.public_of(private)
            if public:
                return {
                    "identity": private,
                    "identity.pub": f"{public} fluxwarden:{spec.namespace}/{spec.name}".encode(),
                }
        pair = keys.generate(self.options.ssh_key_algorithm, f"fluxwarden:{spec.namespace}/{spec.name}")
        return {"identity": pair.private, "identity.pub": pair.public.encode()}

    def _source(self, ctx: Context, obj: dict[str, Any], spec: FluxConfigSpec, secret: str | None) -> dict[str, Any]:
        body = objects.source(spec, objects.owner_reference(obj), secret)
        selector = _selector(spec.name, spec.namespace)
        for kind, res in SOURCES.items():  # sourceKind changed: the source of the old kind goes
            if kind != body["kind"]:
                for stale in children.listed(ctx.kube, res.api_version, kind, spec.namespace, selector):
                    children.delete(ctx.kube, stale)
        return children.apply(ctx.kube, body)

    def _kustomizations(self, ctx: Context, obj: dict[str, Any], spec: FluxConfigSpec) -> list[dict[str, Any]]:
        owner = objects.owner_reference(obj)
        wanted = [objects.kustomization(spec, entry, owner, self.applier) for entry in spec.kustomizations]
        made = [children.apply(ctx.kube, body) for body in wanted]
        names = {body["metadata"]["name"] for body in wanted}
        selector = _selector(spec.name, spec.namespace)
        for stale in children.listed(ctx.kube, KUSTOMIZATION.api_version, "Kustomization", spec.namespace, selector):
            if stale["metadata"]["name"] not in names:  # removed from spec.kustomizations: it goes (and prunes)
                ctx.log.info("deleting %s: removed from the FluxConfig", children.display(stale))
                children.delete(ctx.kube, stale)
        return made

    def _applied(self, ctx: Context, kustomization: dict[str, Any]) -> list[Observed]:
        """The HelmReleases and Kustomizations a Kustomization applied (its inventory)."""
        meta = kustomization["metadata"]
        by = (str(meta["namespace"]), str(meta["name"]))
        found = []
        for entry in mapping(mapping(kustomization.get("status")).get("inventory")).get("entries") or []:
            parts = str(mapping(entry).get("id") or "").split("_")
            if len(parts) != 4:
                continue
            namespace, name, group, kind = parts
            if (group, kind) not in ((HELM_RELEASE.group, "HelmRelease"), (KUSTOMIZATION.group, "Kustomization")):
                continue
            body = {
                "apiVersion": f"{group}/{mapping(entry).get('v') or 'v2'}",
                "kind": kind,
                "metadata": {"name": name, "namespace": namespace},
            }
            live = children.get(ctx.kube, body)
            if live is not None:
                live.setdefault("kind", kind)
                found.append(Observed(live, by))
        return found

    def _compliance(
        self,
        ctx: Context,
        obj: dict[str, Any],
        spec: FluxConfigSpec,
        source: dict[str, Any],
        made: list[dict[str, Any]],
        public_key: str | None,
    ) -> Success | Waiting:
        observed = [Observed(source), *(Observed(k) for k in made)]
        for kustomization in made:
            observed.extend(self._applied(ctx, kustomization))
        artifact = mapping(mapping(source.get("status")).get("artifact"))
        revision = str(artifact["revision"]) if artifact.get("revision") else None
        result = assess(observed, revision, spec.suspend)
        status = obj["status"]
        status.update(
            complianceState=result.state,
            statuses=result.statuses,
            sourceSyncedCommitId=revision,
            sourceUpdatedAt=artifact.get("lastUpdateTime"),
            repositoryPublicKey=public_key,
            errorMessage=None,
        )
        for key in ("sourceSyncedCommitId", "sourceUpdatedAt", "repositoryPublicKey", "errorMessage"):
            if status.get(key) is None:
                status.pop(key)
        self._provisioning(obj, spec, result.state, result.first_failure or result.first_pending)
        later = jittered(interval_of(obj))
        if status.get("provisioningState") == "Creating":  # come back when the wait runs out
            later = min(later, max(1.0, spec.wait_duration - _age(obj)))
        if result.state == COMPLIANT:
            return Success(f"Compliant: {len(observed)} objects ready at revision {revision}")
        if result.state == SUSPENDED:
            return Waiting("Suspended", "suspended: the source and Kustomizations are suspended", later)
        if result.state == NON_COMPLIANT:
            return Waiting("NonCompliant", f"Non-Compliant: {result.first_failure}", later)
        return Waiting("Progressing", f"Pending: {result.first_pending or 'waiting for the objects it made'}", later)

    def _provisioning(self, obj: dict[str, Any], spec: FluxConfigSpec, state: str, detail: str | None) -> None:
        """Succeeded once the objects are made; with waitForReconciliation, Creating until the first Compliant."""
        status = obj["status"]
        previous, message = status.get("provisioningState"), str(status.get("errorMessage") or "")
        waiting = spec.wait_for_reconciliation and state != COMPLIANT
        timed_out = previous == "Failed" and message.startswith(TIMED_OUT)
        if waiting and (previous in (None, "Creating") or timed_out):
            if _age(obj) >= spec.wait_duration or timed_out:
                status.update(provisioningState="Failed", errorMessage=f"{TIMED_OUT}: {detail or state}")
            else:
                status["provisioningState"] = "Creating"
            return
        status["provisioningState"] = "Succeeded"

    # -- shared identity ---------------------------------------------------------------------------

    def _cluster_scoped_configs(self, ctx: Context, namespace: str, exclude: str | None) -> list[dict[str, Any]]:
        if not cluster_scope_allowed(self.options.settings, namespace):
            return []
        configs, _ = ctx.kube.list(FLUX_CONFIG, namespace)
        return [
            c
            for c in configs
            if c["metadata"].get("uid") != exclude
            and not c["metadata"].get("deletionTimestamp")
            and (mapping(c.get("spec")).get("scope") or "cluster") == "cluster"
        ]

    def _revoke_cluster_admin(self, ctx: Context, namespace: str) -> None:
        binding = objects.cluster_role_binding(namespace, self.applier)
        if _managed(children.get(ctx.kube, binding)):
            ctx.log.info(
                "removing ClusterRoleBinding %s: no FluxConfig of scope cluster may use it", binding["metadata"]["name"]
            )
            children.delete(ctx.kube, binding)

    # -- finalize ----------------------------------------------------------------------------------

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        """Kustomizations first (they prune as flux-applier), then the rest; the applier goes last."""
        meta = obj["metadata"]
        name, namespace = str(meta["name"]), str(meta["namespace"])
        ctx.progress(obj, {"provisioningState": "Deleting"})
        selector = _selector(name, namespace)
        kustomizations = children.listed(ctx.kube, KUSTOMIZATION.api_version, "Kustomization", namespace, selector)
        for kustomization in kustomizations:
            if not kustomization["metadata"].get("deletionTimestamp"):
                children.delete(ctx.kube, kustomization)
        if kustomizations:
            names = ", ".join(sorted(k["metadata"]["name"] for k in kustomizations))
            raise Waiting(
                "Deleting", f"waiting for Kustomizations {names} to finish deleting (and pruning)", DELETE_POLL
            )
        self._await_uninstalls(ctx, obj)
        for kind, res in SOURCES.items():
            for source in children.listed(ctx.kube, res.api_version, kind, namespace, selector):
                children.delete(ctx.kube, source)
        for secret in children.listed(ctx.kube, "v1", "Secret", namespace, selector):
            children.delete(ctx.kube, secret)
        self._release_identity(ctx, obj)

    def _await_uninstalls(self, ctx: Context, obj: dict[str, Any]) -> None:
        """A pruned HelmRelease uninstalls as flux-applier: keep the applier until it is gone."""
        meta = obj["metadata"]
        try:
            entries = FluxConfigSpec.of(obj).kustomizations
        except Stalling:
            return
        made = ",".join(objects.kustomization_name(str(meta["name"]), e.name) for e in entries)
        selector = f"{KUSTOMIZE_NAMESPACE}={meta['namespace']},{KUSTOMIZE_NAME} in ({made})"
        releases = children.listed(ctx.kube, HELM_RELEASE.api_version, "HelmRelease", None, selector)
        deleting = sorted(
            f"{r['metadata']['namespace']}/{r['metadata']['name']}"
            for r in releases
            if r["metadata"].get("deletionTimestamp")
        )
        if deleting:
            raise Waiting("Deleting", f"waiting for HelmReleases {', '.join(deleting)} to uninstall", DELETE_POLL)

    def _release_identity(self, ctx: Context, obj: dict[str, Any]) -> None:
        """The applier and its bindings serve every FluxConfig of the namespace: the last one removes them."""
        meta = obj["metadata"]
        namespace = str(meta["namespace"])
        configs, _ = ctx.kube.list(FLUX_CONFIG, namespace)
        others = [
            c
            for c in configs
            if c["metadata"].get("uid") != meta.get("uid") and not c["metadata"].get("deletionTimestamp")
        ]
        if not self._cluster_scoped_configs(ctx, namespace, exclude=str(meta.get("uid"))):
            self._revoke_cluster_admin(ctx, namespace)
        if others:
            return
        for body in (objects.role_binding(namespace, self.applier), objects.service_account(namespace, self.applier)):
            if _managed(children.get(ctx.kube, body)):
                children.delete(ctx.kube, body)
