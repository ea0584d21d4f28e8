"""Which FluxConfig a change of a Flux object concerns, so compliance follows its children at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fluxwarden.controllers.fluxconfig.api import (
    CLUSTER_ROLE_BINDING,
    HELM_RELEASE,
    KUSTOMIZATION,
    MANAGED_LABEL,
    NAME_LABEL,
    NAMESPACE_LABEL,
    ROLE_BINDING,
    SECRET,
    SERVICE_ACCOUNT,
    SOURCES,
)
from fluxwarden.controllers.fluxconfig.objects import kustomization_name
from fluxwarden.controllers.runtime.controller import Key, Watch
from fluxwarden.controllers.runtime.kube import key_of
from fluxwarden.controllers.runtime.spec import mapping
from fluxwarden.tenancy.fluxconfig import DEFAULT_KUSTOMIZATION

WATCH_LABEL = "reconcile.fluxcd.io/watch"  # Flux's opt-in for Secrets whose changes reconcile their users
KUSTOMIZE_NAME = "kustomize.toolkit.fluxcd.io/name"
KUSTOMIZE_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"


def _labels(obj: dict[str, Any]) -> dict[str, Any]:
    return mapping(mapping(obj.get("metadata")).get("labels"))


def _compliance_view(obj: dict[str, Any]) -> tuple[Any, ...]:
    """The fields compliance reads: a change of anything else (``lastHandledReconcileAt``) wakes no one."""
    meta, status = mapping(obj.get("metadata")), mapping(obj.get("status"))
    artifact = mapping(status.get("artifact"))
    history = status.get("history") or [{}]
    return (
        meta.get("generation"), bool(meta.get("deletionTimestamp")), status.get("observedGeneration"),
        status.get("conditions"), status.get("lastAppliedRevision"), artifact.get("revision"),
        artifact.get("lastUpdateTime"), mapping(status.get("inventory")).get("entries"),
        history[0] if isinstance(history, list) and history else None, status.get("helmChart"),
        status.get("failures"), status.get("installFailures"), status.get("upgradeFailures"),
    )  # fmt: skip


def _moved(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """A change compliance can see (a new object or a deletion counts); not our own apply, not a label."""
    return old is None or _compliance_view(new) != _compliance_view(old)


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


def _own(key: Key | None, own: list[dict[str, Any]]) -> list[Key]:
    """``key`` if it is one of this controller's FluxConfigs (another shard's are not ours to reconcile)."""
    return [key] if key is not None and any(key_of(c) == key for c in own) else []


def _source_mapper(new: dict[str, Any], old: dict[str, Any] | None, own: list[dict[str, Any]]) -> list[Key]:
    return _own(made_by(new), own) if _moved(new, old) else []


def _flux_object_mapper(new: dict[str, Any], old: dict[str, Any] | None, own: list[dict[str, Any]]) -> list[Key]:
    """A Kustomization a FluxConfig made, or a HelmRelease/Kustomization that one of those applied."""
    if not _moved(new, old):
        return []
    if key := made_by(new):
        return _own(key, own)
    labels = _labels(new)
    namespace, name = labels.get(KUSTOMIZE_NAMESPACE), labels.get(KUSTOMIZE_NAME)
    if not namespace or not name:
        return []
    return [
        (str(c["metadata"]["namespace"]), str(c["metadata"]["name"]))
        for c in own
        if _makes(c, str(namespace), str(name))
    ]


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


def _nobody(new: dict[str, Any], old: dict[str, Any] | None, own: list[dict[str, Any]]) -> list[Key]:
    return []


MANAGED = f"{MANAGED_LABEL}=true"


@dataclass(frozen=True)
class Watches:
    """What the controller watches; their caches also serve its reads (see ``reader``)."""

    sources: dict[str, Watch] = field(
        default_factory=lambda: {kind: Watch(res, _source_mapper, MANAGED) for kind, res in SOURCES.items()}
    )
    kustomizations: Watch = field(default_factory=lambda: Watch(KUSTOMIZATION, _flux_object_mapper))
    helm_releases: Watch = field(default_factory=lambda: Watch(HELM_RELEASE, _flux_object_mapper))
    # Secrets: metadata only (no Secret data in memory); ours, and the protected settings opted in.
    auth_secrets: Watch = field(default_factory=lambda: Watch(SECRET, _nobody, MANAGED, metadata_only=True))
    protected_settings: Watch = field(
        default_factory=lambda: Watch(SECRET, _protected_settings_mapper, f"{WATCH_LABEL}=Enabled", metadata_only=True)
    )
    # The applier and its bindings, which the FluxConfigs of a namespace share: a deleted one comes back.
    service_accounts: Watch = field(
        default_factory=lambda: Watch(SERVICE_ACCOUNT, _identity_mapper, MANAGED, metadata_only=True)
    )
    role_bindings: Watch = field(default_factory=lambda: Watch(ROLE_BINDING, _identity_mapper, MANAGED))
    cluster_role_bindings: Watch = field(
        default_factory=lambda: Watch(CLUSTER_ROLE_BINDING, _identity_mapper, MANAGED, cluster_scoped=True)
    )

    def all(self) -> list[Watch]:
        return [
            *self.sources.values(), self.kustomizations, self.helm_releases, self.auth_secrets,
            self.protected_settings, self.service_accounts, self.role_bindings, self.cluster_role_bindings,
        ]  # fmt: skip

    def by_kind(self) -> dict[str, Watch]:
        """The watch whose cache holds objects of a kind the controller makes or reads."""
        return {
            **self.sources, "Kustomization": self.kustomizations, "HelmRelease": self.helm_releases,
            "Secret": self.auth_secrets, "ServiceAccount": self.service_accounts,
            "RoleBinding": self.role_bindings, "ClusterRoleBinding": self.cluster_role_bindings,
        }  # fmt: skip
