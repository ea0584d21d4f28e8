"""Conditions: one place sets Ready, Reconciling and Stalled from a reconcile's outcome."""

from __future__ import annotations

from typing import Any

import pytest

from fluxwarden.controllers.runtime import conditions
from fluxwarden.controllers.runtime.durations import parse_duration


def types(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status.get("conditions", [])}


def test_success_retry_and_stall_are_kstatus_shaped() -> None:
    status: dict[str, Any] = {}
    conditions.summarize(status, "retrying", "GitOperationFailed", "boom", 2)
    assert types(status) == {"Ready": "False", "Reconciling": "True"}
    conditions.summarize(status, "stalled", "InvalidSpec", "bad", 3)
    assert types(status) == {"Ready": "False", "Stalled": "True"}
    conditions.summarize(status, "succeeded", "Succeeded", "ok", 4)
    assert types(status) == {"Ready": "True"}
    ready = conditions.get(status, "Ready")
    assert ready is not None and ready["observedGeneration"] == 4 and ready["message"] == "ok"


def test_transition_time_moves_only_when_the_value_changes() -> None:
    status: dict[str, Any] = {}
    conditions.set_condition(status, "Ready", True, "Succeeded", "a", 1)
    first = conditions.get(status, "Ready")
    assert first is not None
    first_time = first["lastTransitionTime"]
    status["conditions"][0]["lastTransitionTime"] = "2000-01-01T00:00:00Z"
    conditions.set_condition(status, "Ready", True, "Succeeded", "b", 1)
    again = conditions.get(status, "Ready")
    assert again is not None and again["lastTransitionTime"] == "2000-01-01T00:00:00Z"
    conditions.set_condition(status, "Ready", False, "Failed", "c", 1)
    flipped = conditions.get(status, "Ready")
    assert flipped is not None and flipped["lastTransitionTime"] >= first_time


def test_ready_is_listed_first() -> None:
    status: dict[str, Any] = {}
    conditions.set_condition(status, "ArtifactInStorage", True, "Succeeded", "x", 1)
    conditions.summarize(status, "succeeded", "Succeeded", "x", 1)
    assert [c["type"] for c in status["conditions"]] == ["Ready", "ArtifactInStorage"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("1m", 60), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("0", 0), ("2.5s", 2.5)]
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1d", "m", "1m x", "-1s"])
def test_bad_durations_name_the_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
