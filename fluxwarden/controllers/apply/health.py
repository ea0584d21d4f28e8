"""kstatus-style health: is an object Current, InProgress or Failed? Pure functions over dicts.

``wait`` and ``healthChecks`` of a Kustomization poll these until everything is Current or the
timeout passes. The rules follow kstatus (sigs.k8s.io/cli-utils) for the built-in kinds and Flux's
Ready/Stalled/Reconciling conditions for custom resources.
"""

from __future__ import annotations

from typing import Any, Literal

from fluxwarden.controllers.runtime.spec import mapping

State = Literal["Current", "InProgress", "Failed"]


def _count(fields: dict[str, Any], name: str, default: int = 0) -> int:
    """A numeric field; ``null``, a missing field or a non-number reads as ``default`` (never a crash)."""
    value = fields.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        return int(value)
    except ValueError:
        return default


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    status = mapping(obj.get("status"))
    return {c.get("type", ""): c for c in status.get("conditions") or [] if isinstance(c, dict)}


def _is(conditions: dict[str, dict[str, Any]], type_: str, value: str = "True") -> bool:
    return conditions.get(type_, {}).get("status") == value


def _replicas(obj: dict[str, Any]) -> tuple[State, str]:
    spec, status = mapping(obj.get("spec")), mapping(obj.get("status"))
    want = _count(spec, "replicas", 1)  # the API server defaults a missing (or null) replicas to 1
    kind = obj.get("kind")
    if kind == "Deployment":
        conditions = _conditions(obj)
        if conditions.get("Progressing", {}).get("reason") == "ProgressDeadlineExceeded":
            return "Failed", "progress deadline exceeded"
        counts: tuple[str, ...] = ("updatedReplicas", "readyReplicas", "availableReplicas")
    elif kind == "StatefulSet":
        counts = ("readyReplicas", "currentReplicas")
        if status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
            return "InProgress", "rolling update in progress"
    else:  # ReplicaSet
        counts = ("readyReplicas", "availableReplicas")
    for field in counts:
        have = _count(status, field)
        if have < want:
            return "InProgress", f"{field}: {have}/{want}"
    return "Current", "all replicas ready"


def compute(obj: dict[str, Any]) -> tuple[State, str]:
    """The object's state and a short reason."""
    meta, status = mapping(obj.get("metadata")), mapping(obj.get("status"))
    if meta.get("deletionTimestamp"):
        return "InProgress", "being deleted"
    observed, generation = _count(status, "observedGeneration", -1), _count(meta, "generation", -1)
    if observed >= 0 and generation >= 0 and observed < generation:
        return "InProgress", "the latest generation is not observed yet"
    kind = obj.get("kind")
    conditions = _conditions(obj)
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        return _replicas(obj)
    if kind == "DaemonSet":
        want = _count(status, "desiredNumberScheduled")
        have = min(_count(status, f) for f in ("updatedNumberScheduled", "numberAvailable", "numberReady"))
        return ("Current", "all pods ready") if have >= want else ("InProgress", f"ready: {have}/{want}")
    if kind == "Pod":
        phase = status.get("phase")
        if phase == "Succeeded" or (phase == "Running" and _is(conditions, "Ready")):
            return "Current", f"pod {phase.lower()}"
        return ("Failed", "pod failed") if phase == "Failed" else ("InProgress", f"pod {phase or 'pending'}")
    if kind == "Job":
        if _is(conditions, "Failed"):
            return "Failed", str(conditions["Failed"].get("message") or "job failed")
        return ("Current", "job complete") if _is(conditions, "Complete") else ("InProgress", "job running")
    if kind == "PersistentVolumeClaim":
        return ("Current", "bound") if status.get("phase") == "Bound" else ("InProgress", "not bound")
    if kind == "Namespace":
        return ("Current", "active") if (status.get("phase") or "Active") == "Active" else ("InProgress", "terminating")
    if kind == "CustomResourceDefinition":
        return ("Current", "established") if _is(conditions, "Established") else ("InProgress", "not established")
    if kind == "Service" and mapping(obj.get("spec")).get("type") == "LoadBalancer":
        ingress = mapping(status.get("loadBalancer")).get("ingress")
        return ("Current", "load balancer ready") if ingress else ("InProgress", "waiting for a load balancer")
    if _is(conditions, "Stalled"):
        return "Failed", str(conditions["Stalled"].get("message") or "stalled")
    if "Ready" in conditions:
        ready = conditions["Ready"]
        if ready.get("status") == "True":
            return "Current", str(ready.get("message") or "ready")
        return "InProgress", str(ready.get("message") or "not ready")
    if _is(conditions, "Reconciling"):
        return "InProgress", "reconciling"
    return "Current", "resource is current"
