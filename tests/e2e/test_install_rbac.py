"""The controllers as shipped, with the shipped RBAC and nothing more, on a real API server.

manifests/controllers' ServiceAccount, roles and bindings are applied for real; the controllers the
Deployment runs (its ``--controllers`` and ``--leader-elect``) then run in this process, authenticated
with a real token of that ServiceAccount. Not an admin impersonating it: the kustomize controller's and
helm's own ``Impersonate-User`` requests must then pass the account's ``impersonate`` rule, as in a pod.
A tenant (TENANCY.md: flux-applier and its RoleBinding) is driven to Ready through every API call the
controllers make: informers, finalizers, status, events, the Lease, Secrets and ConfigMaps, the
dependency, impersonated apply, prune and finalization. A missing permission fails a test. The real
helm CLI runs with the account's token as the controller runs it, and the account is shown unable to
do what it must not (impersonate a group, write a tenant's objects, write any Secret).

manifests/fluxconfig's account, the one privileged part, is checked the same way at the end: with its
own token it makes every object a FluxConfig needs (flux-applier bound to cluster-admin included), and
it can neither impersonate, nor escalate, nor bind any role but cluster-admin.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fluxwarden.controllers.app import CONTROLLERS, Reconcilers
from fluxwarden.controllers.fluxconfig.api import FluxConfigOptions
from fluxwarden.controllers.helm.api import HELM_RELEASE, WATCH_LABEL
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.notification.api import INVALID_CONFIG, MODE_ANNOTATION, ON_CHANGE, NotificationOptions
from fluxwarden.controllers.notification.onchange import STATE_KEY, config_map_name
from fluxwarden.controllers.runtime.kube import Kube, NotFound, Resource
from fluxwarden.controllers.source.api import GIT_REPOSITORY, HELM_CHART, HELM_REPOSITORY
from fluxwarden.tenancy import Settings
from tests.support.control_plane import ControlPlane
from tests.support.git_server import GitHttpServer, GitRepo
from tests.support.helm_repo import HelmRepoServer
from tests.support.kube import Kubectl, KubectlRunner, kubectl_binary
from tests.support.manifests import apply, built, by_kind, container_args, flag, named, rbac_of
from tests.support.namespaces import ensure_namespace
from tests.support.notification import Notifications, event_url, flux_event, post
from tests.support.receivers import Receivers
from tests.support.recorder import Recorder
from tests.support.tenants import SHARD, Tenant, condition, configmap, grant, make_tenant
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


def _allowed(
    api: client.ApiClient, verb: str, resource: str, group: str, name: str = "", namespace: str | None = None
) -> bool:
    """The API server's own answer (SelfSubjectAccessReview) for the account behind ``api``."""
    resource, _, subresource = resource.partition("/")
    attributes = client.V1ResourceAttributes(verb=verb, resource=resource, subresource=subresource or None,
                                             group=group, name=name or None, namespace=namespace)  # fmt: skip
    review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes))
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
def account_kubeconfig(
    kubectl: Kubectl,
    admin_api: client.ApiClient,
    control_plane: ControlPlane,
    install: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The shipped RBAC applied; a kubeconfig with the account's own token, once its bindings are in effect."""
    ensure_namespace(admin_api, NAMESPACE)
    apply(kubectl, rbac_of(install, ACCOUNT))
    token = service_account_token(admin_api, NAMESPACE, ACCOUNT)
    path = token_kubeconfig(control_plane.kubeconfig, token, tmp_path_factory.mktemp("sa") / "kubeconfig")
    with token_client(path) as api:
        until(lambda: _allowed(api, "list", "kustomizations", KUSTOMIZATION.group), bool, what=f"RBAC of {ACCOUNT}")
    return path


@pytest.fixture(scope="module")
def account_api(account_kubeconfig: Path) -> Iterator[client.ApiClient]:
    with token_client(account_kubeconfig) as api:
        yield api


@pytest.fixture(scope="module")
def controllers(
    account_api: client.ApiClient, shipped_args: list[str], start_reconcilers: Callable[..., Reconcilers]
) -> Reconcilers:
    names = tuple((flag(shipped_args, "controllers") or "").split(","))
    assert set(names) == set(CONTROLLERS) - {"fluxconfig"}, "every controller but fluxconfig (manifests/fluxconfig)"
    api = account_api
    return start_reconcilers(
        names,
        label_selector=f"{SHARD}={SHARD_VALUE}",
        api=api,
        leader_election=flag(shipped_args, "leader-elect") is not None,
        lease_namespace=NAMESPACE,
        # The shipped servers, on loopback ports the kernel picks (the Deployment's are 9091 and 9292).
        notification=NotificationOptions(
            event_host="127.0.0.1", event_port=0, receiver_host="127.0.0.1", receiver_port=0
        ),
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
    # Every informer listed with the account's rights (the last ones may still be in their first list).
    until(controllers.manager.synced, bool, timeout=30, what="every informer listed with the account's rights")
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


OCI_REPOSITORY = Resource("source.toolkit.fluxcd.io", "v1", "ocirepositories", "OCIRepository")
IMAGE_REPOSITORY = Resource("image.toolkit.fluxcd.io", "v1", "imagerepositories", "ImageRepository")


def _object(api: client.ApiClient, resource: Resource, namespace: str, name: str, spec: dict[str, Any],
            labels: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """An object no controller of this module reconciles (no shard label): only the notification side touches it."""
    body = {"apiVersion": resource.api_version, "kind": resource.kind,
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}}, "spec": spec}  # fmt: skip
    created: dict[str, Any] = client.CustomObjectsApi(api).create_namespaced_custom_object(
        resource.group, resource.version, namespace, resource.plural, body
    )
    return created


def test_the_shipped_rbac_is_enough_to_notify(
    controllers: Reconcilers, admin_api: client.ApiClient, namespace_factory: Callable[[], str]
) -> None:
    """The event server's calls with the account's rights: Alerts, Providers and their Secrets (informers and
    reads), the labels of the involved object (matchLabels), the on-change ConfigMap (server-side apply of a
    new object), and Warning events on an Alert."""
    ns = namespace_factory()
    with Recorder() as recorder:
        notes = Notifications(admin_api, ns, controllers)
        notes.secret("hook-address", address=recorder.url + "/hook")
        notes.provider("hook", secret="hook-address")
        app = _object(admin_api, KUSTOMIZATION, ns, "app", {"interval": "1h", "path": "./", "prune": False,
                      "sourceRef": {"kind": "GitRepository", "name": "absent"}}, labels={"team": "a"})  # fmt: skip
        sources = [{"kind": "Kustomization", "name": "*", "matchLabels": {"team": "a"}}]
        alert = notes.alert("changes", "hook", sources, annotations={MODE_ANNOTATION: ON_CHANGE})
        notes.alert("broken", "hook", inclusionList=["(unclosed"])
        notes.settled()

        event = flux_event(ns, "app", severity="error", message="apply failed", uid=app["metadata"]["uid"])
        event["involvedObject"]["resourceVersion"] = app["metadata"]["resourceVersion"]
        assert post(event_url(controllers), event).status_code == 202
        (sent,) = recorder.wait_for(1)
        assert sent.json()["involvedObject"]["name"] == "app" and sent.json()["message"] == "apply failed"

    state = client.CoreV1Api(admin_api).read_namespaced_config_map(config_map_name("changes"), ns)
    assert [o.uid for o in state.metadata.owner_references] == [alert["metadata"]["uid"]]
    assert f"Kustomization/{ns}/app" in state.data[STATE_KEY], "written by the account before the send"
    warning = notes.wait_event("broken", INVALID_CONFIG)
    assert warning.source.component == "notification-controller"


def test_the_shipped_rbac_is_enough_to_receive(
    controllers: Reconcilers, admin_api: client.ApiClient, namespace_factory: Callable[[], str]
) -> None:
    """The Receiver reconciler's and server's calls with the account's rights: the Receiver's finalizer and
    status, its Secret, and every target annotated: by name, and by matchLabels (a list), kinds fluxwarden
    does not reconcile included. Objects of the Receiver's namespace only, and only those it names."""
    ns = namespace_factory()
    receivers = Receivers.of(controllers, admin_api, ns, {SHARD: SHARD_VALUE})
    receivers.secret("token", {"token": uuid.uuid4().hex.encode()})
    _object(admin_api, GIT_REPOSITORY, ns, "app", {"url": "https://example.com/app.git", "interval": "1h"})
    for name, labels in (("web", {"webhook": "yes"}), ("api", {"webhook": "yes"}), ("other", {})):
        _object(admin_api, OCI_REPOSITORY, ns, name, {"url": "oci://example.com/app", "interval": "1h"}, labels)
    _object(admin_api, IMAGE_REPOSITORY, ns, "img", {"image": "example.com/app", "interval": "1h"})
    receivers.create("push", "generic", [
        {"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository", "name": "app"},
        {"apiVersion": OCI_REPOSITORY.api_version, "kind": "OCIRepository", "name": "*",
         "matchLabels": {"webhook": "yes"}},
        {"apiVersion": IMAGE_REPOSITORY.api_version, "kind": "ImageRepository", "name": "img"},
    ])  # fmt: skip
    found = receivers.ready("push")
    assert found["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]

    assert receivers.post(found["status"]["webhookPath"]).status_code == 200
    for resource, name in ((GIT_REPOSITORY, "app"), (OCI_REPOSITORY, "web"), (OCI_REPOSITORY, "api"),
                           (IMAGE_REPOSITORY, "img")):  # fmt: skip
        assert receivers.requested_at(resource, name), f"{resource.kind} {name} annotated before the 200"
    assert receivers.requested_at(OCI_REPOSITORY, "other") is None, "not selected by matchLabels"


CHARTS = {"kind": "HelmRepository", "name": "charts"}


def _values(tenant: Tenant) -> dict[str, Any]:
    """The values the chart rendered into its ConfigMap in the target namespace (the release's only object)."""
    (rendered,) = [
        c for c in tenant.core.list_namespaced_config_map(tenant.target).items if c.data and "values" in c.data
    ]
    return dict(json.loads(rendered.data["values"]))


def test_the_shipped_rbac_is_enough_to_release_a_chart(
    controllers: Reconcilers,
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    helm_repo: HelmRepoServer,
    tmp_path: Path,
) -> None:
    """The helm controller's calls with the account's rights: the HelmChart template it creates and deletes,
    valuesFrom (read, and watched by label), helm's release records, and helm itself as flux-applier."""
    tenant = make_tenant(admin_api, namespace_factory, git_server, tmp_path, shard=SHARD_VALUE)
    _secret(admin_api, tenant.config, "repo-auth", {"username": GIT_USER, "password": GIT_PASSWORD})
    _create(tenant, HELM_REPOSITORY, "charts", {"url": helm_repo.url, "interval": "1m",
                                                "secretRef": {"name": "repo-auth"}})  # fmt: skip
    tenant.core.create_namespaced_config_map(tenant.config, {
        "metadata": {"name": "helm-values", "labels": {WATCH_LABEL: "Enabled"}},
        "data": {"values.yaml": "size: 1\n"},
    })  # fmt: skip
    _secret(admin_api, tenant.config, "helm-secret-values", {"values.yaml": "token: s3cr3t\n"})
    _create(tenant, HELM_RELEASE, "web", {
        "interval": "1h",  # no periodic reconcile within the test: only the watch can start the upgrade
        "targetNamespace": tenant.target,
        # The shard's source controller reconciles the HelmChart only with the shard label (Flux's sharding guide).
        "chart": {"metadata": {"labels": tenant.labels()},
                  "spec": {"chart": "app", "version": "1.x", "sourceRef": CHARTS}},
        "values": {"color": "blue"},
        "valuesFrom": [{"kind": "ConfigMap", "name": "helm-values"}, {"kind": "Secret", "name": "helm-secret-values"}],
    })  # fmt: skip

    release = _ready(tenant, HELM_RELEASE, "web")
    # Every informer listed with the account's rights (the last ones may still be in their first list).
    until(controllers.manager.synced, bool, timeout=30, what="every informer listed with the account's rights")
    assert condition(release)["reason"] == "InstallSucceeded", condition(release)
    assert release["status"]["history"][0]["chartVersion"] == "1.0.0"
    assert release["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
    assert _values(tenant) == {"color": "blue", "size": 1, "token": "s3cr3t"}
    chart = f"{tenant.config}-web"
    assert tenant.get(chart, HELM_CHART)["status"]["artifact"]["revision"] == "1.0.0", "the template, made as itself"
    records = tenant.core.list_namespaced_secret(tenant.target, label_selector="owner=helm").items
    assert [r.metadata.labels["status"] for r in records] == ["deployed"], "stored in the target namespace"

    # The watch label: a change to the ConfigMap upgrades the release (the account lists and watches them).
    tenant.core.patch_namespaced_config_map("helm-values", tenant.config, {"data": {"values.yaml": "size: 2\n"}})
    until(lambda: tenant.get("web", HELM_RELEASE), lambda o: o["status"]["history"][0]["version"] == 2,
          timeout=60, what="the upgrade the watched ConfigMap triggered")  # fmt: skip
    assert _values(tenant)["size"] == 2

    tenant.custom.delete_namespaced_custom_object(
        HELM_RELEASE.group, HELM_RELEASE.version, tenant.config, HELM_RELEASE.plural, "web"
    )

    def gone(name: str, resource: Any) -> bool:
        try:
            tenant.get(name, resource)
        except ApiException as error:
            return bool(error.status == 404)
        return False

    until(lambda: gone("web", HELM_RELEASE), bool, timeout=60, what="HelmRelease web uninstalled and finalized")
    assert not tenant.core.list_namespaced_secret(tenant.target, label_selector="owner=helm").items
    # Deleted by the helm controller, then finalized by the source controller.
    until(lambda: gone(chart, HELM_CHART), bool, what="the HelmChart template deleted with its HelmRelease")


def test_adoption_moves_release_records_as_the_tenant(
    controllers: Reconcilers,
    admin_api: client.ApiClient,
    control_plane: ControlPlane,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    helm_repo: HelmRepoServer,
    tmp_path: Path,
) -> None:
    """A release upstream Flux stored in the HelmRelease's namespace is taken over: its records move into
    the target namespace, by flux-applier (the account itself may write no Secret), and nothing reinstalls."""
    tenant = make_tenant(admin_api, namespace_factory, git_server, tmp_path, shard=SHARD_VALUE)
    installed = _helm(control_plane.kubeconfig, tmp_path, "install", "web", str(helm_repo.root / "app-1.0.0.tgz"),
                      "-n", tenant.target, "--server-side=true")  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    # As Flux leaves it: the records in the HelmRelease's namespace, the objects in the target namespace.
    for record in tenant.core.list_namespaced_secret(tenant.target, label_selector="owner=helm,name=web").items:
        body = {"metadata": {"name": record.metadata.name, "labels": record.metadata.labels},
                "type": record.type, "data": record.data}  # fmt: skip
        tenant.core.create_namespaced_secret(tenant.config, body)
        tenant.core.delete_namespaced_secret(record.metadata.name, tenant.target)
    _secret(admin_api, tenant.config, "repo-auth", {"username": GIT_USER, "password": GIT_PASSWORD})
    _create(tenant, HELM_REPOSITORY, "charts", {"url": helm_repo.url, "interval": "1m",
                                                "secretRef": {"name": "repo-auth"}})  # fmt: skip
    _create(tenant, HELM_RELEASE, "web", {
        "interval": "1h", "targetNamespace": tenant.target, "releaseName": "web",
        "chart": {"metadata": {"labels": tenant.labels()}, "spec": {"chart": "app", "version": "1.x",
                                                                    "sourceRef": CHARTS}},
    })  # fmt: skip

    release = _ready(tenant, HELM_RELEASE, "web")
    assert release["status"]["history"][0]["version"] == 1, "taken over, not reinstalled"
    assert not tenant.core.list_namespaced_secret(tenant.config, label_selector="owner=helm").items
    (moved,) = tenant.core.list_namespaced_secret(tenant.target, label_selector="owner=helm,name=web").items
    assert moved.metadata.name == "sh.helm.release.v1.web.v1" and moved.metadata.labels["status"] == "deployed"


# What flux-applier needs for helm (README): helm's release records and the chart's kinds in the target
# namespace; in the HelmRelease's own namespace, only to list release records (the adoption check).
# Each verb but two was shown needed by removing it: records "patch" is the pending-* unlock, objects
# "update" helm's force replace (upgrade.force), neither of which this test runs.
RELEASE_RECORDS = {"apiGroups": [""], "resources": ["secrets"],
                   "verbs": ["get", "list", "create", "update", "patch", "delete"]}  # fmt: skip
# helm's --wait=watcher (kstatus) lists and watches the kinds it waits for: without watch it fails
# whenever an object is not current at its first look, so the outcome would depend on timing.
CHART_OBJECTS = {"apiGroups": [""], "resources": ["configmaps"],
                 "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}  # fmt: skip
ADOPTION_CHECK = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}


def test_flux_applier_needs_only_release_records_and_the_charts_kinds(
    controllers: Reconcilers,
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    helm_repo: HelmRepoServer,
    tmp_path: Path,
) -> None:
    config, target = namespace_factory(), namespace_factory()
    core = client.CoreV1Api(admin_api)
    core.create_namespaced_service_account(config, {"metadata": {"name": "flux-applier"}})
    grant(admin_api, target, config, (RELEASE_RECORDS, CHART_OBJECTS), role="helm-release")
    grant(admin_api, config, config, (ADOPTION_CHECK,), role="adoption-check")
    # A Tenant for its helpers only: no git repository is used here.
    tenant = Tenant(admin_api, config, target, namespace_factory(), SHARD_VALUE,
                    repo=GitRepo(tmp_path / "unused"), server=git_server, repo_name="")  # fmt: skip
    _secret(admin_api, config, "repo-auth", {"username": GIT_USER, "password": GIT_PASSWORD})
    _create(tenant, HELM_REPOSITORY, "charts", {"url": helm_repo.url, "interval": "1m",
                                                "secretRef": {"name": "repo-auth"}})  # fmt: skip
    chart = {"metadata": {"labels": tenant.labels()}, "spec": {"chart": "app", "version": "1.x", "sourceRef": CHARTS}}
    _create(tenant, HELM_RELEASE, "web", {"interval": "1h", "targetNamespace": target, "chart": chart,
                                          "values": {"size": 1}})  # fmt: skip
    release = _ready(tenant, HELM_RELEASE, "web")
    assert condition(release)["reason"] == "InstallSucceeded", condition(release)
    assert _values(tenant) == {"size": 1}

    tenant.patch("web", {"spec": {"values": {"size": 2}}}, HELM_RELEASE)
    until(lambda: tenant.get("web", HELM_RELEASE), lambda o: o["status"]["history"][0]["version"] == 2,
          timeout=60, what="the upgrade")  # fmt: skip
    assert _values(tenant) == {"size": 2}
    tenant.custom.delete_namespaced_custom_object(HELM_RELEASE.group, HELM_RELEASE.version, config,
                                                  HELM_RELEASE.plural, "web")  # fmt: skip
    until(lambda: core.list_namespaced_secret(target, label_selector="owner=helm").items, lambda found: not found,
          timeout=60, what="the release uninstalled")  # fmt: skip
    assert not [c for c in core.list_namespaced_config_map(target).items if c.data and "values" in c.data]


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


CHART = {
    "Chart.yaml": "apiVersion: v2\nname: app\nversion: 1.0.0\n",
    "templates/settings.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\ndata:\n  color: blue\n"
    ),
}


def _chart(directory: Path) -> Path:
    for name, text in CHART.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


def _helm(kubeconfig: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real helm CLI with only the account's token, as the helm controller runs it (HOME its own)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    command = ["helm", "--kubeconfig", str(kubeconfig), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


def _tenant_namespaces(admin_api: client.ApiClient, namespace_factory: Callable[[], str]) -> tuple[str, str, str]:
    """A configuration namespace with flux-applier, its target namespace, and a namespace it has no rights in."""
    config, target, other = namespace_factory(), namespace_factory(), namespace_factory()
    client.CoreV1Api(admin_api).create_namespaced_service_account(config, {"metadata": {"name": "flux-applier"}})
    grant(admin_api, config, config)
    grant(admin_api, target, config)
    return config, target, other


def test_helm_runs_as_the_tenant_with_only_the_shipped_impersonate_rule(
    account_kubeconfig: Path, admin_api: client.ApiClient, namespace_factory: Callable[[], str], tmp_path: Path
) -> None:
    """``--kube-as-user`` alone: the API server judges helm's every call by flux-applier's RBAC."""
    config, target, other = _tenant_namespaces(admin_api, namespace_factory)
    chart, tenant = _chart(tmp_path / "chart"), ["--kube-as-user", f"system:serviceaccount:{config}:flux-applier"]
    until(
        lambda: _helm(account_kubeconfig, tmp_path, "list", "-n", target, *tenant),
        lambda r: r.returncode == 0,
        what="flux-applier's RoleBinding in effect",
    )
    installed = _helm(account_kubeconfig, tmp_path, "upgrade", "--install", "app", str(chart), "-n", target,
                      "--server-side=true", *tenant)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    core = client.CoreV1Api(admin_api)
    assert core.read_namespaced_config_map("app-settings", target).data == {"color": "blue"}
    (record,) = core.list_namespaced_secret(target, label_selector="owner=helm,name=app").items
    assert record.type == "helm.sh/release.v1" and record.metadata.labels["status"] == "deployed"
    history = _helm(account_kubeconfig, tmp_path, "history", "app", "-n", target, "-o", "json", *tenant)
    assert history.returncode == 0 and '"revision":1' in history.stdout, history.stderr

    # The same call without impersonation is the account's own: it may write no tenant object.
    bare = _helm(account_kubeconfig, tmp_path, "upgrade", "--install", "own", str(chart), "-n", target)
    assert bare.returncode != 0 and "forbidden" in bare.stderr, bare.stderr
    # As the tenant, where the tenant has no rights: refused, with the tenant named.
    elsewhere = _helm(account_kubeconfig, tmp_path, "upgrade", "--install", "app", str(chart), "-n", other, *tenant)
    assert f"system:serviceaccount:{config}:flux-applier" in elsewhere.stderr and "forbidden" in elsewhere.stderr
    assert not core.list_namespaced_secret(other, label_selector="owner=helm").items

    uninstalled = _helm(account_kubeconfig, tmp_path, "uninstall", "app", "-n", target, *tenant)
    assert uninstalled.returncode == 0, uninstalled.stderr
    assert not core.list_namespaced_config_map(target, field_selector="metadata.name=app-settings").items


def test_the_api_server_gives_the_impersonated_account_its_groups(
    account_kubeconfig: Path, admin_api: client.ApiClient, namespace_factory: Callable[[], str], tmp_path: Path
) -> None:
    """Why no ``impersonate groups``: without Impersonate-Group the account's groups come with it, and with
    one the shipped RBAC refuses (granting it would allow any group, system:masters included)."""
    config, _, _ = _tenant_namespaces(admin_api, namespace_factory)
    shared = namespace_factory()
    # Rights given to the group system:serviceaccounts:<config> only, never to flux-applier by name.
    rbac = client.RbacAuthorizationV1Api(admin_api)
    rbac.create_namespaced_role(shared, {"metadata": {"name": "read-releases"},
                                         "rules": [{"apiGroups": [""], "resources": ["secrets"],
                                                    "verbs": ["get", "list"]}]})  # fmt: skip
    group = {"kind": "Group", "name": f"system:serviceaccounts:{config}", "apiGroup": "rbac.authorization.k8s.io"}
    rbac.create_namespaced_role_binding(shared, {
        "metadata": {"name": "config-accounts"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-releases"},
        "subjects": [group],
    })  # fmt: skip
    tenant = ["--kube-as-user", f"system:serviceaccount:{config}:flux-applier"]
    listed = until(
        lambda: _helm(account_kubeconfig, tmp_path, "list", "-n", shared, *tenant),
        lambda r: r.returncode == 0,
        what="the group's RoleBinding in effect",
    )
    assert listed.returncode == 0, "flux-applier reached the namespace through its group, which it was given"

    for name in ("system:serviceaccounts", f"system:serviceaccounts:{config}", "system:masters"):
        refused = _helm(account_kubeconfig, tmp_path, "list", "-n", shared, *tenant, "--kube-as-group", name)
        assert refused.returncode != 0 and "cluster unreachable" in refused.stderr, refused.stderr
        # helm hides the API server's reason; the same headers on a resource request show it.
        with token_client(account_kubeconfig) as api:
            api.set_default_header("Impersonate-User", f"system:serviceaccount:{config}:flux-applier")
            api.set_default_header("Impersonate-Group", name)
            with pytest.raises(ApiException) as why:
                client.CoreV1Api(api).list_namespaced_secret(shared)
        message = json.loads(why.value.body)["message"]
        assert why.value.status == 403 and 'cannot impersonate resource "groups"' in message, message


@pytest.mark.parametrize(
    ("verb", "resource", "group", "name"),
    [
        ("impersonate", "users", "", "admin"),
        ("impersonate", "groups", "", "system:masters"),
        ("impersonate", "userextras", "", ""),
        ("delete", "configmaps", "", ""),
        ("update", "configmaps", "", ""),
        ("create", "secrets", "", ""),
        ("update", "secrets", "", ""),
        ("patch", "secrets", "", ""),
        ("delete", "secrets", "", ""),
        ("create", "deployments", "apps", ""),
        ("create", "helmreleases", "helm.toolkit.fluxcd.io", ""),
        ("delete", "helmreleases", "helm.toolkit.fluxcd.io", ""),
        ("update", "helmreleases/finalizers", "helm.toolkit.fluxcd.io", ""),
        ("create", "kustomizations", "kustomize.toolkit.fluxcd.io", ""),
        ("delete", "gitrepositories", "source.toolkit.fluxcd.io", ""),
        ("list", "serviceaccounts", "", ""),
        ("create", "serviceaccounts/token", "", ""),
        ("bind", "clusterroles", "rbac.authorization.k8s.io", ""),
        ("escalate", "clusterroles", "rbac.authorization.k8s.io", ""),
        ("create", "namespaces", "", ""),
        # notification: Alerts and Providers are read only; Receivers are the tenants' to write.
        ("create", "alerts", "notification.toolkit.fluxcd.io", ""),
        ("patch", "alerts", "notification.toolkit.fluxcd.io", ""),
        ("update", "alerts", "notification.toolkit.fluxcd.io", ""),
        ("update", "alerts/finalizers", "notification.toolkit.fluxcd.io", ""),
        ("patch", "providers", "notification.toolkit.fluxcd.io", ""),
        ("delete", "providers", "notification.toolkit.fluxcd.io", ""),
        ("create", "receivers", "notification.toolkit.fluxcd.io", ""),
        ("delete", "receivers", "notification.toolkit.fluxcd.io", ""),
        ("update", "receivers", "notification.toolkit.fluxcd.io", ""),
        # A Receiver's targets are annotated, never created, deleted or given a status.
        ("create", "ocirepositories", "source.toolkit.fluxcd.io", ""),
        ("delete", "buckets", "source.toolkit.fluxcd.io", ""),
        ("patch", "imagerepositories/status", "image.toolkit.fluxcd.io", ""),
        ("delete", "imagepolicies", "image.toolkit.fluxcd.io", ""),
        ("update", "imageupdateautomations", "image.toolkit.fluxcd.io", ""),
        ("watch", "imagerepositories", "image.toolkit.fluxcd.io", ""),
        ("delete", "artifactgenerators", "source.extensions.fluxcd.io", ""),
        ("patch", "externalartifacts/status", "source.toolkit.fluxcd.io", ""),
        ("patch", "events", "", ""),
        ("delete", "events", "", ""),
    ],
)
def test_the_account_cannot(account_api: client.ApiClient, verb: str, resource: str, group: str, name: str) -> None:
    """No more than the controllers' calls: what the account must not do, asked of the real authorizer."""
    resource, _, subresource = resource.partition("/")
    attributes = client.V1ResourceAttributes(verb=verb, resource=resource, subresource=subresource or None,
                                             group=group, name=name or None)  # fmt: skip
    review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes))
    assert not client.AuthorizationV1Api(account_api).create_self_subject_access_review(review).status.allowed


def _enum(crd: dict[str, Any], version: str, *path: str) -> list[str]:
    """The ``enum`` at ``path`` (property names, ``items`` for an array's element) of a CRD version's schema."""
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = served["schema"]["openAPIV3Schema"]
    for step in path:
        schema = schema["items"] if step == "items" else schema["properties"][step]
    return list(schema["enum"])


def test_the_account_reaches_every_kind_the_notification_crds_name(
    flux_crds: list[str], kubectl: Kubectl, account_api: client.ApiClient
) -> None:
    """Derived from Flux's own CRDs, not a list of ours: every kind a Receiver may target is annotated (patch)
    by name (get) or by matchLabels (list); every kind an Alert's eventSources may name is read for its
    labels (get). In any namespace, since the tenants' objects live in theirs."""
    crds = {c["spec"]["names"]["kind"]: c for c in json.loads(kubectl("get", "crd", "-o", "json").stdout)["items"]}
    targets = _enum(crds["Receiver"], "v1", "spec", "resources", "items", "kind")
    sources = _enum(crds["Alert"], "v1beta3", "spec", "eventSources", "items", "kind")
    assert {"GitRepository", "OCIRepository", "HelmRelease", "ImageRepository"} <= set(targets) & set(sources)
    for kind in {*targets, *sources}:
        group, plural = crds[kind]["spec"]["group"], crds[kind]["spec"]["names"]["plural"]
        verbs = ("get", "list", "patch") if kind in targets else ("get",)
        for verb in verbs:
            assert _allowed(account_api, verb, plural, group, namespace="any-tenant"), (verb, kind)


# The FluxConfig controller's account (manifests/fluxconfig): its own token, its own rights.
FLUXCONFIG_ACCOUNT = "fluxwarden-fluxconfig"
FLUXCONFIG_MANAGER = "fluxconfig-controller"  # the controller's field manager (the contract)
FLUXCONFIG = Resource("clusterconfig.azure.com", "v1beta1", "fluxconfigs", "FluxConfig")


@pytest.fixture(scope="module")
def fluxconfig_install(kubectl: Kubectl) -> list[dict[str, Any]]:
    return built(kubectl, "manifests/fluxconfig")


@pytest.fixture(scope="module")
def fluxconfig_kubectl(
    kubectl: Kubectl,
    admin_api: client.ApiClient,
    control_plane: ControlPlane,
    fluxconfig_install: list[dict[str, Any]],
    test_binaries: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Kubectl:
    """kubectl authenticated with the fluxconfig account's own token, once its shipped RBAC is in effect."""
    ensure_namespace(admin_api, NAMESPACE)
    apply(kubectl, rbac_of(fluxconfig_install, FLUXCONFIG_ACCOUNT))
    token = service_account_token(admin_api, NAMESPACE, FLUXCONFIG_ACCOUNT)
    directory = tmp_path_factory.mktemp("fluxconfig-sa")
    path = token_kubeconfig(control_plane.kubeconfig, token, directory / "kubeconfig")
    with token_client(path) as api:
        until(lambda: _allowed(api, "list", "fluxconfigs", "clusterconfig.azure.com"), bool, what="its RBAC")
    return KubectlRunner(kubectl_binary(test_binaries), path, directory / "cache")


@pytest.fixture(scope="module")
def fluxconfig_api(fluxconfig_kubectl: KubectlRunner) -> Iterator[client.ApiClient]:
    with token_client(fluxconfig_kubectl.kubeconfig) as api:
        yield api


def _owned(kind: str, api_version: str, name: str, namespace: str | None, owner: dict[str, Any], **rest: Any) -> Any:
    meta: dict[str, Any] = {"name": name, "labels": {"clusterconfig.azure.com/is-managed": "true"}}
    if namespace:
        meta["namespace"] = namespace
        meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                    "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                    "controller": True, "blockOwnerDeletion": True}]  # fmt: skip
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **rest}


def test_the_fluxconfig_account_makes_everything_a_fluxconfig_needs(
    flux_crds: list[str],
    fluxconfig_crd: str,
    kubectl: Kubectl,
    fluxconfig_kubectl: Kubectl,
    fluxconfig_api: client.ApiClient,
    namespace: str,
) -> None:
    """Every call the contract gives the controller, made with the account's token as the controller makes
    it (server-side apply as fluxconfig-controller), and each one's effect read back as admin."""
    config = {"apiVersion": "clusterconfig.azure.com/v1beta1", "kind": "FluxConfig",
              "metadata": {"name": "cfg", "namespace": namespace},
              "spec": {"scope": "cluster", "namespace": namespace,
                       "gitRepository": {"url": "https://example.com/repo.git", "repositoryRef": {"branch": "main"}},
                       "configurationProtectedSettingsRef": {"name": "cfg-protected-parameters"}}}  # fmt: skip
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps(config))
    kubectl("create", "secret", "generic", "cfg-protected-parameters", "-n", namespace, "--from-literal=httpsKey=k")
    fc = fluxconfig_kubectl
    listed = json.loads(fc("get", "fluxconfigs", "-A", "-o", "json").stdout)["items"]
    owner = next(o for o in listed if o["metadata"]["namespace"] == namespace)
    # The finalizer and the status, through the controllers' own API adapter (a patch, no GET first).
    kube = Kube(fluxconfig_api)
    kube.patch(FLUXCONFIG, namespace, "cfg", {"metadata": {"finalizers": ["clusterconfig.azure.com/finalizer"]}})
    kube.patch_status(FLUXCONFIG, namespace, "cfg", {"complianceState": "Pending", "provisioningState": "Creating"})
    assert kube.get(FLUXCONFIG, namespace, "cfg")["status"]["provisioningState"] == "Creating"
    assert json.loads(fc("get", "secret", "cfg-protected-parameters", "-n", namespace, "-o", "json").stdout)["data"]
    fc("get", "helmreleases.helm.toolkit.fluxcd.io", "-A")

    rbac = "rbac.authorization.k8s.io/v1"
    cluster_admin = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}
    applier = [{"kind": "ServiceAccount", "name": "flux-applier", "namespace": namespace}]
    made = [
        _owned("ServiceAccount", "v1", "flux-applier", namespace, owner),
        _owned("Secret", "v1", "cfg-auth", namespace, owner, stringData={"username": "git", "password": "k"}),
        _owned("GitRepository", GIT_REPOSITORY.api_version, "cfg", namespace, owner,
               spec={"interval": "600s", "url": "https://example.com/repo.git", "ref": {"branch": "main"},
                     "secretRef": {"name": "cfg-auth"}}),
        _owned("Kustomization", KUSTOMIZATION.api_version, "cfg-apps", namespace, owner,
               spec={"interval": "600s", "path": "./apps", "prune": False,
                     "sourceRef": {"kind": "GitRepository", "name": "cfg"}, "serviceAccountName": "flux-applier"}),
        _owned("RoleBinding", rbac, "flux-applier", namespace, owner, roleRef=cluster_admin, subjects=applier),
        _owned("ClusterRoleBinding", rbac, f"flux-applier-{namespace}", None, owner, roleRef=cluster_admin,
               subjects=applier),
    ]  # fmt: skip
    for obj in made:  # one object an apply, as the controller applies them
        fc("apply", "--server-side", f"--field-manager={FLUXCONFIG_MANAGER}", "-f", "-", input=json.dumps(obj))
    stored = json.loads(kubectl("get", "clusterrolebinding", f"flux-applier-{namespace}", "-o", "json").stdout)
    assert stored["roleRef"]["name"] == "cluster-admin", "made by an account with bind on cluster-admin only"
    kustomization = json.loads(
        kubectl("get", "kustomization", "cfg-apps", "-n", namespace, "-o", "json", "--show-managed-fields").stdout
    )
    assert kustomization["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
    assert {m["manager"] for m in kustomization["metadata"]["managedFields"]} == {FLUXCONFIG_MANAGER}
    for obj in made[1:2]:  # a second apply is a patch of what is there
        obj["stringData"] = {"username": "git", "password": "k2"}
        fc("apply", "--server-side", f"--field-manager={FLUXCONFIG_MANAGER}", "-f", "-", input=json.dumps(obj))
    auth = client.CoreV1Api(fluxconfig_api).read_namespaced_secret("cfg-auth", namespace)
    assert base64.b64decode(auth.data["password"]) == b"k2"
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="cfg."),
        involved_object=client.V1ObjectReference(
            api_version=config["apiVersion"],
            kind="FluxConfig",
            name="cfg",
            namespace=namespace,
            uid=owner["metadata"]["uid"],
        ),
        reason="Progressing",
        message="made",
        type="Normal",
        source=client.V1EventSource(component="fluxconfig"),
    )
    client.CoreV1Api(fluxconfig_api).create_namespaced_event(namespace, event)
    for obj in reversed(made):
        fc("delete", "-f", "-", "--wait=false", input=json.dumps(obj))
    leftovers = kubectl("get", "clusterrolebinding", f"flux-applier-{namespace}", "--ignore-not-found", "-o", "name")
    assert leftovers.stdout == ""
    kube.patch(FLUXCONFIG, namespace, "cfg", {"metadata": {"finalizers": None}})


