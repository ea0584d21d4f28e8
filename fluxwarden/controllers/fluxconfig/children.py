"""Create, update and delete what a FluxConfig makes, by server-side apply as ``fluxconfig-controller``.

An apply that would change nothing is skipped: the object carries the digest of what we last
applied, and still holds every field we set (an edit by hand is repaired at the next reconcile).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from fluxwarden.controllers.fluxconfig.api import (
    DIGEST_ANNOTATION,
    FIELD_MANAGER,
    KINDS,
    MANAGED_LABEL,
    NAME_LABEL,
    NAMESPACE_LABEL,
)
from fluxwarden.controllers.runtime.errors import Waiting
from fluxwarden.controllers.runtime.kube import APPLY_PATCH, Kube, NotFound
from fluxwarden.controllers.runtime.metadata import collection_path
from fluxwarden.controllers.runtime.spec import mapping


def path_of(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{collection_path(KINDS[obj['kind']], meta.get('namespace'))}/{meta['name']}"


def display(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']} {where}{meta['name']}"


def digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def holds(live: Any, wanted: Any) -> bool:
    """``live`` has every field of ``wanted`` with the same value (maps recursively, lists exactly)."""
    if isinstance(wanted, dict):
        return isinstance(live, dict) and all(holds(live.get(k), v) for k, v in wanted.items())
    return bool(live == wanted)


def _unchanged(live: dict[str, Any], stamped: dict[str, Any]) -> bool:
    """Applying ``stamped`` would change nothing: the same digest (nothing we set was dropped since) and
    every field still as we set it (an edit by hand is repaired)."""
    meta = stamped["metadata"]
    wanted = {k: v for k, v in stamped.items() if k not in ("apiVersion", "kind", "metadata")}
    wanted["metadata"] = {k: meta[k] for k in ("labels", "annotations", "ownerReferences") if k in meta}
    if stamped["kind"] == "Secret":
        return live.get("data") == stamped.get("data") and holds(live, {"metadata": wanted["metadata"]})
    return holds(live, wanted)


TAKEN_RETRY = 60.0  # a name taken by someone else's object: look again, it may be gone
_HINTS = {
    "Secret": "name your Secret differently (the controller makes <config>-auth), or use it through localAuthRef",
    "RoleBinding": "that binding is the platform's: delete it, or bind the applier yourself",
    "ClusterRoleBinding": "that binding is the platform's: delete it, or bind the applier yourself",
}


def _hint(body: dict[str, Any]) -> str:
    return _HINTS.get(body["kind"], "rename the FluxConfig (or the kustomization entry), or remove that object")


def ours(live: dict[str, Any], body: dict[str, Any]) -> bool:
    """``live`` carries the ownership labels ``body`` sets: never take over a user's object of the same name."""
    have = mapping(mapping(live.get("metadata")).get("labels"))
    wanted = mapping(body["metadata"].get("labels"))
    return all(have.get(k) == wanted[k] for k in (MANAGED_LABEL, NAME_LABEL, NAMESPACE_LABEL) if k in wanted)


def apply(kube: Kube, body: dict[str, Any], live: dict[str, Any] | None) -> dict[str, Any]:
    """Server-side apply ``body`` unless ``live`` (as the caller read it; None: absent) already matches;
    the object after."""
    if live is not None and not ours(live, body):
        raise Waiting(
            "AlreadyExists", f"{display(body)} exists and was not made by this FluxConfig; {_hint(body)}", TAKEN_RETRY
        )
    stamped = copy.deepcopy(body)
    if body["kind"] != "Secret":  # a Secret's digest would be a hash of its values: compare the data instead
        stamped["metadata"].setdefault("annotations", {})[DIGEST_ANNOTATION] = digest(body)
    if live is not None and _unchanged(live, stamped):
        return live
    written = kube.request(
        "PATCH", path_of(body), query={"fieldManager": FIELD_MANAGER, "force": "true"}, body=stamped,
        content_type=APPLY_PATCH, what=display(body),
    )  # fmt: skip
    written.setdefault("kind", body["kind"])
    return written


def get(kube: Kube, body: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return kube.request("GET", path_of(body), what=display(body))
    except NotFound:
        return None


def listed(kube: Kube, kind: str, namespace: str | None, selector: str) -> list[dict[str, Any]]:
    """The objects of ``kind`` that ``selector`` matches; none when the kind is not served (no Bucket CRD)."""
    res = KINDS[kind]
    try:
        found = kube.request(
            "GET", collection_path(res, namespace), query={"labelSelector": selector}, what=f"list {kind}"
        )
    except NotFound:
        return []
    items = [i for i in found.get("items") or [] if isinstance(i, dict)]
    for item in items:  # a list's items carry no apiVersion/kind
        item.setdefault("apiVersion", res.api_version if res.group else res.version)
        item.setdefault("kind", kind)
    return items


def delete(kube: Kube, obj: dict[str, Any]) -> None:
    """Delete (in the background: a bare API server runs no garbage collector); gone already is fine."""
    try:
        kube.request("DELETE", path_of(obj), body={"propagationPolicy": "Background"}, what=display(obj))
    except NotFound:
        return
