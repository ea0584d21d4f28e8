"""Prometheus metrics of the controllers, named as Flux names them (``gotk_*``)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

OBJECT = ("kind", "name", "namespace")
STATUSES = ("True", "False", "Unknown")


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
        self._types: dict[tuple[str, str, str], set[str]] = {}  # condition types with series, per object
        self._lock = threading.Lock()

    def record_conditions(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """One series per condition type and status; the series of a type the object no longer has go."""
        current = {c["type"]: c.get("status") for c in status.get("conditions") or [] if c.get("type")}
        with self._lock:
            gone = self._types.get((kind, namespace, name), set()) - set(current)
            self._types[(kind, namespace, name)] = set(current)
            for type_ in gone:
                self._remove_condition(kind, namespace, name, type_)
            for type_, value in current.items():
                for text in STATUSES:
                    self.condition.labels(kind, name, namespace, type_, text).set(1 if value == text else 0)

    def _remove_condition(self, kind: str, namespace: str, name: str, type_: str) -> None:
        for text in STATUSES:
            with contextlib.suppress(KeyError):
                self.condition.remove(kind, name, namespace, type_, text)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop every series of a deleted object: durations, suspension, conditions."""
        with self._lock:
            for type_ in self._types.pop((kind, namespace, name), set()):
                self._remove_condition(kind, namespace, name, type_)
            for metric in (self.duration, self.suspended):
                with contextlib.suppress(KeyError):
                    metric.remove(kind, name, namespace)
