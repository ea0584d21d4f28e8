"""Mixed deployments: upstream Flux's controllers and fluxwarden's on one API server, each on its own shard.

The two sides never reconcile the same object. Objects carry ``sharding.fluxcd.io/key`` (Flux's sharding
label): Flux's controllers run with ``--watch-label-selector``, fluxwarden's with ``label_selector``.
``Objects`` writes and reads Flux objects in one namespace with the shard given per object, because a
consumer and its source live on different sides; ``flux_controller`` starts one upstream controller on a
shard. Set-up of namespaces and RBAC is ``tests.support.tenants``'s.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.tenancy import cut
from tests.support.flux_upstream import FluxController
from tests.support.oci_registry import OciRegistry
from tests.support.tenants import SHARD, condition

FLUX_SHARD = "mixed-flux"
FLUXWARDEN_SHARDS = "mixed-fluxwarden"  # a module adds its own suffix
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


def flux_on_shard(name: str, kubeconfig: Path, work: Path, *args: str, shard: str = FLUX_SHARD) -> FluxController:
    """Flux's ``name`` controller (locked down), watching every namespace but only objects of ``shard``."""
    return FluxController(
        name, kubeconfig, work, ("--watch-all-namespaces=true", f"--watch-label-selector={SHARD}={shard}", *args)
    )


@dataclass
class Objects:
    """Flux objects in ``namespace``; ``watchers`` are the upstream controllers whose exit fails a wait."""

    api: client.ApiClient
    namespace: str
    watchers: tuple[FluxController, ...] = ()

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def create(self, resource: Resource, name: str, shard: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": name, "namespace": self.namespace, "labels": {SHARD: shard}},
            "spec": spec,
        }
        made: dict[str, Any] = self.custom.create_namespaced_custom_object(
            resource.group, resource.version, self.namespace, resource.plural, body
        )
        return made

    def get(self, resource: Resource, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            resource.group, resource.version, self.namespace, resource.plural, name
        )
        return obj

    def list(self, resource: Resource) -> list[dict[str, Any]]:
        listed = self.custom.list_namespaced_custom_object(
            resource.group, resource.version, self.namespace, resource.plural
        )
        return list(listed["items"])

    def patch(self, resource: Resource, name: str, body: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            resource.group, resource.version, self.namespace, resource.plural, name, body,
            _content_type="application/merge-patch+json",
        )  # fmt: skip

    def request(self, resource: Resource, name: str, token: str) -> None:
        """Ask for a reconcile now (``reconcile.fluxcd.io/requestedAt``), as ``flux reconcile`` does."""
        self.patch(resource, name, {"metadata": {"annotations": {REQUESTED_AT: token}}})

    def wait(
        self, resource: Resource, name: str, done: Callable[[dict[str, Any]], bool], what: str, timeout: float = 90
    ) -> dict[str, Any]:
        """Poll until ``done``; on timeout say which conditions the object had (not the whole object)."""
        deadline = time.monotonic() + timeout
        while True:
            for watcher in self.watchers:
                watcher.assert_running()
            try:
                obj = self.get(resource, name)
            except client.ApiException as error:
                if error.status != 404:
                    raise
                obj = {}
            if obj and done(obj):
                return obj
            if time.monotonic() > deadline:
                status = obj.get("status") or {}
                seen = [(c.get("type"), c.get("status"), c.get("reason"), cut(str(c.get("message")), 300))
                        for c in status.get("conditions") or []]  # fmt: skip
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {resource.kind} {self.namespace}/{name} {what}; "
                    f"conditions: {seen}; observedGeneration: {status.get('observedGeneration')}"
                )
            time.sleep(0.2)

    def ready(self, resource: Resource, name: str, timeout: float = 90) -> dict[str, Any]:
        """Ready=True at the object's current generation."""

        def done(obj: dict[str, Any]) -> bool:
            current = (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
            return current and condition(obj).get("status") == "True"

        return self.wait(resource, name, done, "Ready", timeout)


def configmaps(api: client.ApiClient, namespace: str) -> dict[str, dict[str, str]]:
    """Name -> data of the ConfigMaps in ``namespace`` (the API server's own root CA left out)."""
    return {
        c.metadata.name: dict(c.data or {})
        for c in client.CoreV1Api(api).list_namespaced_config_map(namespace).items
        if c.metadata.name != "kube-root-ca.crt"
    }


def registry_secrets(api: client.ApiClient, namespace: str, registry: OciRegistry) -> None:
    """Secrets ``login`` (dockerconfigjson) and ``registry-ca`` (``ca.crt``) for an OCIRepository on ``registry``."""
    core = client.CoreV1Api(api)
    login = {".dockerconfigjson": base64.b64encode(registry.dockerconfigjson().encode()).decode()}
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "login"}, "type": "kubernetes.io/dockerconfigjson", "data": login}
    )
    ca = {"ca.crt": (registry.ca_pem or b"").decode()}
    core.create_namespaced_secret(namespace, {"metadata": {"name": "registry-ca"}, "stringData": ca})
