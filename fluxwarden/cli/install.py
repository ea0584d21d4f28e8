"""``fluxwarden install check``: refuse to install over CustomResourceDefinitions fluxwarden does not own.

manifests/crds writes CRDs under names others use too: Flux's own kinds, and on AKS with the
microsoft.flux extension, ``fluxconfigs.clusterconfig.azure.com`` (Azure's v1alpha1, another shape).
fluxwarden's CRDs carry ``app.kubernetes.io/part-of=fluxwarden``; a live CRD of a shipped name without
it belongs to someone else, and the install must not replace it. ``kubectl apply --server-side``
already fails on one written by another field manager (a conflict on ``spec.versions``), but only
``--force-conflicts`` away from taking it over, and without saying whose it is: this check says.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fluxwarden.kubeclient import api_client
from fluxwarden.tenancy.kinds import FLUXCONFIG, KINDS

PART_OF = "app.kubernetes.io/part-of"
OURS = "fluxwarden"


def shipped_crds() -> list[str]:
    """The names of the CRDs manifests/crds ships: every kind in the kinds table."""
    return sorted(f"{kind.plural}.{kind.group}" for kind in KINDS)


def _managers(crd: dict[str, Any]) -> str:
    """Who wrote the CRD itself (the API server's own status writes left out)."""
    fields = crd["metadata"].get("managedFields") or []
    managers = sorted({m.get("manager", "?") for m in fields if not m.get("subresource")})
    return ", ".join(managers) or "unknown"


def _fix(name: str, owner: str | None) -> str:
    if name.endswith("." + FLUXCONFIG):
        return (
            "on AKS this is the microsoft.flux extension's CRD, which fluxwarden does not read; "
            "remove the extension first, or install fluxwarden without manifests/crds"
        )
    if owner == "flux":
        return "keep Flux's CRDs: install manifests/overlays/beside-flux, which ships none"
    return "delete it if nothing uses it, or install without manifests/crds"


def refusal(crd: dict[str, Any]) -> str | None:
    """Why fluxwarden must not overwrite this live CRD, in one line; None if it is fluxwarden's."""
    meta = crd["metadata"]
    owner = (meta.get("labels") or {}).get(PART_OF)
    if owner == OURS:
        return None
    served = ",".join(v["name"] for v in crd["spec"].get("versions") or [] if v.get("served")) or "nothing"
    whose = f"{PART_OF}={owner}" if owner else f"no {PART_OF}={OURS} label"
    return (
        f"CustomResourceDefinition {meta['name']} is not fluxwarden's ({whose}; serves {served}; "
        f"written by {_managers(crd)}): refusing to overwrite it; {_fix(meta['name'], owner)}"
    )


def live_crd(api: client.ApiClient, name: str) -> dict[str, Any] | None:
    """The CRD as the API server has it (plain JSON), or None when there is none of that name."""
    try:
        crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(name, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    found: dict[str, Any] = json.loads(crd.data)
    return found


def check(api: client.ApiClient, names: list[str]) -> tuple[list[str], int, int]:
    """``(refusals, fluxwarden's, absent)`` over the CRDs named."""
    refusals, ours, absent = [], 0, 0
    for name in names:
        crd = live_crd(api, name)
        if crd is None:
            absent += 1
        elif (reason := refusal(crd)) is not None:
            refusals.append(reason)
        else:
            ours += 1
    return refusals, ours, absent


def run(args: argparse.Namespace) -> int:
    names = args.crd or shipped_crds()
    try:
        with api_client(args.kubeconfig) as api:
            refusals, ours, absent = check(api, names)
    except (ApiException, urllib3.exceptions.HTTPError) as exc:
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        print(f"✗ cannot read the CustomResourceDefinitions: {reason}", file=sys.stderr)
        return 1
    for line in refusals:
        print(f"✗ {line}", file=sys.stderr)
    if refusals:
        return 1
    print(f"✔ {len(names)} CRDs: {ours} fluxwarden's, {absent} absent, none of another owner")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("install", help="checks to run before installing fluxwarden's manifests")
    sub = parser.add_subparsers(dest="install_command", required=True)
    check_ = sub.add_parser(
        "check", help="refuse (exit 1) if a CRD of a shipped name exists and is not fluxwarden's (e.g. Azure's)"
    )
    check_.add_argument("--crd", action="append", help="check only this CRD (repeatable; default: all shipped)")
    check_.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    check_.set_defaults(func=run)
