"""What a FluxConfig makes, as plain objects: its source, Kustomizations, auth Secret and applier RBAC.

Pure: a spec in, Kubernetes objects out. Names and labels are the microsoft.flux extension's:
the source ``<config>``, Kustomizations ``<config>-<name>``, all in ``spec.namespace``.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

from fluxwarden.controllers.fluxconfig.api import (
    FLUX_CONFIG,
    GENERATED_KEY_LABEL,
    KUSTOMIZATION,
    MANAGED_LABEL,
    NAME_LABEL,
    NAMESPACE_LABEL,
    SHARD_LABEL,
    SOURCES,
    USE_MANAGED_SOURCE,
    FluxConfigSpec,
    KustomizationDef,
    seconds,
)
from fluxwarden.controllers.runtime.spec import mapping
from fluxwarden.tenancy.fluxconfig import ssh_url, url_kind

CLUSTER_ADMIN = "cluster-admin"
RBAC = "rbac.authorization.k8s.io/v1"
_GIT_PROVIDERS = {"Azure": "azure", "GitHub": "github"}  # Generic is Flux's default: no field


def source_kind(spec: FluxConfigSpec) -> str:
    """The Flux kind of the source: an Azure Blob container is a Bucket with provider azure."""
    return "Bucket" if spec.source_kind == "AzureBlob" else spec.source_kind


def labels(spec: FluxConfigSpec) -> dict[str, str]:
    found = {MANAGED_LABEL: "true", NAME_LABEL: spec.name, NAMESPACE_LABEL: spec.namespace}
    if spec.shard:
        found[SHARD_LABEL] = spec.shard
    return found


def shared_labels(namespace: str) -> dict[str, str]:
    """The applier's RBAC serves every FluxConfig of the namespace: no config name on it."""
    return {MANAGED_LABEL: "true", NAMESPACE_LABEL: namespace}


def owner_reference(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": FLUX_CONFIG.api_version,
        "kind": FLUX_CONFIG.kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": False,
    }


def _metadata(spec: FluxConfigSpec, name: str, owner: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "namespace": spec.namespace, "labels": labels(spec), "ownerReferences": [owner]}


def kustomization_name(config: str, entry: str) -> str:
    return f"{config}-{entry}"


def auth_secret_name(config: str) -> str:
    return f"{config}-auth"


def _duration(value: int | None) -> str:
    return f"{value}s"


def _timing(spec: FluxConfigSpec) -> dict[str, str]:
    where = f"spec.{spec.source_block}"
    return {
        "interval": _duration(seconds(spec.source, "syncIntervalInSeconds", where)),
        "timeout": _duration(seconds(spec.source, "timeoutInSeconds", where)),
    }


def _git(spec: FluxConfigSpec, secret: str | None) -> dict[str, Any]:
    block = spec.source
    url = str(block["url"])
    body: dict[str, Any] = {"url": ssh_url(url) if url_kind(url) == "ssh" else url, **_timing(spec)}
    ref = {k: str(v) for k, v in mapping(block.get("repositoryRef")).items() if k in REF_FIELDS and v}
    if ref:
        body["ref"] = ref
    if provider := _GIT_PROVIDERS.get(str(block.get("provider") or "Generic")):
        body["provider"] = provider
    if secret:
        body["secretRef"] = {"name": secret}
    return body


REF_FIELDS = ("branch", "tag", "semver", "commit")


def _bucket(spec: FluxConfigSpec, secret: str | None) -> dict[str, Any]:
    block = spec.source
    url = str(block["url"])
    parts = urlsplit(url)
    body: dict[str, Any] = {**_timing(spec)}
    if spec.source_kind == "AzureBlob":
        body.update(provider="azure", bucketName=str(block.get("containerName") or ""), endpoint=url.rstrip("/"))
    else:
        insecure = bool(block.get("insecure")) or parts.scheme == "http"
        body.update(provider="generic", bucketName=str(block.get("bucketName") or ""), endpoint=parts.netloc)
        if insecure:
            body["insecure"] = True
    if secret:
        body["secretRef"] = {"name": secret}
    return body


def _oci(spec: FluxConfigSpec, secret: str | None) -> dict[str, Any]:
    block = spec.source
    body: dict[str, Any] = {"url": str(block["url"]), **_timing(spec)}
    ref = {k: str(v) for k, v in mapping(block.get("repositoryRef")).items() if k in ("tag", "semver", "digest") and v}
    body["ref"] = ref or {"tag": "latest"}
    if selector := {k: str(v) for k, v in mapping(block.get("layerSelector")).items() if v}:
        body["layerSelector"] = selector
    if block.get("insecure"):
        body["insecure"] = True
    if secret:
        body["secretRef"] = {"name": secret}
    return body


