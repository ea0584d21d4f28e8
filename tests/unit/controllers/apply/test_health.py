"""kstatus health of built-in kinds: null, missing and mistyped numbers never crash ``compute``."""

from __future__ import annotations

from typing import Any

import pytest

from fluxwarden.controllers.apply.health import compute

NUMERIC = {
    "Deployment": (("replicas",), ("updatedReplicas", "readyReplicas", "availableReplicas", "observedGeneration")),
    "StatefulSet": (("replicas",), ("readyReplicas", "currentReplicas", "observedGeneration")),
    "ReplicaSet": (("replicas",), ("readyReplicas", "availableReplicas", "observedGeneration")),
    "DaemonSet": ((), ("desiredNumberScheduled", "updatedNumberScheduled", "numberAvailable", "numberReady")),
}


def workload(kind: str, spec: dict[str, Any], status: dict[str, Any], generation: Any = 2) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": "w", "generation": generation}, "spec": spec, "status": status}


BAD_NUMBERS: tuple[Any, ...] = (None, "many", [], True)
CASES: list[tuple[str, str, str, Any]] = [
    (kind, place, field, bad)
    for kind, (spec_fields, status_fields) in NUMERIC.items()
    for place, fields in (("spec", spec_fields), ("status", status_fields))
    for field in fields
    for bad in BAD_NUMBERS
]


@pytest.mark.parametrize(("kind", "place", "field", "bad"), CASES)
def test_a_null_or_mistyped_number_is_read_as_its_default(kind: str, place: str, field: str, bad: Any) -> None:
    ready = {f: 3 for f in NUMERIC[kind][1]} | {"observedGeneration": 2}
    obj = workload(kind, {"replicas": 3}, ready)
    obj[place][field] = bad
    state, reason = compute(obj)
    assert state in ("Current", "InProgress") and reason
    if place == "status" and field != "observedGeneration" and kind != "DaemonSet":
        assert (state, reason) == ("InProgress", f"{field}: 0/3"), "a null count is 0 ready, not a crash"


def test_null_replicas_means_one_as_the_api_server_defaults_it() -> None:
    one_ready = {"updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}
    assert compute(workload("Deployment", {"replicas": None}, one_ready)) == ("Current", "all replicas ready")
    assert compute(workload("Deployment", {"replicas": None}, {"readyReplicas": None})) == (
        "InProgress",
        "updatedReplicas: 0/1",
    )
    assert compute(workload("StatefulSet", {}, {"readyReplicas": 1, "currentReplicas": 1}))[0] == "Current"


def test_null_everywhere_and_no_spec_or_status_at_all() -> None:
    for kind in NUMERIC:
        nulls = {f: None for f in NUMERIC[kind][1]}
        assert compute(workload(kind, {"replicas": None}, nulls, generation=None))[0] in ("Current", "InProgress")
        assert compute({"kind": kind, "metadata": None, "spec": None, "status": None})[0] in ("Current", "InProgress")
    assert compute(workload("DaemonSet", {}, {"desiredNumberScheduled": 2, "numberReady": None})) == (
        "InProgress",
        "ready: 0/2",
    )
    assert compute({"kind": "Namespace", "status": {"phase": None}}) == ("Current", "active")


def test_an_unobserved_generation_is_in_progress_and_a_null_one_is_not_compared() -> None:
    done = {"updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}
    assert compute(workload("Deployment", {"replicas": 1}, {**done, "observedGeneration": 1}))[0] == "InProgress"
    assert compute(workload("Deployment", {"replicas": 1}, {**done, "observedGeneration": None}))[0] == "Current"
