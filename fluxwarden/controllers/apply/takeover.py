"""Taking over what ``kubectl`` applied, as Flux's kustomize-controller does (its ``ApplyCleanupOptions``).

Before it applies an object, Flux merges the ``managedFields`` entries of client-side ``kubectl apply``,
``kubectl apply --server-side``, ``kubectl edit``/``patch`` (every manager named ``kubectl...``),
``before-first-apply`` and its own pre-SSA updates into its own Apply entry, and removes
``last-applied-configuration`` and Flux v1's checksum annotations and label. The apply that follows then
owns those fields, so one that git no longer has is removed instead of being left to kubectl. An object
annotated ``kustomize.toolkit.fluxcd.io/ssa: Merge`` (in git or live) is left as it is.

:func:`cleanup_patch` computes the JSON patch; the applier sends it. Nothing here calls the API.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SSA_ANNOTATION = "kustomize.toolkit.fluxcd.io/ssa"
MERGE = "merge"
APPLY, UPDATE = "Apply", "Update"


@dataclass(frozen=True)
class Cleanup:
    """What to take over: managers by name prefix and operation, annotations and labels to remove."""

    managers: tuple[tuple[str, str], ...]
    annotations: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    exclusions: Mapping[str, str] = field(default_factory=dict)


def kustomize_cleanup(controller: str) -> Cleanup:
    """kustomize-controller's options (kustomization_controller.go, ``applyOpts.Cleanup``)."""
    return Cleanup(
        managers=(("kubectl", APPLY), ("kubectl", UPDATE), ("before-first-apply", UPDATE), (controller, UPDATE)),
        annotations=(
            "kubectl.kubernetes.io/last-applied-configuration",
            "kustomize.toolkit.fluxcd.io/checksum",
            "fluxcd.io/sync-checksum",
        ),
        labels=("fluxcd.io/sync-gc-mark",),
        exclusions={SSA_ANNOTATION: MERGE},
    )


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _excluded(obj: Mapping[str, Any], exclusions: Mapping[str, str]) -> bool:
    """A label or annotation of ``obj`` has an excluded value (compared case-insensitively, as Flux does)."""
    meta = obj.get("metadata") or {}
    values = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
    return any(str(values.get(k, "")).lower() == v.lower() for k, v in exclusions.items())


def merge_fields(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, Any]:
    """The union of two ``fieldsV1`` sets: each is a trie of path elements, so a recursive key merge."""
    merged = copy.deepcopy(dict(ours))
    for key, child in theirs.items():
        mine = merged.get(key)
        if isinstance(mine, dict) and isinstance(child, dict):
            merged[key] = merge_fields(mine, child)
        elif key not in merged:
            merged[key] = copy.deepcopy(child)
    return merged


def _taken_over(entry: Mapping[str, Any], cleanup: Cleanup) -> bool:
    name, operation = str(entry.get("manager") or ""), entry.get("operation")
    if entry.get("subresource"):  # Flux only takes over the main resource's fields, never status
        return False
    return any(name.startswith(prefix) and operation == op for prefix, op in cleanup.managers)


def _managed_fields(entries: list[dict[str, Any]], cleanup: Cleanup, manager: str) -> list[dict[str, Any]] | None:
    """``entries`` with the taken-over ones merged into ``manager``'s Apply entry; None when none is."""
    found = next((e for e in entries if e.get("manager") == manager and e.get("operation") == APPLY), None)
    own = found
    kept: list[dict[str, Any]] = []
    edited = False
    for entry in entries:
        if entry is found:
            continue
        if not _taken_over(entry, cleanup):
            kept.append(entry)
            continue
        edited = True
        if own is None:  # the first one becomes ours
            own = {**entry, "manager": manager, "operation": APPLY}
        else:
            own = {**own, "fieldsV1": merge_fields(own.get("fieldsV1") or {}, entry.get("fieldsV1") or {})}
    if not edited or own is None:  # edited implies own: a taken-over entry became it or joined it
        return None
    return [*kept, own]


def cleanup_patch(desired: Mapping[str, Any], live: Mapping[str, Any], cleanup: Cleanup, manager: str) -> list[Any]:
    """The JSON patch (RFC 6902) that takes ``live`` over for ``manager``; empty when there is nothing to do."""
    if _excluded(desired, cleanup.exclusions) or _excluded(live, cleanup.exclusions):
        return []
    meta, wanted = live.get("metadata") or {}, desired.get("metadata") or {}
    patch: list[Any] = []
    # One that git itself sets stays (Flux would remove it and apply it again on every reconcile).
    for kind, keys in (("annotations", cleanup.annotations), ("labels", cleanup.labels)):
        for key in keys:
            if key in (meta.get(kind) or {}) and key not in (wanted.get(kind) or {}):
                patch.append({"op": "remove", "path": f"/metadata/{kind}/{_pointer(key)}"})
    entries = _managed_fields(list(meta.get("managedFields") or []), cleanup, manager)
    if entries is not None:
        patch.append({"op": "replace", "path": "/metadata/managedFields", "value": entries})
    return patch
