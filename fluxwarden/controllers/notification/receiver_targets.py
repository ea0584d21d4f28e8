"""What a Receiver asks to reconcile (``spec.resources[]``), checked and annotated.

``problem`` finds the first entry that cannot be served (another namespace, no apiVersion for a kind
Flux has no default for, ``*`` without ``matchLabels``); the reconciler stalls on it. ``annotate``
sets ``reconcile.fluxcd.io/requestedAt`` on every object an entry names, with one merge patch each,
and never outside the Receiver's namespace. Sync: the receiver server runs it off its event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fluxwarden.controllers.runtime.kube import MERGE_PATCH, Kube, KubeError
from fluxwarden.controllers.runtime.restmapper import RestMapper
from fluxwarden.tenancy.rules import cross_namespace_refs

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
WILDCARD = "*"

# Flux's defaults when an entry has no apiVersion (notification-controller receiver_handlers.go).
DEFAULT_API_VERSIONS = {
    "Bucket": "source.toolkit.fluxcd.io/v1",
    "HelmChart": "source.toolkit.fluxcd.io/v1",
    "HelmRepository": "source.toolkit.fluxcd.io/v1",
    "GitRepository": "source.toolkit.fluxcd.io/v1",
    "OCIRepository": "source.toolkit.fluxcd.io/v1",
    "ImageRepository": "image.toolkit.fluxcd.io/v1",
    "ArtifactGenerator": "source.extensions.fluxcd.io/v1beta1",
}


@dataclass(frozen=True)
class Target:
    """One ``spec.resources[]`` entry, resolved: always in the Receiver's namespace."""

    where: str  # spec.resources[2], for messages
    api_version: str
    kind: str
    name: str
    namespace: str
    match_labels: dict[str, str] | None

    def describe(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted((self.match_labels or {}).items()))


def _entries(receiver: dict[str, Any]) -> list[Any]:
    resources = (receiver.get("spec") or {}).get("resources")
    return resources if isinstance(resources, list) else []


def problem(receiver: dict[str, Any]) -> tuple[str, str] | None:
    """``(reason, message)`` for the first entry that cannot be served, None when all can."""
    namespace = str((receiver.get("metadata") or {}).get("namespace") or "")
    for _, steps, ref in cross_namespace_refs(receiver, namespace):
        where = f"spec.resources[{steps[2]}]" if len(steps) > 2 else "spec.resources"
        return "AccessDenied", (
            f"{where} names {ref.get('kind')} {ref.get('namespace')}/{ref.get('name')}: a Receiver never "
            f"reaches another namespace; drop its namespace or move the Receiver into {ref.get('namespace')}"
        )
    for index, entry in enumerate(_entries(receiver)):
        where = f"spec.resources[{index}]"
        if not isinstance(entry, dict) or not entry.get("kind") or not entry.get("name"):
            return "InvalidSpec", f"{where} needs kind and name"
        kind = str(entry["kind"])
        if not entry.get("apiVersion") and kind not in DEFAULT_API_VERSIONS:
            return "InvalidSpec", f"{where}.apiVersion is required for kind {kind}; set it (e.g. the kind's v1)"
        if entry["name"] == WILDCARD and entry.get("matchLabels") is None:
            return "InvalidSpec", f"{where}: name '*' selects by matchLabels; set matchLabels or name one object"
    return None


def targets(receiver: dict[str, Any]) -> list[Target]:
    """Every entry that can be served, in the Receiver's namespace (others are skipped: see ``problem``)."""
    namespace = str((receiver.get("metadata") or {}).get("namespace") or "")
    found: list[Target] = []
    for index, entry in enumerate(_entries(receiver)):
        if not isinstance(entry, dict) or not entry.get("kind") or not entry.get("name"):
            continue
        if entry.get("namespace") and entry["namespace"] != namespace:
            continue  # never another namespace, even before the reconciler has stalled the Receiver
        kind = str(entry["kind"])
        api_version = str(entry.get("apiVersion") or DEFAULT_API_VERSIONS.get(kind, ""))
        labels = entry.get("matchLabels")
        if not api_version or (entry["name"] == WILDCARD and labels is None):
            continue
        selected = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else None
        found.append(Target(f"spec.resources[{index}]", api_version, kind, str(entry["name"]), namespace, selected))
    return found


def rfc3339_nano(nanoseconds: int | None = None) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: nanoseconds, trailing zeros trimmed (``...T10:00:00.5Z``)."""
    ns = time.time_ns() if nanoseconds is None else nanoseconds
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


@dataclass(frozen=True)
class Outcome:
    annotated: list[str]  # "GitRepository ns/name" of every object annotated
    errors: list[str]  # one line per entry that failed (a missing object, a kind not served)


def annotate(kube: Kube, mapper: RestMapper, wanted: list[Target], stamp: str) -> Outcome:
    """Set ``requestedAt = stamp`` on every object of ``wanted``; an entry that fails does not stop the rest."""
    patch = {"metadata": {"annotations": {REQUESTED_AT: stamp}}}
    annotated: list[str] = []
    errors: list[str] = []
    for target in wanted:
        try:
            api = mapper.resource_for(target.api_version, target.kind)
            if target.name == WILDCARD:
                listing = kube.request(
                    "GET", api.path(target.namespace), query={"labelSelector": target.selector()},
                    what=f"list {target.kind} in {target.namespace}",
                )  # fmt: skip
                names = [str(item["metadata"]["name"]) for item in listing.get("items") or []]
            else:
                names = [target.name]
            for name in names:
                kube.request(
                    "PATCH", api.path(target.namespace, name), body=patch, content_type=MERGE_PATCH,
                    what=f"annotate {target.kind} {target.namespace}/{name}",
                )  # fmt: skip
                annotated.append(f"{target.kind} {target.namespace}/{name}")
        except KubeError as exc:
            errors.append(f"{target.where} ({target.describe()}): {exc}")
    return Outcome(annotated, errors)
