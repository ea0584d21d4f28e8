"""Which FluxConfig a change of a Flux object concerns, so compliance follows its children at once."""

from __future__ import annotations

from typing import Any

from fluxwarden.controllers.fluxconfig.api import MANAGED_LABEL, NAME_LABEL, NAMESPACE_LABEL, SOURCES
from fluxwarden.controllers.fluxconfig.objects import kustomization_name
from fluxwarden.controllers.runtime.controller import Key, Watch
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.runtime.spec import mapping
from fluxwarden.tenancy.fluxconfig import DEFAULT_KUSTOMIZATION

SECRETS = Resource("", "v1", "secrets", "Secret")
WATCH_LABEL = "reconcile.fluxcd.io/watch"  # Flux's opt-in for Secrets whose changes reconcile their users
KUSTOMIZE_NAME = "kustomize.toolkit.fluxcd.io/name"
KUSTOMIZE_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"


def _labels(obj: dict[str, Any]) -> dict[str, Any]:
    return mapping(mapping(obj.get("metadata")).get("labels"))


def _moved(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """A change compliance can see: status, generation, suspension, deletion (not a label or our own apply)."""
    if old is None:
        return True
    new_meta, old_meta = mapping(new.get("metadata")), mapping(old.get("metadata"))
    return (
        new.get("status") != old.get("status")
        or new_meta.get("generation") != old_meta.get("generation")
        or bool(new_meta.get("deletionTimestamp")) != bool(old_meta.get("deletionTimestamp"))
    )


def made_by(obj: dict[str, Any]) -> Key | None:
    """The FluxConfig that made ``obj`` (its labels), if one did."""
    labels = _labels(obj)
    if labels.get(MANAGED_LABEL) == "true" and labels.get(NAME_LABEL) and labels.get(NAMESPACE_LABEL):
        return str(labels[NAMESPACE_LABEL]), str(labels[NAME_LABEL])
    return None


def _makes(config: dict[str, Any], namespace: str, name: str) -> bool:
    """``config`` makes Kustomization ``namespace/name`` (``<config>-<entry>``)."""
    meta = mapping(config.get("metadata"))
    if meta.get("namespace") != namespace:
        return False
    entries = mapping(mapping(config.get("spec")).get("kustomizations")) or {DEFAULT_KUSTOMIZATION: {}}
    return any(kustomization_name(str(meta.get("name")), str(entry)) == name for entry in entries)


def _source_mapper(new: dict[str, Any], old: dict[str, Any] | None, own: list[dict[str, Any]]) -> list[Key]:
    key = made_by(new)
    return [key] if key and _moved(new, old) else []


def _flux_object_mapper(new: dict[str, Any], old: dict[str, Any] | None, own: list[dict[str, Any]]) -> list[Key]:
    """A Kustomization a FluxConfig made, or a HelmRelease/Kustomization that one of those applied."""
    if not _moved(new, old):
        return []
    if key := made_by(new):
        return [key]
    labels = _labels(new)
    namespace, name = labels.get(KUSTOMIZE_NAMESPACE), labels.get(KUSTOMIZE_NAME)
    if not namespace or not name:
        return []
    return [
        (str(c["metadata"]["namespace"]), str(c["metadata"]["name"]))
        for c in own
        if _makes(c, str(namespace), str(name))
    ]


def source_watches() -> list[Watch]:
    return [Watch(res, _source_mapper, label_selector=f"{MANAGED_LABEL}=true") for res in SOURCES.values()]


def flux_object_watch(resource: Resource) -> Watch:
    return Watch(resource, _flux_object_mapper)


def _protected_settings_mapper(new: dict[str, Any], old: dict[str, Any] | None, own: list[dict[str, Any]]) -> list[Key]:
    """FluxConfigs whose protected-settings Secret changed (metadata only: no Secret data in memory)."""
    meta = mapping(new.get("metadata"))
    if old is not None and meta.get("resourceVersion") == mapping(old.get("metadata")).get("resourceVersion"):
        return []
    return [
        (str(c["metadata"]["namespace"]), str(c["metadata"]["name"]))
        for c in own
        if c["metadata"].get("namespace") == meta.get("namespace")
        and mapping(mapping(c.get("spec")).get("configurationProtectedSettingsRef")).get("name") == meta.get("name")
    ]


def protected_settings_watch() -> Watch:
    """Secrets labelled ``reconcile.fluxcd.io/watch: Enabled`` (``create fluxconfig`` labels its own)."""
    return Watch(SECRETS, _protected_settings_mapper, f"{WATCH_LABEL}=Enabled", metadata_only=True)


_SHARED = (
    Resource("", "v1", "serviceaccounts", "ServiceAccount"),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding"),
)


def _identity_mapper(new: dict[str, Any], old: dict[str, Any] | None, own: list[dict[str, Any]]) -> list[Key]:
    """Every FluxConfig of the namespace the applier serves (a binding deleted by hand comes back)."""
    meta = mapping(new.get("metadata"))
    if old is not None and meta.get("resourceVersion") == mapping(old.get("metadata")).get("resourceVersion"):
        return []
    namespace = _labels(new).get(NAMESPACE_LABEL)
    return [
        (str(c["metadata"]["namespace"]), str(c["metadata"]["name"]))
        for c in own
        if c["metadata"].get("namespace") == namespace
    ]


def identity_watches() -> list[Watch]:
    """The applier and its bindings, which the FluxConfigs of a namespace share (metadata only)."""
    return [Watch(res, _identity_mapper, f"{MANAGED_LABEL}=true", metadata_only=True) for res in _SHARED]