def source(spec: FluxConfigSpec, owner: dict[str, Any], secret: str | None) -> dict[str, Any]:
    """The config's source named ``<config>``; ``secret`` is the auth Secret (made or localAuthRef)."""
    kind = source_kind(spec)
    body = {"GitRepository": _git, "Bucket": _bucket, "OCIRepository": _oci}[kind](spec, secret)
    if spec.suspend:
        body["suspend"] = True
    return {
        "apiVersion": SOURCES[kind].api_version,
        "kind": kind,
        "metadata": _metadata(spec, spec.name, owner),
        "spec": body,
    }


def managed_source_patch(spec: FluxConfigSpec) -> dict[str, Any]:
    """HelmReleases annotated use-managed-source take their chart from the config's own source."""
    patch = (
        "apiVersion: helm.toolkit.fluxcd.io/v2\n"
        "kind: HelmRelease\n"
        "metadata:\n"
        "  name: use-managed-source\n"
        "spec:\n"
        "  chart:\n"
        "    spec:\n"
        "      sourceRef:\n"
        f"        kind: {source_kind(spec)}\n"
        f"        name: {spec.name}\n"
        f"        namespace: {spec.namespace}\n"
    )
    target = {
        "group": "helm.toolkit.fluxcd.io",
        "kind": "HelmRelease",
        "annotationSelector": f"{USE_MANAGED_SOURCE}=true",
    }
    return {"patch": patch, "target": target}


def kustomization(spec: FluxConfigSpec, entry: KustomizationDef, owner: dict[str, Any], applier: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sourceRef": {"kind": source_kind(spec), "name": spec.name},
        "path": entry.path,
        "interval": _duration(entry.interval),
        "timeout": _duration(entry.timeout),
        "prune": entry.prune,
        "force": entry.force,
        "wait": entry.wait,
        "serviceAccountName": applier,
    }
    if source_kind(spec) != "OCIRepository":  # a HelmRelease's chart.spec.sourceRef cannot be an OCIRepository
        body["patches"] = [managed_source_patch(spec)]
    if entry.retry_interval is not None:
        body["retryInterval"] = _duration(entry.retry_interval)
    if entry.depends_on:
        body["dependsOn"] = [{"name": kustomization_name(spec.name, d)} for d in entry.depends_on]
    if entry.post_build:
        body["postBuild"] = entry.post_build
    if spec.suspend:
        body["suspend"] = True
    return {
        "apiVersion": KUSTOMIZATION.api_version,
        "kind": KUSTOMIZATION.kind,
        "metadata": _metadata(spec, kustomization_name(spec.name, entry.name), owner),
        "spec": body,
    }


def auth_secret(spec: FluxConfigSpec, owner: dict[str, Any], data: dict[str, bytes], generated: bool) -> dict[str, Any]:
    metadata = _metadata(spec, auth_secret_name(spec.name), owner)
    if generated:
        metadata["labels"][GENERATED_KEY_LABEL] = "true"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode() for k, v in sorted(data.items())},
    }


def service_account(namespace: str, applier: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": applier, "namespace": namespace, "labels": shared_labels(namespace)},
    }


def _subject(namespace: str, applier: str) -> list[dict[str, str]]:
    return [{"kind": "ServiceAccount", "name": applier, "namespace": namespace}]


def role_binding(namespace: str, applier: str) -> dict[str, Any]:
    """Scope namespace: every right, in this namespace only."""
    return {
        "apiVersion": RBAC,
        "kind": "RoleBinding",
        "metadata": {"name": applier, "namespace": namespace, "labels": shared_labels(namespace)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ADMIN},
        "subjects": _subject(namespace, applier),
    }


def cluster_role_binding_name(namespace: str, applier: str) -> str:
    return f"{applier}-{namespace}"


def cluster_role_binding(namespace: str, applier: str) -> dict[str, Any]:
    """Scope cluster: cluster-admin, named per namespace (honoured only in the listed namespaces)."""
    return {
        "apiVersion": RBAC,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": cluster_role_binding_name(namespace, applier), "labels": shared_labels(namespace)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ADMIN},
        "subjects": _subject(namespace, applier),
    }
