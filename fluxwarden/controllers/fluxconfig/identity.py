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
from fluxwarden.controllers.fluxconfig.reader import Reader
from fluxwarden.controllers.runtime.spec import mapping
from fluxwarden.tenancy import Settings
from fluxwarden.tenancy.fluxconfig import DEFAULT_SCOPE, cluster_scope_allowed

logger = logging.getLogger("fluxwarden.controllers")


def _managed(obj: dict[str, Any] | None) -> bool:
    return obj is not None and mapping(mapping(obj.get("metadata")).get("labels")).get(MANAGED_LABEL) == "true"


def _made(reader: Reader, kind: str, namespace: str, cluster_wide: bool = False) -> list[dict[str, Any]]:
    labels = {MANAGED_LABEL: "true", NAMESPACE_LABEL: namespace}
    return reader.listed(kind, None if cluster_wide else namespace, labels)


def _live_configs(reader: Reader, namespace: str, leaving: str | None) -> list[dict[str, Any]]:
    configs, _ = reader.ctx.kube.list(FLUX_CONFIG, namespace)
    return [c for c in configs if c["metadata"].get("uid") != leaving and not c["metadata"].get("deletionTimestamp")]


def _cluster_scoped(settings: Settings, namespace: str, configs: list[dict[str, Any]]) -> bool:
    if not cluster_scope_allowed(settings, namespace):
        return False
    return any((mapping(c.get("spec")).get("scope") or DEFAULT_SCOPE) == "cluster" for c in configs)


class Identity:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.applier = settings.applier

    def ensure(self, reader: Reader, namespace: str, scope: str) -> str | None:
        """Make the applier and its binding; a note when the platform's own applier is used instead."""
        kube = reader.ctx.kube
        account = objects.service_account(namespace, self.applier)
        live = reader.get(account)
        if live is not None and not _managed(live):
            return f"uses the platform's ServiceAccount {namespace}/{self.applier} as it is bound (no binding made)"
        children.apply(kube, account, live)
        if scope == "cluster":
            binding = objects.cluster_role_binding(namespace, self.applier)
        else:
            binding = objects.role_binding(namespace, self.applier)
        children.apply(kube, binding, reader.get(binding))
        stale_admin = scope != "cluster" and _made(reader, "ClusterRoleBinding", namespace, cluster_wide=True)
        if stale_admin and not _cluster_scoped(self.settings, namespace, _live_configs(reader, namespace, None)):
            self.revoke_cluster_admin(reader, namespace)
        self._drop_renamed(reader, namespace)
        return None

    def revoke_cluster_admin(self, reader: Reader, namespace: str) -> None:
        """Every ClusterRoleBinding made for ``namespace`` goes (scope cluster is not, or no longer, allowed)."""
        for binding in _made(reader, "ClusterRoleBinding", namespace, cluster_wide=True):
            logger.info(
                "removing ClusterRoleBinding %s: no FluxConfig of scope cluster may use it", binding["metadata"]["name"]
            )
            children.delete(reader.ctx.kube, binding)

    def _drop_renamed(self, reader: Reader, namespace: str) -> None:
        """Bindings and accounts made for an applier of another name (the setting changed) go."""
        expected = {
            "ClusterRoleBinding": objects.cluster_role_binding_name(namespace, self.applier),
            "RoleBinding": self.applier,
            "ServiceAccount": self.applier,
        }
        for kind, name in expected.items():
            for made in _made(reader, kind, namespace, cluster_wide=kind == "ClusterRoleBinding"):
                if made["metadata"]["name"] != name:
                    children.delete(reader.ctx.kube, made)

    def release(self, reader: Reader, namespace: str, leaving: str) -> None:
        """FluxConfig ``leaving`` is deleted: the last one of the namespace takes the applier with it."""
        others = _live_configs(reader, namespace, leaving)
        if not _cluster_scoped(self.settings, namespace, others):
            self.revoke_cluster_admin(reader, namespace)
        if others:
            return
        for binding in _made(reader, "RoleBinding", namespace):
            children.delete(reader.ctx.kube, binding)
        for account in _made(reader, "ServiceAccount", namespace):
            children.delete(reader.ctx.kube, account)
