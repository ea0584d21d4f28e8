"""Prometheus metrics of the controllers, named as Flux names them (``gotk_*``)."""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

OBJECT = ("kind", "name", "namespace")


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # ``*_created`` series double the samples per object and no Flux dashboard reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry or CollectorRegistry()
        self.duration = Histogram(
            "gotk_reconcile_duration_seconds",
            "Time one reconcile took.",
            OBJECT,
            buckets=(0.05, 0.25, 1, 5, 30, 120),  # per object: few buckets keep scrapes cheap at scale
            registry=self.registry,
        )
        self.condition = Gauge(
            "gotk_reconcile_condition",
            "1 for the current status of each condition type of an object.",
            (*OBJECT, "type", "status"),
            registry=self.registry,
        )
        self.suspended = Gauge("gotk_suspend_status", "1 when the object is suspended.", OBJECT, registry=self.registry)
        self.in_progress = Gauge(
            "gotk_reconcile_in_progress", "Reconciles running now.", ("kind",), registry=self.registry
        )
        self.results = Counter(
            "controller_runtime_reconcile",
            "Reconciles by result (success, error, requeue).",
            ("controller", "result"),
            registry=self.registry,
        )

    def record_conditions(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        for condition in status.get("conditions") or []:
            for value in ("True", "False", "Unknown"):
                self.condition.labels(kind, name, namespace, condition["type"], value).set(
                    1 if condition.get("status") == value else 0
                )

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop the series of a deleted object."""
        for metric in (self.duration, self.suspended):
            with contextlib.suppress(KeyError):
                metric.remove(kind, name, namespace)
