"""Prometheus metrics of the webhook, in a registry of its own (one per app, so tests can build many)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from fluxwarden.tenancy import KINDS

LABELS = ("route", "kind", "operation", "allowed")
MAX_CACHED_LABEL_SETS = 1024
# The kind label comes from the request: only Flux kinds get their own series, so a client sending
# random kinds cannot grow the registry without bound.
LABELLED_KINDS = frozenset(k.kind for k in KINDS)
# Admission must answer in milliseconds; the buckets resolve that range.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class WebhookMetrics:
    """``fluxwarden_admission_duration_seconds`` and ``fluxwarden_admission_requests_total``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.duration = Histogram(
            "fluxwarden_admission_duration_seconds",
            "Time to answer one AdmissionReview.",
            LABELS,
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "fluxwarden_admission_requests",
            "AdmissionReviews answered, by outcome; bad requests have allowed=error.",
            LABELS,
            registry=self.registry,
        )

        # labels() takes a lock and validates on every call; the label sets are few, so keep the children.
        self._children: dict[tuple[str, ...], tuple[Any, Any]] = {}

    def observe(self, route: str, kind: str, operation: str, allowed: str, seconds: float) -> None:
        kind = (kind if kind in LABELLED_KINDS else "other") if kind else "unknown"
        labels = (route, kind, operation or "unknown", allowed)
        children = self._children.get(labels)
        if children is None:
            children = (self.duration.labels(*labels), self.requests.labels(*labels))
            if len(self._children) < MAX_CACHED_LABEL_SETS:
                self._children[labels] = children
        children[0].observe(seconds)
        children[1].inc()
