"""Compliance states, written out by hand from FLUXCONFIG.md and the issue's definitions."""

from __future__ import annotations

from typing import Any

from fluxwarden.controllers.fluxconfig.compliance import Observed, aggregate, assess, state_of

REV = "main@sha1:" + "a" * 40
OLD = "main@sha1:" + "b" * 40


def flux(kind: str, ready: str | None, *, reason: str = "Succeeded", generation: int = 1, observed: int = 1,
         applied: str | None = None, suspend: bool = False, message: str = "m") -> dict[str, Any]:  # fmt: skip
    status: dict[str, Any] = {"observedGeneration": observed}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": ready, "reason": reason, "message": message}]
    if applied is not None:
        status["lastAppliedRevision"] = applied
    spec = {"suspend": True} if suspend else {}
    meta = {"name": "x", "namespace": "ns", "generation": generation}
    return {"kind": kind, "metadata": meta, "spec": spec, "status": status}


def test_kustomization_compliant_only_at_the_sources_revision() -> None:
    assert state_of(flux("Kustomization", "True", applied=REV), REV) == "Compliant"
    assert state_of(flux("Kustomization", "True", applied=OLD), REV) == "Pending"


def test_a_new_generation_not_yet_observed_is_pending() -> None:
    assert state_of(flux("GitRepository", "True", generation=2, observed=1), REV) == "Pending"


def test_failures_are_non_compliant_but_waiting_on_a_dependency_is_pending() -> None:
    assert state_of(flux("Kustomization", "False", reason="ReconciliationFailed"), REV) == "Non-Compliant"
    assert state_of(flux("Kustomization", "False", reason="DependencyNotReady"), REV) == "Pending"
    assert state_of(flux("HelmRelease", None), REV) == "Pending"
    assert state_of(flux("HelmRelease", "Unknown", reason="Progressing"), REV) == "Pending"


def test_suspended_children() -> None:
    assert state_of(flux("Kustomization", "True", suspend=True), REV) == "Suspended"


def test_aggregate_suspension_wins_then_failure_then_pending() -> None:
    assert aggregate(["Compliant", "Non-Compliant", "Pending"], suspended=True) == "Suspended"
    assert aggregate(["Compliant", "Non-Compliant", "Pending"], suspended=False) == "Non-Compliant"
    assert aggregate(["Compliant", "Pending"], suspended=True) == "Suspended"
    assert aggregate(["Compliant", "Pending"], suspended=False) == "Pending"
    assert aggregate(["Compliant", "Compliant"], suspended=False) == "Compliant"
    assert aggregate([], suspended=False) == "Pending"


def test_statuses_carry_applied_by_and_helm_properties() -> None:
    release = flux("HelmRelease", "True")
    release["status"].update(
        helmChart="cluster-config/cluster-config-nginx", failures=2, installFailures=1, upgradeFailures=0,
        history=[{"version": 3}, {"version": 2}],
    )  # fmt: skip
    result = assess(
        [Observed(flux("GitRepository", "True")), Observed(release, ("cluster-config", "cfg-apps"))], REV, False
    )
    assert result.state == "Compliant"
    entry = result.statuses[1]
    assert entry["appliedBy"] == {"namespace": "cluster-config", "name": "cfg-apps"}
    assert entry["helmReleaseProperties"] == {
        "lastRevisionApplied": 3,
        "helmChartRef": {"name": "cluster-config-nginx", "namespace": "cluster-config"},
        "failureCount": 2,
        "installFailureCount": 1,
        "upgradeFailureCount": 0,
    }
    assert entry["statusConditions"] == [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "m"}]


def test_first_failure_names_the_object() -> None:
    failing = flux("Kustomization", "False", reason="ReconciliationFailed", message="apply failed: forbidden")
    result = assess([Observed(flux("GitRepository", "True")), Observed(failing)], REV, False)
    assert result.state == "Non-Compliant"
    assert result.first_failure == "Kustomization ns/x: apply failed: forbidden"


def test_no_artifact_is_pending_only_while_the_source_is() -> None:
    waiting = flux("Kustomization", "False", reason="ArtifactFailed", message="no artifact")
    pending_source = flux("GitRepository", None)
    assert assess([Observed(pending_source), Observed(waiting)], None, False).state == "Pending"
    ready_source = flux("GitRepository", "True")
    broken = assess([Observed(ready_source), Observed(waiting)], REV, False)
    assert broken.state == "Non-Compliant" and broken.first_failure == "Kustomization ns/x: no artifact"
