"""OCIRepositories of one test namespace, and reading their status and artifacts (the OCI source e2e tests)."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
from kubernetes import client

from fluxwarden.controllers.source.api import OCI_REPOSITORY
from tests.support.oci_artifacts import sha256
from tests.support.oci_registry import OciRegistry
from tests.support.wait import until

SHARD = "sharding.fluxcd.io/key"


class Oci:
    """OCIRepositories of one namespace, with the registry's login and CA Secrets in place."""

    def __init__(self, api: client.ApiClient, namespace: str, registry: OciRegistry, shard: str) -> None:
        self.custom, self.core = client.CustomObjectsApi(api), client.CoreV1Api(api)
        self.namespace, self.registry, self.shard = namespace, registry, shard
        self.secret("login", {".dockerconfigjson": registry.dockerconfigjson().encode()},
                    "kubernetes.io/dockerconfigjson")  # fmt: skip
        self.secret("registry-ca", {"ca.crt": registry.ca_pem or b""})

    def secret(self, name: str, data: dict[str, bytes], type_: str = "Opaque") -> None:
        encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
        body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), data=encoded, type=type_)
        self.core.create_namespaced_secret(self.namespace, body)

    def create(self, name: str, repo: str, **spec: Any) -> None:
        base: dict[str, Any] = {
            "url": self.registry.oci_url(repo), "interval": "10m", "secretRef": {"name": "login"},
            "certSecretRef": {"name": "registry-ca"},
        }  # fmt: skip
        full = {k: v for k, v in {**base, **spec}.items() if v is not None}
        body = {"apiVersion": OCI_REPOSITORY.api_version, "kind": "OCIRepository", "spec": full,
                "metadata": {"name": name, "namespace": self.namespace, "labels": {SHARD: self.shard}}}  # fmt: skip
        self.custom.create_namespaced_custom_object(
            OCI_REPOSITORY.group, OCI_REPOSITORY.version, self.namespace, OCI_REPOSITORY.plural, body
        )

    def get(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            OCI_REPOSITORY.group, OCI_REPOSITORY.version, self.namespace, OCI_REPOSITORY.plural, name
        )
        return obj

    def patch(self, name: str, body: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            OCI_REPOSITORY.group, OCI_REPOSITORY.version, self.namespace, OCI_REPOSITORY.plural, name, body,
            _content_type="application/merge-patch+json",
        )  # fmt: skip

    def reconcile(self, name: str) -> dict[str, Any]:
        """Request a reconcile and wait until it ran (``lastHandledReconcileAt``)."""
        stamp = f"{time.time():.6f}"
        self.patch(name, {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}})
        return until(lambda: self.get(name), lambda o: status(o).get("lastHandledReconcileAt") == stamp,
                     timeout=30, what=f"OCIRepository {name} handled {stamp}")  # fmt: skip

    def ready(self, name: str, revision: str | None = None) -> dict[str, Any]:
        def done(obj: dict[str, Any]) -> bool:
            current = status(obj).get("observedGeneration") == obj["metadata"]["generation"]
            at = revision is None or artifact(obj).get("revision") == revision
            return current and at and condition(obj).get("status") == "True"

        return until(lambda: self.get(name), done, timeout=30, what=f"OCIRepository {name} Ready at {revision}")

    def failed(self, name: str, reason: str) -> dict[str, Any]:
        return until(
            lambda: self.get(name), lambda o: condition(o).get("reason") == reason, timeout=30,
            what=f"OCIRepository {name} Ready=False {reason}",
        )  # fmt: skip

    def stalled(self, name: str) -> dict[str, Any]:
        return until(lambda: self.get(name), lambda o: condition(o, "Stalled").get("status") == "True",
                     timeout=30, what=f"OCIRepository {name} Stalled")  # fmt: skip


def status(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj.get("status") or {})


def artifact(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(status(obj).get("artifact") or {})


def condition(obj: dict[str, Any], type_: str = "Ready") -> dict[str, Any]:
    return next((dict(c) for c in status(obj).get("conditions") or [] if c["type"] == type_), {})


def download(obj: dict[str, Any]) -> bytes:
    """The artifact as served, checked against ``status.artifact.digest`` and ``size``."""
    data = httpx.get(artifact(obj)["url"], timeout=30).content
    assert (sha256(data), len(data)) == (artifact(obj)["digest"], artifact(obj)["size"])
    return data


def one_line_without(message: str, *secrets: str) -> bool:
    return bool(message) and "\n" not in message and not any(s in message for s in secrets)
