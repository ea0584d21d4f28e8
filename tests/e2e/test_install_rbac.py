"""The controllers as shipped, with the shipped RBAC and nothing more, on a real API server.

manifests/controllers' ServiceAccount, roles and bindings are applied for real; the controllers the
Deployment runs (its ``--controllers`` and ``--leader-elect``) then run in this process, authenticated
with a real token of that ServiceAccount. Not an admin impersonating it: the kustomize controller's own
``Impersonate-User`` requests must then pass the account's ``impersonate`` rule, as in a pod. A tenant
(TENANCY.md: flux-applier and its RoleBinding) is driven to Ready through every API call the
controllers make: informers, finalizers, status, events, the Lease, Secrets and ConfigMaps, the
dependency, impersonated apply, prune and finalization. A missing permission fails a test.
"""

from __future__ import annotations

import base64
import copy
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fluxwarden.controllers.app import CONTROLLERS, Reconcilers
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.source.api import GIT_REPOSITORY, HELM_CHART, HELM_REPOSITORY
from tests.support.control_plane import ControlPlane
from tests.support.git_server import GitHttpServer
from tests.support.helm_repo import HelmRepoServer
from tests.support.kube import Kubectl
from tests.support.manifests import apply, built, by_kind, container_args, flag, named, rbac_of
from tests.support.namespaces import ensure_namespace
from tests.support.tenants import SHARD, Tenant, condition, configmap, make_tenant
from tests.support.tokens import service_account_token, token_client, token_kubeconfig
from tests.support.wait import until

NAMESPACE = "flux-system"
ACCOUNT = "fluxwarden-controllers"
SHARD_VALUE = "install-rbac"
GIT_USER, GIT_PASSWORD = "tenant", f"pw-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def install(kubectl: Kubectl) -> list[dict[str, Any]]:
    return built(kubectl, "manifests/controllers")


@pytest.fixture(scope="module")
def shipped_args(install: list[dict[str, Any]]) -> list[str]:
    (container,) = named(install, "Deployment", "fluxwarden-controllers")["spec"]["template"]["spec"]["containers"]
    return container_args(container, {"POD_NAMESPACE": NAMESPACE})


def _allowed(api: client.ApiClient, verb: str, resource: str, group: str) -> bool:
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, group=group)
        )
    )
    return bool(client.AuthorizationV1Api(api).create_self_subject_access_review(review).status.allowed)


def _account_client(
    admin_api: client.ApiClient, control_plane: ControlPlane, namespace: str, account: str, directory: Path
) -> client.ApiClient:
    """A client with the account's own token, once the authorizer's cache has its bindings."""
    token = service_account_token(admin_api, namespace, account)
    api = token_client(token_kubeconfig(control_plane.kubeconfig, token, directory / "kubeconfig"))
    until(lambda: _allowed(api, "list", "kustomizations", KUSTOMIZATION.group), bool, what=f"RBAC of {account}")
    return api


@pytest.fixture(scope="module")
def controllers(
    kubectl: Kubectl,
    admin_api: client.ApiClient,
    control_plane: ControlPlane,
    install: list[dict[str, Any]],
    shipped_args: list[str],
    start_reconcilers: Callable[..., Reconcilers],
    tmp_path_factory: pytest.TempPathFactory,
) -> Reconcilers:
    names = tuple((flag(shipped_args, "controllers") or "").split(","))
    assert set(names) == set(CONTROLLERS), "the Deployment runs every controller fluxwarden builds"
    ensure_namespace(admin_api, NAMESPACE)
    apply(kubectl, rbac_of(install, ACCOUNT))
    api = _account_client(admin_api, control_plane, NAMESPACE, ACCOUNT, tmp_path_factory.mktemp("sa"))
    return start_reconcilers(
        names,
        label_selector=f"{SHARD}={SHARD_VALUE}",
        api=api,
        leader_election=flag(shipped_args, "leader-elect") is not None,
        lease_namespace=NAMESPACE,
    )


@pytest.fixture(scope="module")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path_factory.mktemp("git"), GIT_USER, GIT_PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def helm_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HelmRepoServer]:
    with HelmRepoServer(tmp_path_factory.mktemp("charts"), GIT_USER, GIT_PASSWORD) as server:
        server.add_chart("app", "1.0.0")
        yield server


def _secret(api: client.ApiClient, namespace: str, name: str, data: dict[str, str]) -> None:
    body = {"metadata": {"name": name}, "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    client.CoreV1Api(api).create_namespaced_secret(namespace, body)


def _create(tenant: Tenant, resource: Any, name: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"name": name, "namespace": tenant.config, "labels": tenant.labels()},
        "spec": spec,
    }
    tenant.custom.create_namespaced_custom_object(
        resource.group, resource.version, tenant.config, resource.plural, body
    )


def _ready(tenant: Tenant, resource: Any, name: str) -> dict[str, Any]:
    return until(
        lambda: tenant.get(name, resource),
        lambda o: condition(o).get("status") == "True",
        timeout=60,
        what=f"{resource.kind} {name} Ready",
    )


def _events(api: client.ApiClient, namespace: str, component: str, kind: str) -> list[client.CoreV1Event]:
    return [
        e
        for e in client.CoreV1Api(api).list_namespaced_event(namespace).items
        if e.source.component == component and e.involved_object.kind == kind
    ]


