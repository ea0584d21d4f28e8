"""What a platform team can tune: the applier, exemptions, the opt-out and the stricter opt-ins.

Plain data. Reading it from flags or ``FLUXWARDEN_*`` variables is the CLI's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["deny", "fix"]


@dataclass(frozen=True)
class Settings:
    """Tenancy settings; the defaults are Azure's ``microsoft.flux`` multi-tenant defaults.

    ``enforce=False`` is Azure's ``multiTenancy.enforce=false``: it turns the cross-namespace and
    service-account rules off and changes nothing else. ``mode="fix"`` lets the mutating webhook
    rewrite a cross-namespace reference into the object's own namespace instead of only denying it.
    """

    enforce: bool = True
    applier: str = "flux-applier"
    allowed_service_accounts: frozenset[str] = frozenset()
    exempt_namespaces: frozenset[str] = frozenset({"flux-system"})
    exempt_users: frozenset[str] = frozenset()
    exempt_groups: frozenset[str] = frozenset()
    mode: Mode = "deny"
    block_cross_namespace_dependencies: bool = False
    block_remote_clusters: bool = False
    block_remote_bases: bool = True
    # Where a FluxConfig of scope cluster (cluster-admin for its repository) is honoured: Azure's
    # default configuration namespace and the extension's own.
    cluster_scope_namespaces: frozenset[str] = frozenset({"cluster-config", "flux-system"})

    def service_account_allowed(self, name: str) -> bool:
        return name == self.applier or name in self.allowed_service_accounts


@dataclass(frozen=True)
class Requester:
    """Who sent the request (AdmissionReview ``userInfo``); offline checks have nobody."""

    username: str = ""
    groups: frozenset[str] = field(default_factory=frozenset)


def is_exempt(settings: Settings, namespace: str, requester: Requester | None = None) -> bool:
    """Exempt namespaces, users and groups are never blocked."""
    if namespace in settings.exempt_namespaces:
        return True
    if requester is None:
        return False
    return requester.username in settings.exempt_users or bool(requester.groups & settings.exempt_groups)
