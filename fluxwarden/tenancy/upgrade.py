"""Deprecated Flux API versions rewritten to the current ones, pure (TENANCY.md, "Deprecated API versions").

:func:`upgrade` takes one object (a plain dict) and returns a new one at the kind's current version
(``kinds.KINDS`` says which that is) with the fields the new version dropped or renamed rewritten,
plus one :class:`Change` per edit. ``fluxwarden fix`` calls it on every document of a repository;
the ``deprecated-api`` rule only warns. Flux v1 objects are not Flux kinds here: they come back
unchanged (the ``flux-v1`` rule refuses them with a migration message).

:class:`Change` is shared with :mod:`fluxwarden.tenancy.legacy`: both fixes report in it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from fluxwarden.tenancy.findings import ObjectRef
from fluxwarden.tenancy.kinds import HELM, KUSTOMIZE, SOURCE, WILDCARD, kind_of, split_api_version
from fluxwarden.tenancy.paths import Step, dotted, walk


@dataclass(frozen=True)
class Change:
    """One edit a fix made to one object.

    ``obj`` names the object as it was before the edit; ``steps`` is the field the edit is about as it
    stood before (an added field's path: the CLI falls back to the nearest existing parent for a line).
    """

    obj: ObjectRef
    steps: tuple[Step, ...]
    text: str

    def __str__(self) -> str:
        return f"{self.obj}: {self.text}"


@dataclass(frozen=True)
class Upgrade:
    """The upgraded object (``obj`` itself when nothing was deprecated) and what changed."""

    obj: dict[str, Any]
    changes: tuple[Change, ...] = ()

    @property
    def notes(self) -> list[str]:
        return [str(change) for change in self.changes]


# A rewrite edits the (copied) object in place and says what it did: (field path, text) per edit.
Edit = tuple[tuple[Step, ...], str]
Rewrite = Callable[[dict[str, Any]], list[Edit]]


def _replace_keys(mapping: dict[str, Any], old: tuple[str, ...], key: str, value: Any) -> None:
    """Put ``key: value`` where the first of ``old`` (or ``key``) stood and drop the others; order kept."""
    items: list[tuple[str, Any]] = []
    placed = False
    for k, v in mapping.items():
        if k in old or k == key:
            if not placed:
                items.append((key, value))
                placed = True
            continue
        items.append((k, v))
    mapping.clear()
    mapping.update(items)


def _drop(field: str, why: str) -> Rewrite:
    def rewrite(obj: dict[str, Any]) -> list[Edit]:
        spec = obj.get("spec")
        if not isinstance(spec, dict) or field not in spec:
            return []
        del spec[field]
        return [(("spec", field), f"removed spec.{field} ({why})")]

    return rewrite


def _values_files(path: tuple[str, ...]) -> Rewrite:
    """``valuesFile`` -> ``valuesFiles``: the old file was merged before the list, so it goes first."""

    def rewrite(obj: dict[str, Any]) -> list[Edit]:
        edits: list[Edit] = []
        for steps, mapping in walk(obj, path):
            if not isinstance(mapping, dict) or "valuesFile" not in mapping:
                continue
            single = mapping["valuesFile"]
            rest = mapping.get("valuesFiles")
            files = ([single] if single else []) + (list(rest) if isinstance(rest, list) else [])
            here = dotted(steps)
            if files:
                _replace_keys(mapping, ("valuesFile", "valuesFiles"), "valuesFiles", files)
                edits.append(((*steps, "valuesFile"), f"{here}.valuesFile -> {here}.valuesFiles[0]"))
            else:
                del mapping["valuesFile"]
                edits.append(((*steps, "valuesFile"), f"removed empty {here}.valuesFile"))
        return edits

    return rewrite


def _yaml_text(value: Any) -> str:
    # Block style, key order kept, no line wrapping: the string is read back by kustomize, and by people.
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 16)


def _as_patch(item: Any, json6902: bool) -> Any:
    """One ``patchesStrategicMerge`` or ``patchesJson6902`` item as a ``patches`` item (a YAML string)."""
    if not json6902:
        return {"patch": item if isinstance(item, str) else _yaml_text(item)}
    if not isinstance(item, dict):
        return item
    ops = item.get("patch")
    patch: dict[str, Any] = {"patch": ops if isinstance(ops, str) else _yaml_text(ops)}
    if "target" in item:
        patch["target"] = item["target"]
    return patch


def _patches(path: tuple[str, ...]) -> Rewrite:
    """``patchesStrategicMerge`` and ``patchesJson6902`` -> ``patches``, each patch a YAML string.

    kustomize applies strategic-merge patches before ``patches`` and JSON 6902 ones after, so the
    converted lists go before and after the existing ``patches``.
    """
    old = ("patchesStrategicMerge", "patchesJson6902")

    def rewrite(obj: dict[str, Any]) -> list[Edit]:
        edits: list[Edit] = []
        for steps, mapping in walk(obj, path):
            if not isinstance(mapping, dict) or not any(key in mapping for key in old):
                continue
            here = dotted(steps)
            converted = []
            for key in old:
                items = mapping.get(key)
                converted.append([_as_patch(p, key == old[1]) for p in items] if isinstance(items, list) else [])
                if key in mapping and not converted[-1]:
                    edits.append(((*steps, key), f"removed empty {here}.{key}"))
            existing = mapping.get("patches")
            before = existing if isinstance(existing, list) else []
            patches = converted[0] + before + converted[1]
            if patches:
                _replace_keys(mapping, old, "patches", patches)
            else:
                for key in old:
                    mapping.pop(key, None)
            offsets = (0, len(converted[0]) + len(before))
            for key, items, offset in zip(old, converted, offsets, strict=True):
                for index in range(len(items)):
                    note = f"{here}.{key}[{index}] -> {here}.patches[{offset + index}]"
                    edits.append(((*steps, key, index), note))
        return edits

    return rewrite


_REWRITES: dict[tuple[str, str], tuple[Rewrite, ...]] = {
    (SOURCE, "GitRepository"): (
        _drop("gitImplementation", "v1 has go-git only"),
        _drop("accessFrom", "v1 has no cross-namespace access lists"),
    ),
    (SOURCE, "HelmChart"): (_values_files(("spec",)),),
    (KUSTOMIZE, "Kustomization"): (
        _drop("validation", "v1 always validates server-side"),
        _patches(("spec",)),
    ),
    (HELM, "HelmRelease"): (
        _values_files(("spec", "chart", "spec")),
        _patches(("spec", "postRenderers", WILDCARD, "kustomize")),
    ),
}


def upgrade(obj: dict[str, Any]) -> Upgrade:
    """``obj`` at its kind's current API version; ``obj`` itself is never changed."""
    flux_kind = kind_of(obj)
    group, version = split_api_version(str(obj.get("apiVersion", "")))
    if flux_kind is None or not flux_kind.is_deprecated(version):
        return Upgrade(obj)
    new = copy.deepcopy(obj)
    new["apiVersion"] = f"{group}/{flux_kind.current_version}"
    edits: list[Edit] = [(("apiVersion",), f"apiVersion {group}/{version} -> {new['apiVersion']}")]
    for rewrite in _REWRITES.get((group, flux_kind.kind), ()):
        edits.extend(rewrite(new))
    ref = ObjectRef.of(obj)
    return Upgrade(new, tuple(Change(ref, steps, text) for steps, text in edits))
