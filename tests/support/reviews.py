"""Builders for the objects and AdmissionReviews the tests send."""

from __future__ import annotations

import copy
import uuid
from typing import Any


def legacy_helmrelease(namespace: str = "nginx", source_namespace: str = "flux-system") -> dict[str, Any]:
    """TENANCY.md's reference example: a HelmRelease whose chart source lives in ``source_namespace``."""
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": "nginx", "namespace": namespace},
        "spec": {
            "interval": "5m",
            "chart": {
                "spec": {
                    "chart": "nginx",
                    "sourceRef": {"kind": "HelmRepository", "name": "bitnami", "namespace": source_namespace},
                }
            },
        },
    }


def admission_review(
    obj: dict[str, Any], *, operation: str = "CREATE", uid: str | None = None, username: str = "alice"
) -> dict[str, Any]:
    """An ``admission.k8s.io/v1`` AdmissionReview request for ``obj``, as the API server sends it."""
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    meta = obj.get("metadata", {})
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": obj.get("kind")},
            "resource": {"group": group, "version": version, "resource": str(obj.get("kind", "")).lower() + "s"},
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", ""),
            "operation": operation,
            "userInfo": {"username": username, "groups": ["system:authenticated"]},
            "object": copy.deepcopy(obj),
            "oldObject": None,
            "dryRun": False,
        },
    }
