"""``fluxwarden get fluxconfigs``: NAME, NAMESPACE, SCOPE, URL, COMPLIANCE, MESSAGE, as the portal lists them."""

from __future__ import annotations

import argparse
import os
from typing import Any

from fluxwarden.cli.fluxconfig_spec import FLUXCONFIG
from fluxwarden.cli.objects import format_table
from fluxwarden.controllers.runtime.kube import Kube
from fluxwarden.kubeclient import api_client
from fluxwarden.tenancy.fluxconfig import DEFAULT_SCOPE, DEFAULT_SOURCE_KIND, SOURCE_FIELDS

HEADER = ["NAME", "NAMESPACE", "SCOPE", "URL", "COMPLIANCE", "MESSAGE"]


def url_of(spec: dict[str, Any]) -> str:
    """The url of the source block that ``sourceKind`` (default GitRepository) picks."""
    default = SOURCE_FIELDS[DEFAULT_SOURCE_KIND]
    block = spec.get(SOURCE_FIELDS.get(str(spec.get("sourceKind") or DEFAULT_SOURCE_KIND), default)) or {}
    return str(block.get("url") or "")


def message_of(status: dict[str, Any]) -> str:
    """The error, else the Ready condition's message, else what the controller has not done yet."""
    if status.get("errorMessage"):
        return str(status["errorMessage"])
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("message") or "")
    return "waiting to be reconciled" if not status else ""


def row_of(obj: dict[str, Any]) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    meta = obj["metadata"]
    compliance = "Suspended" if spec.get("suspend") and not status else status.get("complianceState") or "Unknown"
    return [meta["name"], meta["namespace"], str(spec.get("scope") or DEFAULT_SCOPE), url_of(spec), str(compliance),
            message_of(status).replace("\n", " ")]  # fmt: skip


def get_fluxconfigs(args: argparse.Namespace) -> int:
    namespace = None if args.all_namespaces else args.namespace or os.environ.get("FLUXWARDEN_NAMESPACE") or "default"
    items, _ = Kube(api_client(args.kubeconfig)).list(FLUXCONFIG, namespace)
    rows = sorted((row_of(o) for o in items), key=lambda r: (r[1], r[0]))
    print(format_table(HEADER, rows) if rows else f"no FluxConfigs found in {namespace or 'any namespace'}")
    return 0


def register(get: argparse._SubParsersAction[argparse.ArgumentParser], guarded: Any) -> None:
    """Under ``fluxwarden get`` (flux.py's), with its error handling (``guarded``)."""
    parser = get.add_parser("fluxconfigs", aliases=["fluxconfig", "fc"], help="FluxConfigs and their compliance")
    parser.add_argument("-A", "--all-namespaces", action="store_true")
    parser.add_argument("-n", "--namespace", help="default: $FLUXWARDEN_NAMESPACE or default")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.set_defaults(func=guarded, verb=get_fluxconfigs)
