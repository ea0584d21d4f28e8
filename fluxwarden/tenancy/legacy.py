"""TENANCY.md's legacy transform, pure: every Flux object into the configuration namespace.

Given all objects of a repository (or of one built configuration), :func:`legacy_fix` moves each
Flux object (a kind of ``kinds.KINDS`` other than FluxConfig) into the configuration namespace,
keeps the workload's old namespace in ``spec.targetNamespace`` of Kustomizations and HelmReleases,
and points every reference field of the kinds table (``dependsOn`` included) that named a moved
object at its new namespace. The result passes :func:`~fluxwarden.tenancy.rules.evaluate` when the
repository holds every object it references. Other objects are returned as they are.

Callers: ``fluxwarden fix`` (offline, on a repository's files) and the kustomize controller's
opt-in auto-fix (at reconcile time, on the built manifests).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fluxwarden.tenancy.findings import ObjectRef
from fluxwarden.tenancy.kinds import FLUXCONFIG, HELM, KUSTOMIZE, kind_of, split_api_version
from fluxwarden.tenancy.paths import dotted
from fluxwarden.tenancy.rules import cross_namespace_refs, object_namespace
from fluxwarden.tenancy.upgrade import Change

DEFAULT_CONFIG_NAMESPACE = "cluster-config"  # Azure microsoft.flux's default

# The kinds whose workloads may land elsewhere through spec.targetNamespace.
_TARGET_NAMESPACE_KINDS = frozenset({(KUSTOMIZE, "Kustomization"), (HELM, "HelmRelease")})
# FluxConfig describes a configuration; it is not one of the objects the configuration applies.
_NOT_MOVED = frozenset({(FLUXCONFIG, "FluxConfig")})


@dataclass(frozen=True)
class Skipped:
    """An object left where it is, and why."""

    index: int
    obj: ObjectRef
    reason: str

    def __str__(self) -> str:
        return f"{self.obj}: {self.reason}"


@dataclass(frozen=True)
class LegacyFix:
    """The objects after the transform, in input order, and what changed.

    ``changes[i]`` are the changes made to ``objects[i]`` (an untouched object is the input object
    itself). ``skipped`` lists the objects not moved because another object of the same kind and
    name comes from another namespace: moving both would make one object of two.
    """

    objects: list[dict[str, Any]]
    changes: tuple[tuple[Change, ...], ...]
    skipped: tuple[Skipped, ...] = ()

    @property
    def notes(self) -> list[str]:
        return [str(change) for changes in self.changes for change in changes] + [str(s) for s in self.skipped]


def _group_kind(obj: dict[str, Any]) -> tuple[str, str]:
    group, _ = split_api_version(str(obj.get("apiVersion", "")))
    return group, str(obj.get("kind", ""))


def _movable(obj: dict[str, Any]) -> bool:
    return kind_of(obj) is not None and _group_kind(obj) not in _NOT_MOVED and isinstance(obj.get("metadata"), dict)


def _name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"].get("name") or "")


def _collisions(objects: Sequence[dict[str, Any]], movable: list[int], config_namespace: str) -> list[Skipped]:
    """Objects whose kind and name come from two namespaces (the configuration namespace included)."""
    namespaces: dict[tuple[str, str], set[str]] = {}
    for index in movable:
        # An object without a namespace gets one from whoever applies it: it collides with nothing known.
        if (ns := object_namespace(objects[index])) and _name(objects[index]):
            namespaces.setdefault((str(objects[index]["kind"]), _name(objects[index])), set()).add(ns)
    skipped = []
    for index in movable:
        obj = objects[index]
        found = namespaces.get((str(obj["kind"]), _name(obj)), set())
        if len(found) > 1 and object_namespace(obj) not in ("", config_namespace):
            others = ", ".join(sorted(found))
            reason = (
                f"not moved: {obj['kind']} {_name(obj)} exists in namespaces {others}; "
                f"rename one so that both fit in {config_namespace}, then fix again"
            )
            skipped.append(Skipped(index, ObjectRef.of(obj), reason))
    return skipped


def _with_key_after(mapping: dict[str, Any], key: str, value: Any, anchor: str) -> dict[str, Any]:
    """A copy of ``mapping`` with ``key`` right after ``anchor`` (first when absent): where people write it."""
    items = list(mapping.items())
    at = next((i + 1 for i, (k, _) in enumerate(items) if k == anchor), 0)
    return dict([*items[:at], (key, value), *items[at:]])


def _move(obj: dict[str, Any], config_namespace: str, ref: ObjectRef) -> list[Change]:
    """Set ``metadata.namespace`` and, for kinds that have one, keep the old one as ``targetNamespace``."""
    old = object_namespace(obj)
    if old:
        obj["metadata"]["namespace"] = config_namespace
        changes = [Change(ref, ("metadata", "namespace"), f"moved to namespace {config_namespace} (was {old})")]
    else:
        obj["metadata"] = _with_key_after(obj["metadata"], "namespace", config_namespace, "name")
        changes = [Change(ref, ("metadata", "namespace"), f"set metadata.namespace to {config_namespace} (was unset)")]
    spec = obj.get("spec")
    if old and _group_kind(obj) in _TARGET_NAMESPACE_KINDS and (spec is None or isinstance(spec, dict)):
        spec = spec or {}
        if not spec.get("targetNamespace"):
            obj["spec"] = _with_key_after(spec, "targetNamespace", old, "interval")
            note = f"set spec.targetNamespace to {old} (where the workload was)"
            changes.append(Change(ref, ("spec", "targetNamespace"), note))
    return changes


def _follow_moves(
    obj: dict[str, Any], config_namespace: str, moved: set[tuple[str, str, str]], ref: ObjectRef
) -> list[Change]:
    """Point every reference to a moved object at ``config_namespace``; ``*`` names match any moved one."""
    flux_kind = kind_of(obj)
    if flux_kind is None:
        return []
    changes = []
    for rule in sorted({r.rule for r in flux_kind.refs}):
        for ref_field, steps, target in cross_namespace_refs(obj, config_namespace, rule):
            # dependsOn names no kind: it always names an object of the referrer's own kind.
            kind = str(target.get("kind") or ref_field.implied_kind or flux_kind.kind)
            old, name = str(target["namespace"]), str(target.get("name", ""))
            if (kind, old, name) in moved or (name == "*" and (kind, old, "*") in moved):
                target["namespace"] = config_namespace
                note = f"set {dotted(steps)}.namespace to {config_namespace} (was {old})"
                changes.append(Change(ref, (*steps, "namespace"), note))
    return changes


def legacy_fix(objects: Sequence[dict[str, Any]], config_namespace: str = DEFAULT_CONFIG_NAMESPACE) -> LegacyFix:
    """Move every Flux object of ``objects`` into ``config_namespace``; the input is never changed.

    Idempotent: fixing the result again changes nothing.
    """
    movable = [i for i, obj in enumerate(objects) if _movable(obj)]
    skipped = _collisions(objects, movable, config_namespace)
    left = {s.index for s in skipped}
    moving = {i for i in movable if i not in left and object_namespace(objects[i]) != config_namespace}
    moved: set[tuple[str, str, str]] = set()
    for index in moving:
        kind, ns = str(objects[index]["kind"]), object_namespace(objects[index])
        moved |= {(kind, ns, _name(objects[index])), (kind, ns, "*")}
    result: list[dict[str, Any]] = []
    all_changes: list[tuple[Change, ...]] = []
    for index, obj in enumerate(objects):
        if kind_of(obj) is None:
            result.append(obj)
            all_changes.append(())
            continue
        new, ref = copy.deepcopy(obj), ObjectRef.of(obj)
        changes = _move(new, config_namespace, ref) if index in moving else []
        changes += _follow_moves(new, config_namespace, moved, ref)
        result.append(new if changes else obj)
        all_changes.append(tuple(changes))
    return LegacyFix(result, tuple(all_changes), tuple(skipped))
