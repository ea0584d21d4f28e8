"""The FluxConfig reconciler: Azure's fluxConfigurations turned into Flux objects, and one compliance state.

Steps, in order: ``tenancy`` (the Azure CLI's rules and who may grant scope cluster, from
``fluxwarden.tenancy``, then the fields fluxwarden cannot honour) -> ``identity`` (flux-applier and
its binding) -> ``credentials`` (the auth Secret; a generated key pair for an ssh URL without one) ->
``source`` -> ``kustomizations`` (and the removal of entries no longer listed) -> ``compliance``
(every object made, and the HelmReleases and Kustomizations those applied). Everything is made by
server-side apply and deleted by the finalizer: a bare API server runs no garbage collector.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from fluxwarden.controllers.apply import inventory
from fluxwarden.controllers.fluxconfig import children, keys, objects
from fluxwarden.controllers.fluxconfig.api import (
    FINALIZER,
    FLUX_CONFIG,
    HELM_RELEASE,
    KUSTOMIZATION,
    NAME_LABEL,
    NAMESPACE_LABEL,
    SOURCES,
    UNSUPPORTED,
    FluxConfigOptions,
    FluxConfigSpec,
)
from fluxwarden.controllers.fluxconfig.auth import credentials
from fluxwarden.controllers.fluxconfig.compliance import COMPLIANT, NON_COMPLIANT, SUSPENDED, Observed, assess
from fluxwarden.controllers.fluxconfig.identity import Identity
from fluxwarden.controllers.fluxconfig.provisioning import provisioning
from fluxwarden.controllers.fluxconfig.reader import Reader
from fluxwarden.controllers.fluxconfig.watches import KUSTOMIZE_NAME, KUSTOMIZE_NAMESPACE, Watches
from fluxwarden.controllers.runtime import unsupported
from fluxwarden.controllers.runtime.conditions import now_rfc3339
from fluxwarden.controllers.runtime.controller import Context, Success
from fluxwarden.controllers.runtime.errors import Failure, ReconcileError, Stalling, Waiting
from fluxwarden.controllers.runtime.kube import Kube, KubeError, NotFound
from fluxwarden.controllers.runtime.prologue import interval_of, jittered
from fluxwarden.controllers.runtime.spec import mapping
from fluxwarden.tenancy import CLUSTER_SCOPE_RULE, evaluate
from fluxwarden.tenancy.fluxconfig import url_kind

logger = logging.getLogger("fluxwarden.controllers")

ARM_FIELDS = ("complianceState", "statuses", "repositoryPublicKey", "sourceSyncedCommitId", "sourceUpdatedAt",
              "provisioningState", "errorMessage")  # fmt: skip
DELETE_POLL = 2.0
# The config's own fault: provisioning failed. Anything else (the API server, the network) is retried
# without calling the cluster Non-Compliant.
OWN_FAULTS = frozenset({"ProtectedSettingsNotFound", "RBACFailed", "AlreadyExists"})


def _selector(name: str, namespace: str) -> str:
    return f"{NAME_LABEL}={name},{NAMESPACE_LABEL}={namespace}"


def _hint(spec: FluxConfigSpec) -> str:
    """What the config itself lacks when its source fails (the source's message names our Secret, not the field)."""
    ssh = spec.source_kind == "GitRepository" and url_kind(str(spec.source.get("url") or "")) == "ssh"
    if ssh and not spec.source.get("sshKnownHosts") and not spec.source.get("localAuthRef"):
        return "; an ssh URL needs spec.gitRepository.sshKnownHosts (the host's known_hosts line, base64)"
    return ""


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
    reconciles_suspended = True  # spec.suspend is passed on to the children, not a stop

    def __init__(self, kube: Kube, options: FluxConfigOptions) -> None:
        self.options = options
        self.applier = options.settings.applier
        self.identity = Identity(options.settings)
        self.declared = Watches()
        self.watches = self.declared.all()
        # The webhook may run with other settings, or not at all: say what this process allows.
        logger.info(
            "fluxconfig: scope cluster allowed in namespaces %s; applier %s",
            ",".join(sorted(options.settings.cluster_scope_namespaces)) or "(none)",
            self.applier,
        )

    # -- reconcile ---------------------------------------------------------------------------------

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        status = obj["status"]
        before = {k: status.get(k) for k in ARM_FIELDS}
        reader = Reader(ctx, self.declared)
        try:
            spec = self._tenancy(reader, obj)
            note = self._identity(reader, spec)
            secret, public_key = self._credentials(reader, obj, spec)
            source = self._source(reader, obj, spec, secret)
            made = self._kustomizations(reader, obj, spec)
            outcome = self._compliance(reader, obj, spec, before, source, made, public_key, note)
        except (ReconcileError, KubeError) as exc:
            self._failed(status, exc)
            raise
        finally:
            if any(status.get(k) != v for k, v in before.items()):
                status["statusUpdatedAt"] = now_rfc3339()
        if isinstance(outcome, Waiting):  # not this object's error: its children are on their way, or failing
            raise outcome
        return outcome

    @staticmethod
    def _failed(status: dict[str, Any], error: ReconcileError | KubeError) -> None:
        """A spec or provisioning error fails the config; a transient one only says so in errorMessage."""
        if isinstance(error, ReconcileError) and (isinstance(error, Stalling) or error.reason in OWN_FAULTS):
            status.update(provisioningState="Failed", errorMessage=error.message, complianceState=NON_COMPLIANT)
            return
        status["errorMessage"] = error.message if isinstance(error, ReconcileError) else str(error)

    def _tenancy(self, reader: Reader, obj: dict[str, Any]) -> FluxConfigSpec:
        """The same rules as the webhook, since a cluster may run without it."""
        denials = [f for f in evaluate(obj, self.options.settings) if f.denies]
        if refused := [f for f in denials if f.rule == CLUSTER_SCOPE_RULE]:
            self.identity.revoke_cluster_admin(reader, str(obj["metadata"]["namespace"]))
            raise Stalling("AccessDenied", refused[0].message)
        if denials:
            raise Stalling("InvalidSpec", denials[0].message)
        if found := unsupported.find(obj, UNSUPPORTED):  # here, not in the prologue: the ARM status says Failed
            raise Stalling(unsupported.REASON, found.message)
        spec = FluxConfigSpec.of(obj)
        if spec.namespace != obj["metadata"]["namespace"]:
            raise Stalling("InvalidSpec", f"spec.namespace {spec.namespace!r}: must equal metadata.namespace")
        return spec

    def _identity(self, reader: Reader, spec: FluxConfigSpec) -> str | None:
        try:
            return self.identity.ensure(reader, spec.namespace, spec.scope)
        except KubeError as exc:
            raise Failure("RBACFailed", f"could not bind {self.applier} in {spec.namespace}: {exc}") from None

    def _credentials(self, reader: Reader, obj: dict[str, Any], spec: FluxConfigSpec) -> tuple[str | None, str | None]:
        """The Secret the source uses (ours, or localAuthRef) and the repository's public key."""
        ctx = reader.ctx
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
        # The data is compared, and a cache holds no Secret data: read it, unless the cache says it is absent.
        live = children.get(ctx.kube, body) if reader.exists(body) is not False else None
        comment = f"fluxwarden:{spec.namespace}/{spec.name}"
        kept = keys.kept(live, comment) if live is not None and children.ours(live, body) else {}
        data = dict(found.data)
        if found.needs_key:
            data.update(kept or keys.new(self.options.ssh_key_algorithm, comment))
        elif "identity" not in data:
            data.update(kept)  # a generated pair is kept for the config's lifetime, whatever its URL now
        else:
            kept = {}  # the user's own key replaces it
        if not data:  # nothing to store: only a Secret of ours left over goes
            if live is not None and children.ours(live, body):
                children.delete(ctx.kube, body)
            return (str(local) if local else None), None
        children.apply(ctx.kube, objects.auth_secret(spec, owner, data, bool(kept) or found.needs_key), live)
        public = None
        if identity := data.get("identity"):
            public = data["identity.pub"].decode() if "identity.pub" in data else keys.public_of(identity)
        if found.data or found.needs_key:
            return body["metadata"]["name"], public
        return (str(local) if local else None), public  # only the kept pair in it: the source does not use it

    def _source(self, reader: Reader, obj: dict[str, Any], spec: FluxConfigSpec, secret: str | None) -> dict[str, Any]:
        body = objects.source(spec, objects.owner_reference(obj), secret)
        for kind in SOURCES:  # sourceKind changed: the source of the old kind goes
            if kind != body["kind"]:
                for stale in reader.listed(kind, spec.namespace, objects.labels(spec)):
                    children.delete(reader.ctx.kube, stale)
        return children.apply(reader.ctx.kube, body, reader.get(body))

    def _kustomizations(self, reader: Reader, obj: dict[str, Any], spec: FluxConfigSpec) -> list[dict[str, Any]]:
        kube = reader.ctx.kube
        owner = objects.owner_reference(obj)
        wanted = [objects.kustomization(spec, entry, owner, self.applier) for entry in spec.kustomizations]
        made = [children.apply(kube, body, reader.get(body)) for body in wanted]
        names = {body["metadata"]["name"] for body in wanted}
        for stale in reader.listed("Kustomization", spec.namespace, objects.labels(spec)):
            if stale["metadata"]["name"] not in names:  # removed from spec.kustomizations: it goes (and prunes)
                reader.ctx.log.info("deleting %s: removed from the FluxConfig", children.display(stale))
                children.delete(kube, stale)
        return made

    def _applied(self, reader: Reader, kustomization: dict[str, Any]) -> list[Observed]:
        """The HelmReleases and Kustomizations a Kustomization applied (its inventory)."""
        meta = kustomization["metadata"]
        by = (str(meta["namespace"]), str(meta["name"]))
        found = []
        for entry in inventory.read(mapping(kustomization.get("status"))):
            if (entry.group, entry.kind) not in (
                (HELM_RELEASE.group, "HelmRelease"),
                (KUSTOMIZATION.group, "Kustomization"),
            ):
                continue
            version = entry.version or (HELM_RELEASE.version if entry.kind == "HelmRelease" else KUSTOMIZATION.version)
            body = {
                "apiVersion": f"{entry.group}/{version}",
                "kind": entry.kind,
                "metadata": {"name": entry.name, "namespace": entry.namespace},
            }
            if (live := reader.get(body)) is not None:
                live.setdefault("kind", entry.kind)
                found.append(Observed(live, by))
        return found

    def _compliance(
        self,
        reader: Reader,
        obj: dict[str, Any],
        spec: FluxConfigSpec,
        before: dict[str, Any],
        source: dict[str, Any],
        made: list[dict[str, Any]],
        public_key: str | None,
        note: str | None,
    ) -> Success | Waiting:
        observed = [Observed(source), *(Observed(k) for k in made)]
        for kustomization in made:
            observed.extend(self._applied(reader, kustomization))
        artifact = mapping(mapping(source.get("status")).get("artifact"))
        revision = str(artifact["revision"]) if artifact.get("revision") else None
        result = assess(observed, revision, spec.suspend)
        age = _age(obj)
        provisioned = provisioning(
            before.get("provisioningState"), before.get("errorMessage"), result.state,
            spec.wait_for_reconciliation, spec.wait_duration, age, result.first_failure or result.first_pending,
        )  # fmt: skip
        status = obj["status"]
        fields = {
            "complianceState": result.state,
            "statuses": result.statuses,
            "sourceSyncedCommitId": revision,
            "sourceUpdatedAt": artifact.get("lastUpdateTime"),
            "repositoryPublicKey": public_key,
            "provisioningState": provisioned.state,
            "errorMessage": provisioned.error,
        }
        for key, value in fields.items():  # None: the field goes (no source revision yet, no key)
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value
        later = jittered(interval_of(obj))
        if provisioned.state == "Creating":  # come back when the wait runs out
            later = min(later, max(1.0, spec.wait_duration - age))
        suffix = f"; {note}" if note else ""
        if result.state == COMPLIANT:
            return Success(f"Compliant: {len(observed)} objects ready at revision {revision}{suffix}")
        if result.state == SUSPENDED:
            return Waiting("Suspended", "suspended: the source and Kustomizations are suspended", later)
        if result.state == NON_COMPLIANT:
            return Waiting("NonCompliant", f"Non-Compliant: {result.first_failure}{suffix}{_hint(spec)}", later)
        return Waiting("Progressing", f"Pending: {result.first_pending or 'waiting for the objects it made'}", later)

    # -- finalize ----------------------------------------------------------------------------------

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        """Kustomizations first (they prune as flux-applier), then the rest; the applier goes last."""
        meta = obj["metadata"]
        name, namespace = str(meta["name"]), str(meta["namespace"])
        if mapping(obj.get("status")).get("provisioningState") != "Deleting":
            ctx.progress(obj, {"provisioningState": "Deleting"})
        selector = _selector(name, namespace)
        kustomizations = children.listed(ctx.kube, "Kustomization", namespace, selector)
        for kustomization in kustomizations:
            if not kustomization["metadata"].get("deletionTimestamp"):
                children.delete(ctx.kube, kustomization)
        if kustomizations:
            names = ", ".join(sorted(k["metadata"]["name"] for k in kustomizations))
            raise Waiting(
                "Deleting", f"waiting for Kustomizations {names} to finish deleting (and pruning)", DELETE_POLL
            )
        self._await_pruned(ctx, obj)
        for kind in SOURCES:
            for source in children.listed(ctx.kube, kind, namespace, selector):
                children.delete(ctx.kube, source)
        for secret in children.listed(ctx.kube, "Secret", namespace, selector):
            children.delete(ctx.kube, secret)
        self.identity.release(Reader(ctx, self.declared), namespace, str(meta.get("uid")))

    def _await_pruned(self, ctx: Context, obj: dict[str, Any]) -> None:
        """What our Kustomizations pruned and is still finalizing (a HelmRelease uninstalling, a nested
        Kustomization pruning) runs as flux-applier: keep the applier until it is gone."""
        meta = obj["metadata"]
        try:
            entries = FluxConfigSpec.of(obj).kustomizations
        except Stalling:
            return
        made = ",".join(objects.kustomization_name(str(meta["name"]), e.name) for e in entries)
        selector = f"{KUSTOMIZE_NAMESPACE}={meta['namespace']},{KUSTOMIZE_NAME} in ({made})"
        deleting = [
            children.display(found)
            for res in (HELM_RELEASE, KUSTOMIZATION)
            for found in children.listed(ctx.kube, res.kind, None, selector)
            if found["metadata"].get("deletionTimestamp")
        ]
        if deleting:
            raise Waiting("Deleting", f"waiting for {', '.join(sorted(deleting))} to finish deleting", DELETE_POLL)
