"""Typed view of a Kustomization's spec with Flux's defaults; an invalid spec raises ``Stalling``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fluxwarden.controllers.runtime.errors import Stalling
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.runtime.spec import duration, mapping
from fluxwarden.controllers.runtime.unsupported import Rule, Table
from fluxwarden.tenancy.kinds import KUSTOMIZE, SOURCE

KUSTOMIZATION = Resource(KUSTOMIZE, "v1", "kustomizations", "Kustomization")
SOURCE_KINDS = {
    "GitRepository": Resource(SOURCE, "v1", "gitrepositories", "GitRepository"),
    "OCIRepository": Resource(SOURCE, "v1", "ocirepositories", "OCIRepository"),
    "Bucket": Resource(SOURCE, "v1", "buckets", "Bucket"),
}
FINALIZER = "finalizers.fluxcd.io"
FIELD_MANAGER = "kustomize-controller"
NAME_LABEL = "kustomize.toolkit.fluxcd.io/name"
NAMESPACE_LABEL = "kustomize.toolkit.fluxcd.io/namespace"

# Fields of Flux 2.9's Kustomization (kustomize-controller v1.9.5) that fluxwarden does not implement:
# setting one stalls the object (reason UnsupportedField) instead of being silently ignored.
UNSUPPORTED = Table(
    "kustomize-controller",
    (
        Rule("spec.kubeConfig"),
        Rule("spec.decryption"),
        Rule(
            "spec.deletionPolicy",
            ("MirrorPrune",),
            hint="remove it (the default, MirrorPrune, prunes on deletion when spec.prune is true)",
            skip_cleanup=True,  # Orphan must never become a prune
        ),
        Rule("spec.buildMetadata"),
        Rule("spec.healthCheckExprs"),
        Rule("spec.dependsOn[].readyExpr"),
        Rule("spec.ignore"),
        Rule("spec.ignoreMissingComponents", (False,)),
        Rule("spec.postBuild.substituteStrategy", ("WithVariables",)),
        # v1beta2 fields that v1 dropped; the permissive CRDs in manifests/crds keep them as written.
        Rule("spec.patchesStrategicMerge", hint="move them into spec.patches ('fluxwarden fix' does)"),
        Rule("spec.patchesJson6902", hint="move them into spec.patches ('fluxwarden fix' does)"),
    ),
)


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    name: str
    namespace: str
    api_version: str = ""


@dataclass(frozen=True)
class KustomizationSpec:
    source: ObjectRef
    path: str
    interval: float
    retry_interval: float
    timeout: float
    prune: bool
    wait: bool
    force: bool
    health_checks: tuple[ObjectRef, ...]
    depends_on: tuple[ObjectRef, ...]
    service_account: str | None
    substitute: dict[str, str]
    substitute_from: tuple[dict[str, Any], ...]
    raw: dict[str, Any]

    @classmethod
    def of(cls, obj: dict[str, Any]) -> KustomizationSpec:
        spec = mapping(obj.get("spec"))
        namespace = obj["metadata"]["namespace"]
        ref = mapping(spec.get("sourceRef"))
        if ref.get("kind") not in SOURCE_KINDS or not ref.get("name"):
            raise Stalling(
                "InvalidSpec", f"spec.sourceRef must name a {', '.join(SOURCE_KINDS)}; got kind '{ref.get('kind')}'"
            )
        interval = duration(spec, "interval", 600.0)
        post_build = mapping(spec.get("postBuild"))
        return cls(
            source=ObjectRef(str(ref["kind"]), str(ref["name"]), str(ref.get("namespace") or namespace)),
            path=str(spec.get("path") or "./"),
            interval=interval,
            retry_interval=duration(spec, "retryInterval", interval),
            timeout=duration(spec, "timeout", interval),
            prune=bool(spec.get("prune", False)),
            wait=bool(spec.get("wait", False)),
            force=bool(spec.get("force", False)),
            health_checks=tuple(
                ObjectRef(
                    str(c.get("kind")),
                    str(c.get("name")),
                    str(c.get("namespace") or namespace),
                    str(c.get("apiVersion") or ""),
                )
                for c in spec.get("healthChecks") or []
                if isinstance(c, dict)
            ),
            depends_on=tuple(
                ObjectRef("Kustomization", str(d.get("name")), str(d.get("namespace") or namespace))
                for d in spec.get("dependsOn") or []
                if isinstance(d, dict)
            ),
            service_account=spec.get("serviceAccountName") or None,
            substitute={str(k): str(v) for k, v in mapping(post_build.get("substitute")).items()},
            substitute_from=tuple(s for s in post_build.get("substituteFrom") or [] if isinstance(s, dict)),
            raw=spec,
        )