def test_the_fluxconfig_controller_reconciles_and_finalizes_with_the_shipped_rights(
    flux_crds: list[str],
    fluxconfig_crd: str,
    fluxconfig_install: list[dict[str, Any]],
    fluxconfig_api: client.ApiClient,
    start_reconcilers: Callable[..., Reconcilers],
    admin_api: client.ApiClient,
    kubectl: Kubectl,
    namespace: str,
) -> None:
    """The real controller, as the Deployment runs it, with the account's own token: it makes flux-applier
    and its ClusterRoleBinding to cluster-admin, the auth Secret, the source and both Kustomizations, holds
    its own lease, and on deletion removes all of it. A missing permission fails here."""
    (container,) = named(fluxconfig_install, "Deployment", "fluxwarden-fluxconfig")["spec"]["template"]["spec"][
        "containers"
    ]
    args = container_args(container, {})
    assert flag(args, "controllers") == "fluxconfig"
    shard = f"{SHARD}=install-rbac-fluxconfig"
    start_reconcilers(
        ("fluxconfig",),
        label_selector=shard,
        api=fluxconfig_api,
        leader_election=flag(args, "leader-elect") is not None,
        lease_namespace=NAMESPACE,
        lease_name=flag(args, "lease-name"),
        fluxconfig=FluxConfigOptions(
            settings=Settings(cluster_scope_namespaces=frozenset({namespace})),
            ssh_key_algorithm=flag(args, "ssh-key-algorithm") or "",  # type: ignore[arg-type]
        ),
    )
    kubectl("create", "secret", "generic", "cfg-protected-parameters", "-n", namespace, "--from-literal=httpsKey=k")
    config = {"apiVersion": "clusterconfig.azure.com/v1beta1", "kind": "FluxConfig",
              "metadata": {"name": "cfg", "namespace": namespace, "labels": {SHARD: "install-rbac-fluxconfig"}},
              "spec": {"scope": "cluster", "namespace": namespace,
                       "gitRepository": {"url": "https://example.com/repo.git", "repositoryRef": {"branch": "main"},
                                         "httpsUser": "git"},
                       "kustomizations": {"infra": {"path": "./infrastructure"},
                                          "apps": {"path": "./apps", "dependsOn": ["infra"]}},
                       "configurationProtectedSettingsRef": {"name": "cfg-protected-parameters"}}}  # fmt: skip
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps(config))
    kube = Kube(admin_api)

    def made() -> dict[str, Any]:
        return kube.get(FLUXCONFIG, namespace, "cfg")

    reconciled = until(made, lambda o: (o.get("status") or {}).get("observedGeneration") == 1, timeout=60,
                       what="the FluxConfig reconciled")  # fmt: skip
    assert reconciled["metadata"]["finalizers"] == ["clusterconfig.azure.com/finalizer"]
    assert "forbidden" not in json.dumps(reconciled["status"]).lower(), reconciled["status"]
    names = {
        "gitrepository": ["cfg"],
        "kustomization": ["cfg-apps", "cfg-infra"],
        "secret": ["cfg-auth", "cfg-protected-parameters"],
        "serviceaccount": ["flux-applier"],
    }
    for kind, expected in names.items():
        listed = kubectl("get", kind, "-n", namespace, "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
        assert sorted(n for n in listed if n in expected) == expected, (kind, listed)
    binding = json.loads(kubectl("get", "clusterrolebinding", f"flux-applier-{namespace}", "-o", "json").stdout)
    assert binding["roleRef"]["name"] == "cluster-admin"
    lease = client.CoordinationV1Api(admin_api).read_namespaced_lease("fluxwarden-fluxconfig", NAMESPACE)
    assert lease.spec.holder_identity, "the controller holds its own lease"

    kubectl("delete", "fluxconfig", "cfg", "-n", namespace, "--wait=false")

    def gone() -> bool:
        try:
            made()
        except NotFound:
            return True
        return False

    until(gone, bool, timeout=60, what="the FluxConfig finalized")
    leftover = kubectl("get", "clusterrolebinding", f"flux-applier-{namespace}", "--ignore-not-found", "-o", "name")
    assert leftover.stdout == "", "the binding to cluster-admin went with it"
    for kind in ("gitrepository", "kustomization"):
        assert kubectl("get", kind, "-n", namespace, "-o", "name").stdout == "", kind
    assert kubectl("get", "secret", "cfg-auth", "-n", namespace, "--ignore-not-found", "-o", "name").stdout == ""


def test_the_fluxconfig_account_cannot_bind_any_other_role(
    fluxconfig_api: client.ApiClient, admin_api: client.ApiClient, namespace: str
) -> None:
    """bind on cluster-admin by name: a binding to another role whose rights it lacks is refused (a bare API
    server aggregates no roles, so view, edit and admin are empty here: roles with rules of their own)."""
    client.RbacAuthorizationV1Api(admin_api).create_cluster_role(
        {
            "metadata": {"name": f"configmaps-{namespace}"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        }
    )
    rbac = client.RbacAuthorizationV1Api(fluxconfig_api)
    for role in (
        f"configmaps-{namespace}",
        "system:kube-scheduler",
        "system:controller:clusterrole-aggregation-controller",
    ):
        body = {"metadata": {"name": "flux-applier-other"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": "flux-applier", "namespace": namespace}]}  # fmt: skip
        with pytest.raises(ApiException) as refused:
            rbac.create_namespaced_role_binding(namespace, body)
        message = json.loads(refused.value.body)["message"]
        assert refused.value.status == 403 and "attempting to grant RBAC permissions not currently held" in message
        with pytest.raises(ApiException) as refused:
            rbac.create_cluster_role_binding({**body, "metadata": {"name": f"flux-applier-other-{namespace}"}})
        assert refused.value.status == 403, role
    client.RbacAuthorizationV1Api(admin_api).delete_cluster_role(f"configmaps-{namespace}")


@pytest.mark.parametrize(
    ("verb", "resource", "group", "name"),
    [
        ("impersonate", "serviceaccounts", "", ""),
        ("impersonate", "users", "", "admin"),
        ("impersonate", "groups", "", "system:masters"),
        ("escalate", "clusterroles", "rbac.authorization.k8s.io", ""),
        ("escalate", "roles", "rbac.authorization.k8s.io", ""),
        ("bind", "clusterroles", "rbac.authorization.k8s.io", "admin"),
        ("bind", "clusterroles", "rbac.authorization.k8s.io", ""),
        ("bind", "roles", "rbac.authorization.k8s.io", ""),
        ("create", "clusterroles", "rbac.authorization.k8s.io", ""),
        ("create", "roles", "rbac.authorization.k8s.io", ""),
        ("patch", "clusterroles", "rbac.authorization.k8s.io", "cluster-admin"),
        ("create", "fluxconfigs", "clusterconfig.azure.com", ""),
        ("delete", "fluxconfigs", "clusterconfig.azure.com", ""),
        ("update", "fluxconfigs", "clusterconfig.azure.com", ""),
        ("create", "helmreleases", "helm.toolkit.fluxcd.io", ""),
        ("create", "helmrepositories", "source.toolkit.fluxcd.io", ""),
        ("create", "configmaps", "", ""),
        ("create", "deployments", "apps", ""),
        ("create", "serviceaccounts/token", "", ""),
        ("create", "namespaces", "", ""),
        ("update", "leases", "coordination.k8s.io", "fluxwarden-controllers"),
    ],
)
def test_the_fluxconfig_account_cannot(
    fluxconfig_api: client.ApiClient, verb: str, resource: str, group: str, name: str
) -> None:
    assert not _allowed(fluxconfig_api, verb, resource, group, name, "flux-system")


@pytest.mark.parametrize(
    ("verb", "resource", "group", "name"),
    [
        ("bind", "clusterroles", "rbac.authorization.k8s.io", "cluster-admin"),
        ("update", "fluxconfigs/finalizers", "clusterconfig.azure.com", ""),
        ("watch", "fluxconfigs", "clusterconfig.azure.com", ""),
        ("watch", "secrets", "", ""),
        ("watch", "gitrepositories", "source.toolkit.fluxcd.io", ""),
        ("watch", "buckets", "source.toolkit.fluxcd.io", ""),
        ("watch", "ocirepositories", "source.toolkit.fluxcd.io", ""),
        ("watch", "kustomizations", "kustomize.toolkit.fluxcd.io", ""),
        ("watch", "helmreleases", "helm.toolkit.fluxcd.io", ""),
        ("watch", "serviceaccounts", "", ""),
        ("watch", "rolebindings", "rbac.authorization.k8s.io", ""),
        ("watch", "clusterrolebindings", "rbac.authorization.k8s.io", ""),
        ("delete", "buckets", "source.toolkit.fluxcd.io", ""),
        ("delete", "ocirepositories", "source.toolkit.fluxcd.io", ""),
    ],
)
def test_the_fluxconfig_account_may(
    fluxconfig_api: client.ApiClient, verb: str, resource: str, group: str, name: str
) -> None:
    """What the test above did not call for real (watches are informers; buckets and OCI the other kinds)."""
    assert _allowed(fluxconfig_api, verb, resource, group, name, "cluster-config")
