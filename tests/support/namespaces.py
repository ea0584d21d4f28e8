"""Namespaces a test needs that the namespace fixtures do not make (a bare API server makes
kube-system, not flux-system)."""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.exceptions import ApiException


def ensure_namespace(api: client.ApiClient, name: str) -> None:
    """Create ``name`` unless it exists."""
    try:
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except ApiException as error:
        if error.status != 409:
            raise
