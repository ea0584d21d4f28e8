"""One compliance state from every object a FluxConfig made and every Flux object those applied.

Pure. States and the ARM ``ObjectStatusDefinition`` shape are Azure's:
``Compliant`` (Ready at the source's current revision), ``Pending`` (a new revision or generation
not yet applied), ``Non-Compliant`` (Ready=False), ``Suspended``, ``Unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fluxwarden.controllers.runtime.spec import mapping

COMPLIANT = "Compliant"
NON_COMPLIANT = "Non-Compliant"
PENDING = "Pending"
SUSPENDED = "Suspended"
UNKNOWN = "Unknown"

# Ready=False reasons that mean "on its way", not a failure: a dependency, a source or a chart not
# ready yet (``SourceNotReady`` is fluxwarden's helm controller, ``HelmChartNotReady`` Flux's).
PENDING_REASONS = frozenset(
    {"DependencyNotReady", "Progressing", "ProgressingWithRetry", "SourceNotReady", "HelmChartNotReady"}
)
# No artifact to apply: on its way while the config's source is, a failure (a broken chart, a
# deleted source) otherwise.
ARTIFACT_FAILED = "ArtifactFailed"


@dataclass(frozen=True)
class Observed:
    """A Flux object, and the Kustomization that applied it (None for what the FluxConfig made)."""

    obj: dict[str, Any]
    applied_by: tuple[str, str] | None = None  # (namespace, name)


def _ready(obj: dict[str, Any]) -> dict[str, Any] | None:
    for condition in mapping(obj.get("status")).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return condition
    return None


def state_of(obj: dict[str, Any], source_revision: str | None, source_pending: bool = False) -> str:
    """One object's state; a Kustomization of this config is Compliant only at the source's revision."""
    spec, status, meta = mapping(obj.get("spec")), mapping(obj.get("status")), mapping(obj.get("metadata"))
    if spec.get("suspend"):
        return SUSPENDED
    ready = _ready(obj)
    if ready is None or status.get("observedGeneration") != meta.get("generation"):
        return PENDING
    if ready.get("status") == "False":
        reason = ready.get("reason")
        on_its_way = reason in PENDING_REASONS or (reason == ARTIFACT_FAILED and source_pending)
        return PENDING if on_its_way else NON_COMPLIANT
    if ready.get("status") != "True":
        return PENDING
    if source_revision and obj.get("kind") == "Kustomization" and "lastAppliedRevision" in status:
        return COMPLIANT if status.get("lastAppliedRevision") == source_revision else PENDING
    return COMPLIANT


def aggregate(states: list[str], suspended: bool) -> str:
    """The config's state: a suspended config is Suspended (as Azure shows it), then a failure wins,
    then anything still on its way."""
    if suspended:
        return SUSPENDED
    if NON_COMPLIANT in states:
        return NON_COMPLIANT
    if not states or PENDING in states or UNKNOWN in states:
        return PENDING
    if SUSPENDED in states:
        return SUSPENDED
    return COMPLIANT


def _conditions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    keep = ("type", "status", "reason", "message", "lastTransitionTime")
    return [
        {k: c[k] for k in keep if k in c}
        for c in mapping(obj.get("status")).get("conditions") or []
        if isinstance(c, dict)
    ]


def _helm_properties(obj: dict[str, Any]) -> dict[str, Any]:
    status = mapping(obj.get("status"))
    history = [h for h in status.get("history") or [] if isinstance(h, dict)]
    chart = str(status.get("helmChart") or "")
    chart_namespace, _, chart_name = chart.partition("/")
    found: dict[str, Any] = {
        "failureCount": int(status.get("failures") or 0),
        "installFailureCount": int(status.get("installFailures") or 0),
        "upgradeFailureCount": int(status.get("upgradeFailures") or 0),
    }
    if history and history[0].get("version") is not None:
        found["lastRevisionApplied"] = int(history[0]["version"])
    if chart_name:
        found["helmChartRef"] = {"name": chart_name, "namespace": chart_namespace}
    return found


def object_status(observed: Observed, state: str) -> dict[str, Any]:
    """ARM's ObjectStatusDefinition of one object."""
    obj = observed.obj
    meta = mapping(obj.get("metadata"))
    entry: dict[str, Any] = {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "kind": obj.get("kind"),
        "complianceState": state,
        "statusConditions": _conditions(obj),
    }
    if observed.applied_by:
        entry["appliedBy"] = {"namespace": observed.applied_by[0], "name": observed.applied_by[1]}
    if obj.get("kind") == "HelmRelease":
        entry["helmReleaseProperties"] = _helm_properties(obj)
    return entry


@dataclass(frozen=True)
class Compliance:
    state: str
    statuses: list[dict[str, Any]]
    first_failure: str | None  # "<Kind> <ns>/<name>: <message>" of the first Non-Compliant object
    first_pending: str | None


def assess(observed: list[Observed], source_revision: str | None, suspended: bool) -> Compliance:
    """``observed[0]`` is the config's source; the rest wait on it."""
    statuses, failure, pending = [], None, None
    source_pending = bool(observed) and state_of(observed[0].obj, source_revision) == PENDING
    for item in observed:
        own = item.applied_by is None
        state = state_of(item.obj, source_revision if own else None, source_pending)
        statuses.append(object_status(item, state))
        meta = mapping(item.obj.get("metadata"))
        ready = _ready(item.obj) or {}
        what = f"{item.obj.get('kind')} {meta.get('namespace')}/{meta.get('name')}"
        if state == NON_COMPLIANT and failure is None:
            failure = f"{what}: {ready.get('message') or 'not ready'}"
        if state == PENDING and pending is None:
            pending = f"{what}: {ready.get('message') or 'not reconciled yet'}"
    states = [s["complianceState"] for s in statuses]
    return Compliance(aggregate(states, suspended), statuses, failure, pending)