def test_the_shipped_rbac_is_enough_to_reconcile_a_tenant(
    controllers: Reconcilers,
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    helm_repo: HelmRepoServer,
    tmp_path: Path,
) -> None:
    tenant = make_tenant(admin_api, namespace_factory, git_server, tmp_path, shard=SHARD_VALUE)
    revision = tenant.push(
        {"infra/settings.yaml": configmap("settings", "${color}"), "apps/app.yaml": configmap("app", "${greeting}")}
    )
    _secret(admin_api, tenant.config, "git-auth", {"username": GIT_USER, "password": GIT_PASSWORD})
    client.CoreV1Api(admin_api).create_namespaced_config_map(
        tenant.config, {"metadata": {"name": "vars"}, "data": {"color": "blue"}}
    )
    _secret(admin_api, tenant.config, "secret-vars", {"greeting": "hello"})
    url = git_server.repo_url(tenant.repo_name)
    _create(tenant, GIT_REPOSITORY, "repo", {"url": url, "interval": "1m", "ref": {"branch": "main"},
                                             "secretRef": {"name": "git-auth"}})  # fmt: skip
    tenant.kustomization(
        "infra",
        path="./infra",
        targetNamespace=tenant.target,
        postBuild={"substituteFrom": [{"kind": "ConfigMap", "name": "vars"}]},
    )
    tenant.kustomization(
        "apps",
        path="./apps",
        targetNamespace=tenant.target,
        dependsOn=[{"name": "infra"}],
        postBuild={"substituteFrom": [{"kind": "Secret", "name": "secret-vars"}]},
    )
    _create(tenant, HELM_REPOSITORY, "charts", {"url": helm_repo.url, "interval": "1m",
                                                "secretRef": {"name": "git-auth"}})  # fmt: skip
    _create(tenant, HELM_CHART, "app", {"chart": "app", "version": "1.x", "interval": "1m",
                                        "sourceRef": {"kind": "HelmRepository", "name": "charts"}})  # fmt: skip
    # Sources fluxwarden does not reconcile are still read (the rule for ocirepositories and buckets).
    for kind in ("OCIRepository", "Bucket"):
        tenant.kustomization(kind.lower(), path="./", sourceRef={"kind": kind, "name": "absent"})

    tenant.ready("infra", revision)
    apps = tenant.ready("apps", revision)
    assert tenant.configmaps(tenant.target) == {"settings": {"value": "blue"}, "app": {"value": "hello"}}
    assert _ready(tenant, HELM_CHART, "app")["status"]["artifact"]["revision"] == "1.0.0"
    assert controllers.manager.synced(), "every informer listed with the account's rights"
    for kind in ("OCIRepository", "Bucket"):
        message = condition(tenant.failed(kind.lower(), "ArtifactFailed"))["message"]
        assert message == f"Source {kind} '{tenant.config}/absent' not found", message
    assert apps["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]

    applied = _events(admin_api, tenant.config, "kustomize-controller", "Kustomization")
    assert any(f"ConfigMap/{tenant.target}/app created" in (e.message or "") for e in applied)
    assert _events(admin_api, tenant.config, "source-controller", "GitRepository")
    lease = client.CoordinationV1Api(admin_api).read_namespaced_lease("fluxwarden-controllers", NAMESPACE)
    assert controllers.manager.options.leader_election and lease.spec.holder_identity

    tenant.custom.delete_namespaced_custom_object(
        KUSTOMIZATION.group, KUSTOMIZATION.version, tenant.config, KUSTOMIZATION.plural, "apps"
    )
    until(lambda: tenant.configmaps(tenant.target), lambda cms: "app" not in cms, what="app pruned on deletion")

    def gone() -> bool:
        try:
            tenant.get("apps")
        except ApiException as error:
            return bool(error.status == 404)
        return False

    until(gone, bool, what="Kustomization apps finalized (its finalizer removed)")


def test_without_the_impersonate_rule_the_tenant_is_refused(
    kubectl: Kubectl,
    admin_api: client.ApiClient,
    control_plane: ControlPlane,
    install: list[dict[str, Any]],
    start_reconcilers: Callable[..., Reconcilers],
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
) -> None:
    """The test above can fail: the same RBAC minus one rule stops the apply with a forbidden error."""
    home, account = namespace_factory(), "controllers-without-impersonate"
    objects = copy.deepcopy(rbac_of(install, ACCOUNT))
    (role,) = by_kind(objects, "ClusterRole")
    role["rules"] = [r for r in role["rules"] if "impersonate" not in r["verbs"]]
    assert len(role["rules"]) == len(named(install, "ClusterRole", ACCOUNT)["rules"]) - 1
    objects = [o for o in objects if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")]
    for obj in objects:  # the same rights under names of this test's own
        obj["metadata"]["name"] = account
        if obj["metadata"].get("namespace"):
            obj["metadata"]["namespace"] = home
        for subject in obj.get("subjects", []):
            subject.update(name=account, namespace=home)
        if "roleRef" in obj:
            obj["roleRef"]["name"] = account
    apply(kubectl, objects)
    api = _account_client(admin_api, control_plane, home, account, tmp_path)
    start_reconcilers(("source", "kustomize"), label_selector=f"{SHARD}=no-impersonate", api=api)

    tenant = make_tenant(admin_api, namespace_factory, git_server, tmp_path, shard="no-impersonate")
    tenant.push({"apps/app.yaml": configmap("app", "1")})
    _secret(admin_api, tenant.config, "git-auth", {"username": GIT_USER, "password": GIT_PASSWORD})
    _create(tenant, GIT_REPOSITORY, "repo", {"url": git_server.repo_url(tenant.repo_name), "interval": "1m",
                                             "ref": {"branch": "main"}, "secretRef": {"name": "git-auth"}})  # fmt: skip
    tenant.kustomization("apps", path="./apps", targetNamespace=tenant.target)
    failed = tenant.failed("apps", "ReconciliationFailed")
    message = condition(failed)["message"]
    assert "forbidden" in message and "impersonate" in message, message
    assert tenant.configmaps(tenant.target) == {}
