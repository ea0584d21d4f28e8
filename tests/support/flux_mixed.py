"""Mixed deployments: upstream Flux's controllers and fluxwarden's on one API server, each on its own shard.

The two sides never reconcile the same object. Objects carry ``sharding.fluxcd.io/key`` (Flux's sharding
label): Flux's controllers run with ``--watch-label-selector``, fluxwarden's with ``label_selector``.
``Objects`` writes and reads Flux objects in one namespace with the shard given per object, because a
consumer and its source live on different sides; ``flux_controller`` starts one upstream controller on a
shard. ``tenant_namespaces`` and the spec helpers are what every mixed test sets up the same way; the grants
themselves are ``tests.support.tenants``'s.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.source.api import GIT_REPOSITORY, HELM_REPOSITORY
from fluxwarden.tenancy import cut
from tests.support.flux_upstream import FluxController
from tests.support.git_server import GitHttpServer, GitRepo
from tests.support.helm_repo import HelmRepoServer
from tests.support.oci_registry import OciRegistry
from tests.support.tenants import SHARD, condition, grant

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

    def not_ready(self, resource: Resource, name: str, reason: str) -> dict[str, Any]:
        """Ready=False with ``reason``."""

        def done(obj: dict[str, Any]) -> bool:
            return condition(obj).get("status") == "False" and condition(obj).get("reason") == reason

        return self.wait(resource, name, done, f"Ready=False {reason}")


@dataclass(frozen=True)
class Tenant:
    """One test's tenant: ``objects`` in ``config`` (where flux-applier may write) and a ``target`` namespace."""

    api: client.ApiClient
    config: str
    target: str
    objects: Objects


def tenant_namespaces(api: client.ApiClient, namespace_factory: Callable[[], str]) -> tuple[str, str]:
    """A config namespace whose flux-applier may write there and to a target namespace (Flux's lockdown)."""
    config, target = namespace_factory(), namespace_factory()
    client.CoreV1Api(api).create_namespaced_service_account(config, {"metadata": {"name": "flux-applier"}})
    grant(api, config, config)
    grant(api, target, config)
    return config, target


def git_source(
    objects: Objects, git_server: GitHttpServer, work: Path, repo_name: str, shard: str, files: dict[str, str]
) -> tuple[GitRepo, str]:
    """A new Git repository with one commit of ``files`` and GitRepository ``repo`` on ``shard`` following its
    ``main``; the local clone (for more commits) and the commit's SHA."""
    git_server.create_repo(repo_name)
    repo = GitRepo(work)
    sha = repo.commit(files)
    repo.push(git_server.repo_path(repo_name))
    spec = {"url": git_server.repo_url(repo_name), "interval": "1h", "ref": {"branch": "main"}}
    objects.create(GIT_REPOSITORY, "repo", shard, spec)
    return repo, sha


def kustomization_spec(target: str, source_kind: str, source: str, path: str = "./apps") -> dict[str, Any]:
    """A pruning Kustomization of ``path`` into ``target``, retrying every 2s (the tests wait for failures)."""
    return {"interval": "1h", "retryInterval": "2s", "path": path, "prune": True, "targetNamespace": target,
            "sourceRef": {"kind": source_kind, "name": source}}  # fmt: skip


def helm_repository(objects: Objects, charts: HelmRepoServer, shard: str) -> None:
    """HelmRepository ``charts`` on ``shard`` at ``charts``, trusted through Secret ``charts-ca``
    (``tests.support.helm_tenants.trust_charts``)."""
    spec = {"url": charts.url, "interval": "1h", "certSecretRef": {"name": "charts-ca"}}
    objects.create(HELM_REPOSITORY, "charts", shard, spec)


def templated_release(target: str, version: str, chart_shard: str, **extra: Any) -> dict[str, Any]:
    """A HelmRelease spec whose HelmChart (of ``cms`` at ``version`` from HelmRepository ``charts``) is made
    from ``spec.chart``, on ``chart_shard`` through ``spec.chart.metadata.labels``."""
    return {"interval": "1h", "targetNamespace": target, "timeout": "30s", **extra,
            "chart": {"spec": chart_spec(version), "metadata": {"labels": {SHARD: chart_shard}}}}  # fmt: skip


def chart_spec(version: str) -> dict[str, Any]:
    """A HelmChart spec: chart ``cms`` at ``version`` from HelmRepository ``charts``."""
    return {"chart": "cms", "version": version, "interval": "1h",
            "sourceRef": {"kind": "HelmRepository", "name": "charts"}}  # fmt: skip


def chart_ref_release(target: str, kind: str, name: str, **extra: Any) -> dict[str, Any]:
    """A HelmRelease spec installing from the chart of source ``kind``/``name`` (``chartRef``) into ``target``."""
    return {"interval": "1h", "targetNamespace": target, "timeout": "30s", **extra,
            "chartRef": {"kind": kind, "name": name}}  # fmt: skip


def oci_repository_spec(url: str, tag: str, **extra: Any) -> dict[str, Any]:
    """An OCIRepository spec of ``url`` at ``tag``, with the Secrets of ``registry_secrets``."""
    return {"url": url, "interval": "1h", "ref": {"tag": tag},
            "secretRef": {"name": "login"}, "certSecretRef": {"name": "registry-ca"}, **extra}  # fmt: skip


def chart_digest(charts: HelmRepoServer, version: str) -> str:
    """The digest of packaged chart ``cms`` as the repository serves it: what an artifact must be, byte for byte."""
    return "sha256:" + hashlib.sha256((charts.root / f"cms-{version}.tgz").read_bytes()).hexdigest()


def status_writers(obj: dict[str, Any]) -> set[str]:
    """The field managers that wrote the object's status subresource."""
    return {m["manager"] for m in obj["metadata"].get("managedFields") or [] if m.get("subresource") == "status"}


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
