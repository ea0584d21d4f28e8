"""The shipped install manifests as kustomize builds them, and the parts of them tests apply or run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.kube import Kubectl

ROOT = Path(__file__).resolve().parents[2]
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")


def built(kubectl: Kubectl, path: str) -> list[dict[str, Any]]:
    """``kubectl kustomize <repo>/<path>``: every object, in order."""
    return [d for d in yaml.safe_load_all(kubectl("kustomize", str(ROOT / path)).stdout) if d]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    return found


def rbac_of(objects: list[dict[str, Any]], service_account: str) -> list[dict[str, Any]]:
    """The ServiceAccount, its bindings and the roles they grant, exactly as shipped."""
    bindings = [
        o
        for o in objects
        if o["kind"] in ("RoleBinding", "ClusterRoleBinding")
        and any(s.get("kind") == "ServiceAccount" and s["name"] == service_account for s in o["subjects"])
    ]
    roles = {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings}
    granted = [o for o in objects if (o["kind"], o["metadata"]["name"]) in roles]
    account = [o for o in by_kind(objects, "ServiceAccount") if o["metadata"]["name"] == service_account]
    assert account and bindings and len(granted) == len(roles), f"incomplete RBAC for {service_account}"
    return account + granted + bindings


def apply(kubectl: Kubectl, objects: list[dict[str, Any]], field_manager: str = "fluxwarden-e2e") -> None:
    """Server-side apply, for real."""
    kubectl("apply", "--server-side", f"--field-manager={field_manager}", "-f", "-", input=yaml.safe_dump_all(objects))


def delete(kubectl: Kubectl, objects: list[dict[str, Any]]) -> None:
    kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=yaml.safe_dump_all(objects))


def container_args(container: dict[str, Any], env: dict[str, str]) -> list[str]:
    """The container's args with ``$(VAR)`` expanded as kubelet expands them."""
    args = []
    for arg in container.get("args") or []:
        for name, value in env.items():
            arg = arg.replace(f"$({name})", value)
        args.append(arg)
    return args


def flag(args: list[str], name: str) -> str | None:
    """The value of ``--name=value`` in ``args`` (None if absent); ``--name`` alone is ``""``."""
    for arg in args:
        if arg == f"--{name}":
            return ""
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None
