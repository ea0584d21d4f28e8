"""The FluxConfig kind (clusterconfig.azure.com/v1beta1) and a typed view of its spec, with Azure's defaults.

The spec mirrors the ARM ``fluxConfigurations`` properties field for field (camelCase, durations in
seconds). A malformed field raises ``Stalling("InvalidSpec")`` naming it; the Azure CLI's rules
themselves live in ``fluxwarden.tenancy`` and are applied before this view is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fluxwarden.controllers.runtime.errors import Stalling
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.runtime.spec import mapping
from fluxwarden.controllers.runtime.unsupported import Rule, Table
from fluxwarden.tenancy import Settings
from fluxwarden.tenancy.fluxconfig import DEFAULT_KUSTOMIZATION, SOURCE_FIELDS, iso_duration_seconds
from fluxwarden.tenancy.kinds import FLUXCONFIG, HELM, KUSTOMIZE, SOURCE

FLUX_CONFIG = Resource(FLUXCONFIG, "v1beta1", "fluxconfigs", "FluxConfig")
KUSTOMIZATION = Resource(KUSTOMIZE, "v1", "kustomizations", "Kustomization")
HELM_RELEASE = Resource(HELM, "v2", "helmreleases", "HelmRelease")
GIT_REPOSITORY = Resource(SOURCE, "v1", "gitrepositories", "GitRepository")
BUCKET = Resource(SOURCE, "v1", "buckets", "Bucket")
OCI_REPOSITORY = Resource(SOURCE, "v1", "ocirepositories", "OCIRepository")
SOURCES = {"GitRepository": GIT_REPOSITORY, "Bucket": BUCKET, "OCIRepository": OCI_REPOSITORY}
SECRET = Resource("", "v1", "secrets", "Secret")
SERVICE_ACCOUNT = Resource("", "v1", "serviceaccounts", "ServiceAccount")
ROLE_BINDING = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
CLUSTER_ROLE_BINDING = Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding")
# Every kind the controller makes, reads or deletes, by kind: where its objects live on the API.
_KNOWN = (FLUX_CONFIG, KUSTOMIZATION, HELM_RELEASE, *SOURCES.values(), SECRET, SERVICE_ACCOUNT, ROLE_BINDING)
KINDS = {r.kind: r for r in (*_KNOWN, CLUSTER_ROLE_BINDING)}

FINALIZER = "clusterconfig.azure.com/finalizer"
FIELD_MANAGER = "fluxconfig-controller"
MANAGED_LABEL = "clusterconfig.azure.com/is-managed"
NAME_LABEL = "clusterconfig.azure.com/name"
NAMESPACE_LABEL = "clusterconfig.azure.com/namespace"
GENERATED_KEY_LABEL = "clusterconfig.azure.com/generated-key"
USE_MANAGED_SOURCE = "clusterconfig.azure.com/use-managed-source"
SHARD_LABEL = "sharding.fluxcd.io/key"
DIGEST_ANNOTATION = "clusterconfig.azure.com/applied-digest"  # what our last apply wrote, to skip no-ops

DEFAULT_SECONDS = 600  # Azure's default for every interval and timeout
SOURCE_KINDS = tuple(SOURCE_FIELDS)
KeyAlgorithm = Literal["rsa", "ecdsa", "ed25519"]

# ARM fields fluxwarden cannot honour (an Azure identity platform, OCI verification): Stalled, never
# ignored. ARM fields that hold secrets (ociRepository.tlsConfig) are not in the CRD at all: the API
# server refuses them (kubectl's strict field validation) rather than store them.
UNSUPPORTED = Table(
    "microsoft.flux fluxconfig-controller",
    (
        Rule("spec.azureBlob.managedIdentity", hint="use an account key, a SAS token or a service principal"),
        Rule("spec.ociRepository.useWorkloadIdentity", (False,), hint="use spec.ociRepository.localAuthRef"),
        Rule("spec.ociRepository.verify"),
        Rule("spec.ociRepository.serviceAccountName"),
    ),
)


@dataclass(frozen=True)
class FluxConfigOptions:
    settings: Settings = field(default_factory=Settings)
    ssh_key_algorithm: KeyAlgorithm = "rsa"  # Azure DevOps accepts only RSA


@dataclass(frozen=True)
class KustomizationDef:
    """One entry of ``spec.kustomizations``."""

    name: str
    path: str
    depends_on: tuple[str, ...]
    interval: int
    timeout: int
    retry_interval: int | None
    prune: bool
    force: bool
    wait: bool
    post_build: dict[str, Any]


def seconds(block: dict[str, Any], key: str, where: str, default: int | None = DEFAULT_SECONDS) -> int | None:
    """``block[key]`` as a positive whole number of seconds; ``default`` when unset."""
    raw = block.get(key)
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        raise Stalling("InvalidSpec", f"{where}.{key}: must be a positive number of seconds, got {raw!r}")
    return int(raw)


def _kustomizations(spec: dict[str, Any]) -> tuple[KustomizationDef, ...]:
    raw = mapping(spec.get("kustomizations"))
    if not raw:
        raw = {DEFAULT_KUSTOMIZATION: {"path": "./"}}
    found = []
    for name, body in sorted(raw.items()):
        where = f"spec.kustomizations.{name}"
        if not isinstance(body, dict):
            raise Stalling("InvalidSpec", f"{where}: must be an object with path, dependsOn, prune...")
        depends = body.get("dependsOn") or []
        if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
            raise Stalling("InvalidSpec", f"{where}.dependsOn: must be a list of sibling kustomization names")
        found.append(
            KustomizationDef(
                name=str(name),
                path=str(body.get("path") or "./"),
                depends_on=tuple(depends),
                interval=seconds(body, "syncIntervalInSeconds", where) or DEFAULT_SECONDS,
                timeout=seconds(body, "timeoutInSeconds", where) or DEFAULT_SECONDS,
                retry_interval=seconds(body, "retryIntervalInSeconds", where, None),
                prune=bool(body.get("prune", False)),
                force=bool(body.get("force", False)),
                wait=bool(body.get("wait", True)),
                post_build=mapping(body.get("postBuild")),
            )
        )
    return tuple(found)


def iso_duration(text: str, where: str) -> float:
    """Seconds in an ISO-8601 duration (``PT1H``, ``P1DT30M``), as ARM's reconciliationWaitDuration."""
    found = iso_duration_seconds(text.strip())
    if found is None:
        raise Stalling("InvalidSpec", f"{where}: {text!r} is not an ISO-8601 duration; use e.g. PT10M or PT1H")
    return found


