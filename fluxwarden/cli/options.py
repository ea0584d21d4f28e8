"""Tenancy settings from flags, each defaulting to a ``FLUXWARDEN_*`` environment variable."""

from __future__ import annotations

import argparse
import os

from fluxwarden.errors import UsageError
from fluxwarden.tenancy import Settings

_FALSE = frozenset({"0", "false", "no", "off"})
_TRUE = frozenset({"1", "true", "yes", "on"})


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise UsageError(f"{name}={raw!r} is not a boolean; use true or false")


def _split(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """Flags for every :class:`Settings` field; each names its environment variable in --help."""
    group = parser.add_argument_group("tenancy settings (flag, or the FLUXWARDEN_* variable shown)")
    group.add_argument(
        "--enforce",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rules on (default); --no-enforce is Azure's multiTenancy.enforce=false [FLUXWARDEN_ENFORCE]",
    )
    group.add_argument("--applier", default=None, help="applier service account [FLUXWARDEN_APPLIER, flux-applier]")
    group.add_argument(
        "--allowed-service-accounts", default=None, help="comma list [FLUXWARDEN_ALLOWED_SERVICE_ACCOUNTS]"
    )
    group.add_argument(
        "--exempt-namespaces", default=None, help="comma list [FLUXWARDEN_EXEMPT_NAMESPACES, flux-system]"
    )
    group.add_argument("--exempt-users", default=None, help="comma list [FLUXWARDEN_EXEMPT_USERS]")
    group.add_argument("--exempt-groups", default=None, help="comma list [FLUXWARDEN_EXEMPT_GROUPS]")
    group.add_argument(
        "--mode", choices=("deny", "fix"), default=None, help="cross-namespace references [FLUXWARDEN_MODE, deny]"
    )
    group.add_argument(
        "--block-cross-namespace-dependencies",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refuse dependsOn into other namespaces [FLUXWARDEN_BLOCK_CROSS_NAMESPACE_DEPENDENCIES]",
    )
    group.add_argument(
        "--block-remote-clusters",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refuse spec.kubeConfig [FLUXWARDEN_BLOCK_REMOTE_CLUSTERS]",
    )
    group.add_argument(
        "--cluster-scope-namespaces",
        default=None,
        help="comma list: where a FluxConfig may have scope cluster "
        "[FLUXWARDEN_CLUSTER_SCOPE_NAMESPACES, cluster-config,flux-system]",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """Flags win over environment variables, which win over the defaults."""
    defaults = Settings()

    def flag_or_env_bool(flag: bool | None, env: str, default: bool) -> bool:
        return flag if flag is not None else env_bool(env, default)

    def flag_or_env_set(flag: str | None, env: str, default: frozenset[str]) -> frozenset[str]:
        if flag is not None:
            return _split(flag)
        raw = os.environ.get(env)
        return _split(raw) if raw is not None else default

    mode = args.mode or os.environ.get("FLUXWARDEN_MODE", defaults.mode)
    if mode not in ("deny", "fix"):
        raise UsageError(f"FLUXWARDEN_MODE={mode!r} is not a mode; use deny or fix")
    return Settings(
        enforce=flag_or_env_bool(args.enforce, "FLUXWARDEN_ENFORCE", defaults.enforce),
        applier=args.applier or os.environ.get("FLUXWARDEN_APPLIER") or defaults.applier,
        allowed_service_accounts=flag_or_env_set(
            args.allowed_service_accounts, "FLUXWARDEN_ALLOWED_SERVICE_ACCOUNTS", defaults.allowed_service_accounts
        ),
        exempt_namespaces=flag_or_env_set(
            args.exempt_namespaces, "FLUXWARDEN_EXEMPT_NAMESPACES", defaults.exempt_namespaces
        ),
        exempt_users=flag_or_env_set(args.exempt_users, "FLUXWARDEN_EXEMPT_USERS", defaults.exempt_users),
        exempt_groups=flag_or_env_set(args.exempt_groups, "FLUXWARDEN_EXEMPT_GROUPS", defaults.exempt_groups),
        mode="fix" if mode == "fix" else "deny",
        block_cross_namespace_dependencies=flag_or_env_bool(
            args.block_cross_namespace_dependencies,
            "FLUXWARDEN_BLOCK_CROSS_NAMESPACE_DEPENDENCIES",
            defaults.block_cross_namespace_dependencies,
        ),
        block_remote_clusters=flag_or_env_bool(
            args.block_remote_clusters, "FLUXWARDEN_BLOCK_REMOTE_CLUSTERS", defaults.block_remote_clusters
        ),
        cluster_scope_namespaces=flag_or_env_set(
            args.cluster_scope_namespaces, "FLUXWARDEN_CLUSTER_SCOPE_NAMESPACES", defaults.cluster_scope_namespaces
        ),
    )
