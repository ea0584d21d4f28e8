"""The tenant's applier: ServiceAccount ``flux-applier`` and its binding, shared by every FluxConfig of a
namespace. Scope ``cluster``: ClusterRoleBinding ``<applier>-<namespace>`` to cluster-admin (only in the
namespaces the platform lists); scope ``namespace``: RoleBinding ``<applier>`` to cluster-admin there.

What was made is found by label, never by name, so a renamed applier leaves no binding behind.
An applier the platform made itself (without our labels) is used as the platform bound it.
"""

from __future__ import annotations

import logging
from typing import Any

from fluxwarden.controllers.fluxconfig import children, objects
from fluxwarden.controllers.fluxconfig.api import FLUX_CONFIG, MANAGED_LABEL, NAMESPACE_LABEL
from fluxwarden.controllers.runtime.kube import Kube
from fluxwarden.controllers.runtime.spec import mapping
from fluxwarden.tenancy import Settings
from fluxwarden.tenancy.fluxconfig import DEFAULT_SCOPE, cluster_scope_allowed

logger = logging.getLogger("fluxwarden.controllers")
RBAC = "rbac.authorization.k8s.io/v1"


def _managed(obj: dict[str, Any] | None) -> bool:
    return obj is not None and mapping(mapping(obj.get("metadata")).get("labels")).get(MANAGED_LABEL) == "true"


def _made(kube: Kube, api_version: str, kind: str, namespace: str, cluster_wide: bool = False) -> list[dict[str, Any]]:
    selector = f"{MANAGED_LABEL}=true,{NAMESPACE_LABEL}={namespace}"
    return children.listed(kube, api_version, kind, None if cluster_wide else namespace, selector)


def _live_configs(kube: Kube, namespace: str, leaving: str | None) -> list[dict[str, Any]]:
    configs, _ = kube.list(FLUX_CONFIG, namespace)
    return [c for c in configs if c["metadata"].get("uid") != leaving and not c["metadata"].get("deletionTimestamp")]


def _cluster_scoped(settings: Settings, namespace: str, configs: list[dict[str, Any]]) -> bool:
    if not cluster_scope_allowed(settings, namespace):
        return False
    return any((mapping(c.get("spec")).get("scope") or DEFAULT_SCOPE) == "cluster" for c in configs)


class Identity:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.applier = settings.applier

    def ensure(self, kube: Kube, namespace: str, scope: str) -> str | None:
        """Make the applier and its binding; a note when the platform's own applier is used instead."""
        account = objects.service_account(namespace, self.applier)
        live = children.get(kube, account)
        if live is not None and not _managed(live):
            return f"uses the platform's ServiceAccount {namespace}/{self.applier} as it is bound (no binding made)"
        children.apply(kube, account, live)
        if scope == "cluster":
            children.apply(kube, objects.cluster_role_binding(namespace, self.applier))
        else:
            children.apply(kube, objects.role_binding(namespace, self.applier))
            if not _cluster_scoped(self.settings, namespace, _live_configs(kube, namespace, None)):
                self.revoke_cluster_admin(kube, namespace)
        self._drop_renamed(kube, namespace)
        return None

    def revoke_cluster_admin(self, kube: Kube, namespace: str) -> None:
        """Every ClusterRoleBinding made for ``namespace`` goes (scope cluster is not, or no longer, allowed)."""
        for binding in _made(kube, RBAC, "ClusterRoleBinding", namespace, cluster_wide=True):
            logger.info(
                "removing ClusterRoleBinding %s: no FluxConfig of scope cluster may use it", binding["metadata"]["name"]
            )
            children.delete(kube, binding)

    def _drop_renamed(self, kube: Kube, namespace: str) -> None:
        """Bindings and accounts made for an applier of another name (the setting changed) go."""
        for kind, cluster_wide in (("ClusterRoleBinding", True), ("RoleBinding", False)):
            for binding in _made(kube, RBAC, kind, namespace, cluster_wide):
                subjects = binding.get("subjects") or []
                if not any(mapping(s).get("name") == self.applier for s in subjects):
                    children.delete(kube, binding)
        for account in _made(kube, "v1", "ServiceAccount", namespace):
            if account["metadata"]["name"] != self.applier:
                children.delete(kube, account)

    def release(self, kube: Kube, namespace: str, leaving: str) -> None:
        """FluxConfig ``leaving`` is deleted: the last one of the namespace takes the applier with it."""
        others = _live_configs(kube, namespace, leaving)
        if not _cluster_scoped(self.settings, namespace, others):
            self.revoke_cluster_admin(kube, namespace)
        if others:
            return
        for binding in _made(kube, RBAC, "RoleBinding", namespace):
            children.delete(kube, binding)
        for account in _made(kube, "v1", "ServiceAccount", namespace):
            children.delete(kube, account)
