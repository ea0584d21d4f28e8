"""Reading and nudging Flux objects for ``get``, ``reconcile``, ``suspend`` and ``resume``.

The kinds the commands know, by the words a user types (``source git``, ``kustomization``,
``helmrelease``), and the few API calls behind them, through the controllers' API adapter.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fluxwarden.controllers.helm.api import HELM_RELEASE
from fluxwarden.controllers.runtime.kube import MERGE_PATCH, Kube, Resource
from fluxwarden.controllers.runtime.prologue import REQUESTED_AT
from fluxwarden.controllers.source.api import (
    BUCKET,
    GIT_REPOSITORY,
    HELM_CHART,
    HELM_REPOSITORY,
    OCI_REPOSITORY,
    is_oci_helm_repository,
)

# In ``flux get sources all``'s order.
SOURCES: dict[str, Resource] = {
    "oci": OCI_REPOSITORY,
    "bucket": BUCKET,
    "git": GIT_REPOSITORY,
    "helm": HELM_REPOSITORY,
    "chart": HELM_CHART,
}


class CommandError(Exception):
    """A one-line failure of a command (not found, timed out, reconcile failed)."""


@dataclass(frozen=True)
class Row:
    namespace: str
    name: str
    revision: str
    suspended: bool
    ready: str
    message: str


def is_static(obj: dict[str, Any]) -> bool:
    """An object no controller reconciles (an OCI HelmRepository, as in Flux): nothing to wait for."""
    return obj.get("kind") == HELM_REPOSITORY.kind and is_oci_helm_repository(obj)


def _ready(obj: dict[str, Any]) -> tuple[str, str]:
    if is_static(obj):
        return "True", "Helm repository is Ready"  # what flux get shows for one
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status")), str(condition.get("message", ""))
    return "Unknown", "waiting to be reconciled"


def revision_of(obj: dict[str, Any]) -> str:
    """What ``flux get`` shows as REVISION: a HelmRelease's latest chart version, else the artifact's."""
    status = obj.get("status") or {}
    if obj.get("kind") == HELM_RELEASE.kind:
        history = status.get("history") or [{}]
        return str(history[0].get("chartVersion") or status.get("lastAttemptedRevision") or "")
    return str((status.get("artifact") or {}).get("revision") or status.get("lastAppliedRevision") or "")


def row_of(obj: dict[str, Any]) -> Row:
    revision = revision_of(obj)
    ready, message = _ready(obj)
    meta = obj["metadata"]
    suspended = bool((obj.get("spec") or {}).get("suspend"))
    return Row(meta.get("namespace", ""), meta["name"], revision, suspended, ready, message)


def rows(kube: Kube, resource: Resource, namespace: str | None) -> list[Row]:
    items, _ = kube.list(resource, namespace)
    return sorted((row_of(obj) for obj in items), key=lambda r: (r.namespace, r.name))


def format_table(header: list[str], body: list[list[str]]) -> str:
    """Columns padded to their widest cell, tab-separated, as ``flux get`` prints them."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *body, strict=False)]
    lines = [
        "\t".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in [header, *body]
    ]
    return "\n".join(lines)


def table(rows_: list[Row], all_namespaces: bool, revision: bool = True) -> str:
    """NAME, REVISION (unless ``revision`` is False), SUSPENDED, READY, MESSAGE; NAMESPACE first with -A."""
    header = ["NAME", *["REVISION"] * revision, "SUSPENDED", "READY", "MESSAGE"]
    body = [[r.name, *[r.revision] * revision, str(r.suspended), r.ready, r.message] for r in rows_]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
        for line, r in zip(body, rows_, strict=True):
            line.insert(0, r.namespace)
    return format_table(header, body)


def now_stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def request_reconcile(
    kube: Kube,
    resource: Resource,
    namespace: str,
    name: str,
    also: tuple[str, ...] = (),
    spec: dict[str, Any] | None = None,
) -> str:
    """Annotate the object with a new ``requestedAt`` (and each of ``also`` with the same value, as
    ``forceAt`` must equal it), in one patch with ``spec`` if given; returns the value to wait for."""
    stamp = now_stamp()
    patch: dict[str, Any] = {"metadata": {"annotations": dict.fromkeys((REQUESTED_AT, *also), stamp)}}
    if spec:
        patch["spec"] = spec
    kube.patch(resource, namespace, name, patch, MERGE_PATCH)
    return stamp


def wait_handled(
    kube: Kube, resource: Resource, namespace: str, name: str, stamp: str, timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:  # fmt: skip
    """Poll until the controller recorded ``stamp`` as handled; raise :class:`CommandError` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        obj = kube.get(resource, namespace, name)
        if (obj.get("status") or {}).get("lastHandledReconcileAt") == stamp:
            return obj
        if time.monotonic() > deadline:
            raise CommandError(
                f"{resource.kind} {namespace}/{name} was not reconciled within {timeout:g}s; is the controller running?"
            )
        sleep(0.5)


def set_suspend(kube: Kube, resource: Resource, namespace: str, name: str, suspend: bool) -> None:
    kube.patch(resource, namespace, name, {"spec": {"suspend": suspend}}, MERGE_PATCH)
