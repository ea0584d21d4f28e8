"""What the mutating webhook may change, as an RFC 6902 JSON Patch plus a warning per change.

Only what is legal at admission: the API server forbids changing an object's namespace, so the
mutation defaults ``serviceAccountName`` to the applier and, in ``fix`` mode, points a
cross-namespace reference back into the object's own namespace.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import jsonpatch

from fluxwarden.tenancy.findings import WARNING_LIMIT, one_line
from fluxwarden.tenancy.kinds import kind_of
from fluxwarden.tenancy.paths import dotted
from fluxwarden.tenancy.rules import cross_namespace_refs, object_namespace
from fluxwarden.tenancy.settings import Requester, Settings, is_exempt


@dataclass(frozen=True)
class Mutation:
    """The patched object, the patch that makes it, and one warning per change."""

    obj: dict[str, Any]
    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _default_service_account(obj: dict[str, Any], settings: Settings) -> str | None:
    flux_kind = kind_of(obj)
    spec = obj.get("spec")
    if flux_kind is None or not flux_kind.applies_as_service_account or not isinstance(spec, dict):
        return None
    if spec.get("serviceAccountName"):
        return None
    spec["serviceAccountName"] = settings.applier
    return f"service-account: set spec.serviceAccountName to '{settings.applier}' (tenants apply as the applier)"


def _fix_references(obj: dict[str, Any], namespace: str) -> list[str]:
    notes = []
    for _, steps, ref in list(cross_namespace_refs(obj, namespace)):
        # The new namespace comes first: a long old one may be cut at the 120-character limit.
        notes.append(f"cross-namespace-ref: set {dotted(steps)}.namespace to {namespace} (was {ref['namespace']})")
        ref["namespace"] = namespace
    return notes


def mutate(
    obj: dict[str, Any],
    settings: Settings,
    *,
    namespace: str | None = None,
    requester: Requester | None = None,
) -> Mutation:
    """The changes fluxwarden makes to ``obj`` on admission; ``obj`` itself is left untouched."""
    ns = object_namespace(obj, namespace)
    if not settings.enforce or is_exempt(settings, ns, requester) or kind_of(obj) is None:
        return Mutation(obj)
    changed = copy.deepcopy(obj)
    notes = []
    if note := _default_service_account(changed, settings):
        notes.append(note)
    if settings.mode == "fix":
        notes.extend(_fix_references(changed, ns))
    if not notes:
        return Mutation(obj)
    patch = jsonpatch.make_patch(obj, changed).patch
    return Mutation(changed, patch, [one_line(n, WARNING_LIMIT) for n in notes])
