"""What the mutating webhook may change, as an RFC 6902 JSON Patch plus a warning per change.

Only what is legal at admission: the API server forbids changing an object's namespace, so the
mutation defaults ``serviceAccountName`` to the applier and, in ``fix`` mode, points a
cross-namespace reference back into the object's own namespace. A FluxConfig without
``spec.namespace`` gets its own namespace there, so the stored object says where its objects go
(whatever the settings: it is a default, not a tenancy rule).

The patch is built op by op from the fields the rules name (no copy of the object, no diff): this
is the webhook's hot path.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import jsonpatch

from fluxwarden.tenancy.findings import WARNING_LIMIT, one_line
from fluxwarden.tenancy.fluxconfig import FLUXCONFIG_RULE, is_fluxconfig
from fluxwarden.tenancy.kinds import kind_of
from fluxwarden.tenancy.paths import dotted, pointer
from fluxwarden.tenancy.rules import cross_namespace_refs, object_namespace
from fluxwarden.tenancy.settings import Requester, Settings, is_exempt
from fluxwarden.tenancy.values import text

Op = dict[str, Any]


@dataclass(frozen=True)
class Mutation:
    """The patch to apply to ``original`` and one warning per change."""

    original: dict[str, Any]
    patch: list[Op] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def apply(self) -> dict[str, Any]:
        """The patched object (a copy; ``original`` is never changed)."""
        if not self.patch:
            return self.original
        patched: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(self.original), self.patch)
        return patched


def _default_service_account(obj: dict[str, Any], settings: Settings) -> tuple[Op, str] | None:
    flux_kind = kind_of(obj)
    spec = obj.get("spec")
    if flux_kind is None or not flux_kind.applies_as_service_account or not isinstance(spec, dict):
        return None
    if spec.get("serviceAccountName"):
        return None
    op = "replace" if "serviceAccountName" in spec else "add"
    note = f"service-account: set spec.serviceAccountName to '{settings.applier}' (tenants apply as the applier)"
    return {"op": op, "path": "/spec/serviceAccountName", "value": settings.applier}, note


def _default_fluxconfig_namespace(obj: dict[str, Any], namespace: str) -> tuple[Op, str] | None:
    spec = obj.get("spec")
    if not namespace or not is_fluxconfig(obj) or (spec is not None and not isinstance(spec, dict)):
        return None
    if spec is not None and spec.get("namespace") not in (None, ""):
        return None
    note = f"{FLUXCONFIG_RULE}: set spec.namespace to {namespace} (a FluxConfig configures its own namespace)"
    if spec is None:
        op = {"op": "add", "path": "/spec", "value": {"namespace": namespace}}
    else:
        op = {"op": "replace" if "namespace" in spec else "add", "path": "/spec/namespace", "value": namespace}
    return op, note


def _fix_references(obj: dict[str, Any], namespace: str) -> list[tuple[Op, str]]:
    changes = []
    for _, steps, ref in cross_namespace_refs(obj, namespace):
        # The new namespace comes first: a long old one may be cut at the 120-character limit.
        note = f"cross-namespace-ref: set {dotted(steps)}.namespace to {namespace} (was {text(ref['namespace'])})"
        changes.append(({"op": "replace", "path": pointer(steps) + "/namespace", "value": namespace}, note))
    return changes


def _tenancy_changes(obj: dict[str, Any], ns: str, settings: Settings) -> list[tuple[Op, str]]:
    changes = []
    if change := _default_service_account(obj, settings):
        changes.append(change)
    if settings.mode == "fix":
        changes.extend(_fix_references(obj, ns))
    return changes


def mutate(
    obj: dict[str, Any],
    settings: Settings,
    *,
    namespace: str | None = None,
    requester: Requester | None = None,
) -> Mutation:
    """The changes fluxwarden makes to ``obj`` on admission; ``obj`` itself is left untouched."""
    ns = object_namespace(obj, namespace)
    changes = []
    if change := _default_fluxconfig_namespace(obj, ns):
        changes.append(change)
    if settings.enforce and kind_of(obj) is not None and not is_exempt(settings, ns, requester):
        changes.extend(_tenancy_changes(obj, ns, settings))
    return Mutation(obj, [op for op, _ in changes], [one_line(note, WARNING_LIMIT) for _, note in changes])