@dataclass(frozen=True)
class FluxConfigSpec:
    name: str
    namespace: str
    scope: str
    source_kind: str
    suspend: bool
    source: dict[str, Any]  # the block of the source kind (gitRepository, bucket, azureBlob, ociRepository)
    kustomizations: tuple[KustomizationDef, ...]
    protected_settings: str | None  # Secret name (configurationProtectedSettingsRef)
    wait_for_reconciliation: bool
    wait_duration: float
    shard: str | None  # the config's sharding.fluxcd.io/key, passed on so one shard runs it all

    @property
    def source_block(self) -> str:
        return SOURCE_FIELDS[self.source_kind]

    @classmethod
    def of(cls, obj: dict[str, Any]) -> FluxConfigSpec:
        meta, spec = mapping(obj.get("metadata")), mapping(obj.get("spec"))
        kind = str(spec.get("sourceKind") or "GitRepository")
        if kind not in SOURCE_KINDS:
            raise Stalling("InvalidSpec", f"spec.sourceKind: must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
        block = mapping(spec.get(SOURCE_FIELDS[kind]))
        if not block.get("url"):
            raise Stalling("InvalidSpec", f"spec.{SOURCE_FIELDS[kind]}.url: required for sourceKind {kind}")
        wait_text = spec.get("reconciliationWaitDuration")
        return cls(
            name=str(meta.get("name")),
            namespace=str(spec.get("namespace") or meta.get("namespace")),
            scope=str(spec.get("scope") or "cluster"),
            source_kind=kind,
            suspend=bool(spec.get("suspend", False)),
            source=block,
            kustomizations=_kustomizations(spec),
            protected_settings=mapping(spec.get("configurationProtectedSettingsRef")).get("name") or None,
            wait_for_reconciliation=bool(spec.get("waitForReconciliation", False)),
            shard=mapping(meta.get("labels")).get(SHARD_LABEL) or None,
            wait_duration=(
                iso_duration(str(wait_text), "spec.reconciliationWaitDuration") if wait_text else float(DEFAULT_SECONDS)
            ),
        )
