"""A tenant as Azure's multi-tenant model has it, for the kustomize e2e tests: a configuration namespace
whose ``flux-applier`` may write only there and to the tenant's target namespace, another tenant's
namespace, and a git repository on a real smart-HTTP server.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.source.api import GIT_REPOSITORY
from tests.support.git_server import GitHttpServer, GitRepo
from tests.support.wait import until

SHARD = "sharding.fluxcd.io/key"
OWNER_NAME = "kustomize.toolkit.fluxcd.io/name"


def configmap(name: str, value: str, namespace: str | None = None) -> str:
    meta = f"  name: {name}\n" + (f"  namespace: {namespace}\n" if namespace else "")
    return f'apiVersion: v1\nkind: ConfigMap\nmetadata:\n{meta}data:\n  value: "{value}"\n'


@dataclass
class Namespaces:
    """A tenant's config namespace (its Flux objects), target namespace, another tenant's namespace, and
    the shard label its objects carry."""

    api: client.ApiClient
    config: str
    target: str
    other: str
    shard: str

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def labels(self) -> dict[str, str]:
        return {SHARD: self.shard}


@dataclass
class Tenant(Namespaces):
    """Namespaces and a git repository."""

    repo: GitRepo
    server: GitHttpServer
    repo_name: str

    def push(self, files: dict[str, str] | None = None, delete: tuple[str, ...] = ()) -> str:
        sha = self.repo.commit(files or {}, delete=delete)
        self.repo.push(self.server.repo_path(self.repo_name))
        return sha

    def git_repository(self, name: str = "repo") -> None:
        body = {
            "apiVersion": GIT_REPOSITORY.api_version,
            "kind": "GitRepository",
            "metadata": {"name": name, "namespace": self.config, "labels": self.labels()},
            "spec": {"url": self.server.repo_url(self.repo_name), "interval": "1m", "ref": {"branch": "main"}},
        }
        self.custom.create_namespaced_custom_object(
            GIT_REPOSITORY.group, GIT_REPOSITORY.version, self.config, GIT_REPOSITORY.plural, body
        )

    def kustomization(self, name: str, **spec: Any) -> None:
        body = {
            "apiVersion": KUSTOMIZATION.api_version,
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": self.config, "labels": self.labels()},
            "spec": {
                "interval": "1m",
                "retryInterval": "2s",
                "sourceRef": {"kind": "GitRepository", "name": "repo"},
                "prune": True,
                **spec,
            },
        }
        self.custom.create_namespaced_custom_object(
            KUSTOMIZATION.group, KUSTOMIZATION.version, self.config, KUSTOMIZATION.plural, body
        )

    def get(self, name: str, resource: Any = KUSTOMIZATION) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            resource.group, resource.version, self.config, resource.plural, name
        )
        return obj

    def patch(self, name: str, body: dict[str, Any], resource: Any = KUSTOMIZATION) -> None:
        self.custom.patch_namespaced_custom_object(
            resource.group,
            resource.version,
            self.config,
            resource.plural,
            name,
            body,
            _content_type="application/merge-patch+json",
        )

    def ready(self, name: str, revision: str | None = None, timeout: float = 60) -> dict[str, Any]:
        def done(obj: dict[str, Any]) -> bool:
            status = obj.get("status") or {}
            ok = (
                condition(obj).get("status") == "True"
                and status.get("observedGeneration") == obj["metadata"]["generation"]
            )
            return ok and (revision is None or status.get("lastAppliedRevision", "").endswith(revision))

        return until(lambda: self.get(name), done, timeout=timeout, what=f"Kustomization {name} Ready at {revision}")

    def failed(self, name: str, reason: str, timeout: float = 60) -> dict[str, Any]:
        return until(
            lambda: self.get(name),
            lambda o: condition(o).get("reason") == reason and condition(o).get("status") == "False",
            timeout=timeout,
            what=f"Kustomization {name} Ready=False {reason}",
        )

    def configmaps(self, namespace: str) -> dict[str, dict[str, str]]:
        return {
            c.metadata.name: dict(c.data or {})
            for c in self.core.list_namespaced_config_map(namespace).items
            if c.metadata.name != "kube-root-ca.crt"
        }


def condition(obj: dict[str, Any], type_: str = "Ready") -> dict[str, Any]:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


TENANT_ADMIN = ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},)


def grant(
    api: client.ApiClient,
    namespace: str,
    sa_namespace: str,
    rules: tuple[dict[str, Any], ...] = TENANT_ADMIN,
    role: str = "tenant-admin",
    binding: str = "flux-applier",
) -> None:
    """flux-applier of ``sa_namespace`` gets ``rules`` (default: anything) in ``namespace``, and nothing elsewhere."""
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": role}, "rules": list(rules)})
    bind(api, namespace, sa_namespace, role, binding)


def bind(api: client.ApiClient, namespace: str, sa_namespace: str, role: str, binding: str) -> None:
    """Bind ``role`` of ``namespace`` to flux-applier of ``sa_namespace`` (again, after a revocation)."""
    client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "flux-applier", "namespace": sa_namespace}],
        },
    )


def make_tenant(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    shard: str = "tenants",
) -> Tenant:
    config, target, other = namespace_factory(), namespace_factory(), namespace_factory()
    client.CoreV1Api(admin_api).create_namespaced_service_account(config, {"metadata": {"name": "flux-applier"}})
    grant(admin_api, config, config)
    grant(admin_api, target, config)
    name = f"tenant-{uuid.uuid4().hex[:8]}"
    git_server.create_repo(name)
    return Tenant(
        admin_api, config, target, other, shard, repo=GitRepo(tmp_path / "work"), server=git_server, repo_name=name
    )
