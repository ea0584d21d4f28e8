"""Per-object metric series: a dropped condition type and a deleted object leave no series behind."""

from __future__ import annotations

from prometheus_client import generate_latest

from fluxwarden.controllers.runtime.metrics import ControllerMetrics


def exposition(metrics: ControllerMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def conditions(**types: str) -> dict[str, object]:
    return {"conditions": [{"type": t, "status": s} for t, s in types.items()]}


def test_a_condition_type_that_went_away_drops_its_series() -> None:
    metrics = ControllerMetrics()
    metrics.record_conditions("GitRepository", "n", "a", conditions(Ready="False", Stalled="True"))
    assert 'name="a",namespace="n",status="True",type="Stalled"} 1.0' in exposition(metrics)
    metrics.record_conditions("GitRepository", "n", "a", conditions(Ready="True"))
    text = exposition(metrics)
    assert 'type="Stalled"' not in text
    assert 'name="a",namespace="n",status="True",type="Ready"} 1.0' in text


def test_forget_drops_every_series_of_the_object_and_only_its() -> None:
    metrics = ControllerMetrics()
    for name in ("gone", "kept"):
        metrics.record_conditions("Kustomization", "n", name, conditions(Ready="True", Reconciling="False"))
        metrics.duration.labels("Kustomization", name, "n").observe(0.1)
        metrics.suspended.labels("Kustomization", name, "n").set(0)
    metrics.forget("Kustomization", "n", "gone")
    text = exposition(metrics)
    assert 'name="gone"' not in text
    assert text.count('name="kept"') >= 3 + 6 + 1  # buckets, sum and count; 6 condition series; suspend
    metrics.forget("Kustomization", "n", "never-seen")  # no series: nothing to do, no error
