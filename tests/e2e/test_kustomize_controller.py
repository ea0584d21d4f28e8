"""The kustomize controller end to end: a multi-tenant setup modelled on Azure's, on a real API server.

A configuration namespace holds the tenant's Flux objects; ``flux-applier`` there may write only to
that namespace and the tenant's target namespace. The controller applies as that account.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.kustomize.kustomization import KustomizeOptions
from fluxwarden.controllers.source.api import GIT_REPOSITORY
from fluxwarden.tenancy import Settings
from tests.support.control_plane import ControlPlane
from tests.support.git_server import GitHttpServer
from tests.support.tenants import OWNER_NAME, SHARD, Tenant, condition, configmap, make_tenant
from tests.support.wait import until


@pytest.fixture(scope="module")
def controllers(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source", "kustomize"), label_selector=f"{SHARD}=tenants")


@pytest.fixture(scope="module")
def fixing_controllers(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(
        ("source", "kustomize"), label_selector=f"{SHARD}=autofix", kustomize=KustomizeOptions(auto_fix_legacy=True)
    )


@pytest.fixture
def tenant(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    controllers: Reconcilers,
) -> Tenant:
    return make_tenant(admin_api, namespace_factory, git_server, tmp_path)


def test_infra_then_apps_converge_update_and_prune(tenant: Tenant) -> None:
    first = tenant.push(
        {
            "infra/settings.yaml": configmap("infra-settings", "v1"),
            "apps/a.yaml": configmap("app-a", "1"),
            "apps/b.yaml": configmap("app-b", "1"),
        }
    )
    tenant.git_repository()
    tenant.kustomization("apps", path="./apps", targetNamespace=tenant.target, dependsOn=[{"name": "infra"}])
    apps_waiting = tenant.failed("apps", "DependencyNotReady")
    assert "dependency" in condition(apps_waiting)["message"]
    tenant.kustomization("infra", path="./infra", targetNamespace=tenant.target)

    infra = tenant.ready("infra", first)
    apps = tenant.ready("apps", first)
    assert tenant.configmaps(tenant.target) == {
        "infra-settings": {"value": "v1"},
        "app-a": {"value": "1"},
        "app-b": {"value": "1"},
    }
    assert [e["id"] for e in apps["status"]["inventory"]["entries"]] == [
        f"{tenant.target}_app-a__ConfigMap",
        f"{tenant.target}_app-b__ConfigMap",
    ]
    assert apps["status"]["inventory"]["entries"][0]["v"] == "v1"
    assert infra["status"]["lastAppliedRevision"] == f"main@sha1:{first}"
    labels = tenant.core.read_namespaced_config_map("app-a", tenant.target).metadata.labels
    assert labels == {OWNER_NAME: "apps", "kustomize.toolkit.fluxcd.io/namespace": tenant.config}

    second = tenant.push({"apps/a.yaml": configmap("app-a", "2")})
    tenant.patch("repo", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "now-1"}}}, GIT_REPOSITORY)
    tenant.ready("apps", second)
    assert tenant.configmaps(tenant.target)["app-a"] == {"value": "2"}

    third = tenant.push(delete=("apps/b.yaml",))
    tenant.patch("repo", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "now-2"}}}, GIT_REPOSITORY)
    tenant.ready("apps", third)
    until(lambda: tenant.configmaps(tenant.target), lambda cms: "app-b" not in cms, what="app-b pruned")
    assert set(tenant.configmaps(tenant.target)) == {"infra-settings", "app-a"}, "exactly that object was pruned"
    events = client.CoreV1Api(tenant.api).list_namespaced_event(tenant.config).items
    assert any(f"ConfigMap/{tenant.target}/app-b deleted" in (e.message or "") for e in events)


def test_a_dependency_on_the_same_source_applies_a_new_commit_first(tenant: Tenant) -> None:
    """As Flux: apps waits until infra has applied the source's current revision, not only until it is Ready."""
    first = tenant.push(
        {"infra/settings.yaml": configmap("infra-settings", "v1"), "apps/a.yaml": configmap("app-a", "1")}
    )
    tenant.git_repository()
    tenant.kustomization("infra", path="./infra", targetNamespace=tenant.target, wait=True, timeout="60s")
    tenant.kustomization("apps", path="./apps", targetNamespace=tenant.target, dependsOn=[{"name": "infra"}])
    tenant.ready("apps", first)
    # The next commit gives infra a Deployment to wait for: infra stays Ready at the first commit meanwhile.
    second = tenant.push({"infra/web.yaml": DEPLOYMENT, "apps/a.yaml": configmap("app-a", "2")})
    tenant.patch("repo", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "dep-1"}}}, GIT_REPOSITORY)
    waiting = until(
        lambda: tenant.get("apps"),
        lambda o: "revision is not up to date" in condition(o).get("message", ""),
        what="apps waiting for infra's revision",
    )
    assert condition(waiting)["reason"] == "DependencyNotReady"
    assert waiting["status"]["lastAppliedRevision"] == f"main@sha1:{first}"
    assert tenant.get("infra")["status"]["lastAppliedRevision"] == f"main@sha1:{first}"
    assert tenant.configmaps(tenant.target)["app-a"] == {"value": "1"}, "apps applied nothing of the new commit"
    apps_api = client.AppsV1Api(tenant.api)
    deployment = until(
        lambda: apps_api.list_namespaced_deployment(tenant.target).items, bool, what="infra applied web"
    )[0]
    apps_api.patch_namespaced_deployment_status("web", tenant.target, {"status": {
        "observedGeneration": deployment.metadata.generation, "replicas": 1, "updatedReplicas": 1,
        "readyReplicas": 1, "availableReplicas": 1,
    }})  # fmt: skip
    tenant.ready("infra", second)
    tenant.ready("apps", second)
    assert tenant.configmaps(tenant.target)["app-a"] == {"value": "2"}


def test_an_object_in_another_tenants_namespace_is_forbidden_and_nothing_lands_there(tenant: Tenant) -> None:
    tenant.push(
        {
            "mixed/mine.yaml": configmap("mine", "1", tenant.target),
            "mixed/theirs.yaml": configmap("theirs", "1", tenant.other),
        }
    )
    tenant.git_repository()
    tenant.kustomization("mixed", path="./mixed")
    failed = tenant.failed("mixed", "ReconciliationFailed")
    message = condition(failed)["message"]
    assert f"ConfigMap/{tenant.other}/theirs" in message and "forbidden" in message
    assert f"system:serviceaccount:{tenant.config}:flux-applier" in message
    assert tenant.configmaps(tenant.other) == {}


def test_cross_namespace_source_is_stalled_with_fluxs_message(tenant: Tenant) -> None:
    tenant.push({"apps/a.yaml": configmap("a", "1")})
    tenant.kustomization(
        "cross", path="./apps", sourceRef={"kind": "GitRepository", "name": "repo", "namespace": tenant.other}
    )
    stalled = tenant.failed("cross", "AccessDenied")
    assert condition(stalled)["message"] == (
        f"can't access 'GitRepository/{tenant.other}/repo', cross-namespace references have been blocked"
    )
    assert condition(stalled, "Stalled")["status"] == "True"


def test_failures_keep_what_was_applied(tenant: Tenant) -> None:
    first = tenant.push({"apps/a.yaml": configmap("keep-me", "1")})
    tenant.git_repository()
    tenant.kustomization("apps", path="./apps", targetNamespace=tenant.target)
    tenant.ready("apps", first)

    tenant.push({"apps/kustomization.yaml": "resources: [a.yaml, missing.yaml]\n"})
    tenant.patch("repo", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "broken"}}}, GIT_REPOSITORY)
    broken = tenant.failed("apps", "BuildFailed")
    assert "missing.yaml" in condition(broken)["message"] and "\n" not in condition(broken)["message"]

    tenant.push(
        {
            "apps/kustomization.yaml": "resources: [a.yaml, bad.yaml]\n",
            "apps/bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata: [not, a, map]\n",
        }
    )
    tenant.patch("repo", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "invalid"}}}, GIT_REPOSITORY)
    invalid = tenant.failed("apps", "ReconciliationFailed")
    assert "ConfigMap" in condition(invalid)["message"]

    tenant.push(
        {
            "apps/kustomization.yaml": "resources: [a.yaml, vars.yaml]\n",
            "apps/vars.yaml": configmap("vars", "${cluster_name}"),
        },
        delete=("apps/bad.yaml",),
    )
    tenant.patch("repo", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "vars"}}}, GIT_REPOSITORY)
    tenant.patch("apps", {"spec": {"postBuild": {"substitute": {"region": "eu"}}}})
    missing_var = tenant.failed("apps", "BuildFailed")
    assert "cluster_name" in condition(missing_var)["message"]

    tenant.kustomization("never", path="./apps", targetNamespace=tenant.target, dependsOn=[{"name": "absent"}])
    assert tenant.failed("never", "DependencyNotReady")
    assert tenant.configmaps(tenant.target)["keep-me"] == {"value": "1"}, "nothing applied before was lost"
    assert any(
        e["id"].startswith(f"{tenant.target}_keep-me_") for e in tenant.get("apps")["status"]["inventory"]["entries"]
    )

    tenant.patch("apps", {"spec": {"postBuild": {"substitute": {"cluster_name": "prod-1"}}}})
    tenant.ready("apps")
    assert tenant.configmaps(tenant.target)["vars"] == {"value": "prod-1"}


# TENANCY.md's reference example, as shipped in examples/.
LEGACY = (Path(__file__).parents[2] / "examples" / "legacy-helmrelease.yaml").read_text()


def test_legacy_reference_example_refused_without_auto_fix_and_applied_with_it(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    controllers: Reconcilers,
    fixing_controllers: Reconcilers,
) -> None:
    plain = make_tenant(admin_api, namespace_factory, git_server, tmp_path / "plain")
    plain.push({"legacy/release.yaml": LEGACY})
    plain.git_repository()
    plain.kustomization("legacy", path="./legacy")
    refused = plain.failed("legacy", "ReconciliationFailed")
    assert "forbidden" in condition(refused)["message"]

    fixing = make_tenant(admin_api, namespace_factory, git_server, tmp_path / "fixing", shard="autofix")
    fixing.push({"legacy/release.yaml": LEGACY})
    fixing.git_repository()
    fixing.kustomization("legacy", path="./legacy")
    fixing.ready("legacy")
    release = fixing.custom.get_namespaced_custom_object(
        "helm.toolkit.fluxcd.io", "v2", fixing.config, "helmreleases", "nginx"
    )
    assert release["spec"]["targetNamespace"] == "nginx"
    assert release["spec"]["chart"]["spec"]["sourceRef"]["namespace"] == fixing.config
    fixing.custom.get_namespaced_custom_object(
        "source.toolkit.fluxcd.io", "v1", fixing.config, "helmrepositories", "bitnami"
    )
    events = client.CoreV1Api(admin_api).list_namespaced_event(fixing.config).items
    assert any(e.reason == "LegacyManifestFixed" for e in events)


def test_restart_mid_reconcile_converges_without_duplicates_or_orphans(
    tenant: Tenant, start_reconcilers: Callable[..., Reconcilers]
) -> None:
    tenant.shard = "restart"
    first_run = start_reconcilers(("source", "kustomize"), label_selector=f"{SHARD}=restart")
    files = {f"many/cm-{i}.yaml": configmap(f"cm-{i}", str(i)) for i in range(15)}
    sha = tenant.push(files)
    tenant.git_repository()
    tenant.kustomization("many", path="./many", targetNamespace=tenant.target)
    until(lambda: tenant.configmaps(tenant.target), lambda cms: len(cms) >= 3, what="some objects applied")
    first_run.stop()  # mid-reconcile, or just after: either way the next run must converge

    start_reconcilers(("source", "kustomize"), label_selector=f"{SHARD}=restart")
    done = tenant.ready("many", sha)
    assert sorted(tenant.configmaps(tenant.target)) == sorted(f"cm-{i}" for i in range(15))
    ids = [e["id"] for e in done["status"]["inventory"]["entries"]]
    assert len(ids) == len(set(ids)) == 15


def test_deleting_a_kustomization_with_prune_deletes_its_objects(tenant: Tenant) -> None:
    sha = tenant.push({"apps/a.yaml": configmap("doomed", "1")})
    tenant.git_repository()
    tenant.kustomization("apps", path="./apps", targetNamespace=tenant.target)
    tenant.ready("apps", sha)
    tenant.core.create_namespaced_config_map(tenant.target, {"metadata": {"name": "bystander"}})
    tenant.custom.delete_namespaced_custom_object(
        KUSTOMIZATION.group, KUSTOMIZATION.version, tenant.config, KUSTOMIZATION.plural, "apps"
    )
    until(lambda: tenant.configmaps(tenant.target), lambda cms: "doomed" not in cms, what="inventory pruned")
    assert "bystander" in tenant.configmaps(tenant.target), "never delete what the inventory does not list"


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example/web:1.0
"""


def test_health_checks_wait_for_readiness_within_the_timeout(tenant: Tenant) -> None:
    sha = tenant.push({"web/deployment.yaml": DEPLOYMENT})
    tenant.git_repository()
    tenant.kustomization("web", path="./web", targetNamespace=tenant.target, wait=True, timeout="3s")
    failed = tenant.failed("web", "HealthCheckFailed")
    assert f"Deployment/{tenant.target}/web status: 'InProgress'" in condition(failed)["message"]

    # A bare API server runs no Deployment controller: report the rollout as the controller would.
    apps = client.AppsV1Api(tenant.api)
    deployment = apps.read_namespaced_deployment("web", tenant.target)
    apps.patch_namespaced_deployment_status("web", tenant.target, {"status": {
        "observedGeneration": deployment.metadata.generation, "replicas": 1, "updatedReplicas": 1,
        "readyReplicas": 1, "availableReplicas": 1,
    }})  # fmt: skip
    tenant.patch("web", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "rolled-out"}}})
    tenant.ready("web", sha)


def test_ssa_and_prune_annotations_are_honoured(tenant: Tenant) -> None:
    keep = configmap("kept", "1").replace(
        "metadata:\n", "metadata:\n  annotations:\n    kustomize.toolkit.fluxcd.io/prune: disabled\n"
    )
    once = configmap("once", "from-git").replace(
        "metadata:\n", "metadata:\n  annotations:\n    kustomize.toolkit.fluxcd.io/ssa: IfNotPresent\n"
    )
    first = tenant.push({"apps/kept.yaml": keep, "apps/once.yaml": once})
    tenant.git_repository()
    tenant.kustomization("apps", path="./apps", targetNamespace=tenant.target)
    tenant.ready("apps", first)
    tenant.core.patch_namespaced_config_map("once", tenant.target, {"data": {"value": "edited-in-cluster"}})

    second = tenant.push({"apps/other.yaml": configmap("other", "1")}, delete=("apps/kept.yaml",))
    tenant.patch("repo", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "two"}}}, GIT_REPOSITORY)
    tenant.ready("apps", second)
    maps = tenant.configmaps(tenant.target)
    assert "kept" in maps, "prune: disabled keeps an object that left the repository"
    assert maps["once"] == {"value": "edited-in-cluster"}, "ssa: IfNotPresent never overwrites"


def crd_and_object(group: str, kind: str, scope: str, name: str, spec: str) -> str:
    """A CRD of ``kind`` (any fields allowed) and one object of it, in one file."""
    plural = f"{kind.lower()}s"
    return f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  scope: {scope}
  names: {{plural: {plural}, singular: {kind.lower()}, kind: {kind}}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
---
apiVersion: {group}/v1
kind: {kind}
metadata:
  name: {name}
spec: {spec}
"""


@pytest.fixture(scope="module")
def platform_controllers(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    """Controllers for a platform team: tenancy not enforced, so CRDs and cluster kinds may be applied."""
    return start_reconcilers(
        ("source", "kustomize"), label_selector=f"{SHARD}=platform",
        kustomize=KustomizeOptions(settings=Settings(enforce=False)),
    )  # fmt: skip


@pytest.fixture
def platform(
    admin_api: client.ApiClient, namespace_factory: Callable[[], str], git_server: GitHttpServer, tmp_path: Path,
    platform_controllers: Reconcilers,
) -> Tenant:  # fmt: skip
    return make_tenant(admin_api, namespace_factory, git_server, tmp_path, shard="platform")


def test_crds_are_applied_and_established_before_their_objects(platform: Tenant) -> None:
    group = f"g{uuid.uuid4().hex[:8]}.example.com"
    sha = platform.push({"crds/all.yaml": crd_and_object(group, "Widget", "Namespaced", "first", "{size: 3}")})
    platform.git_repository()
    platform.kustomization("crds", path="./crds", targetNamespace=platform.target)
    platform.ready("crds", sha)
    widget = platform.custom.get_namespaced_custom_object(group, "v1", platform.target, "widgets", "first")
    assert widget["spec"] == {"size": 3}


def test_cli_get_reconcile_with_source_suspend_resume(tenant: Tenant, control_plane: ControlPlane) -> None:
    sha = tenant.push({"apps/a.yaml": configmap("cli", "1")})
    tenant.git_repository()
    tenant.kustomization("apps", path="./apps", targetNamespace=tenant.target)
    tenant.ready("apps", sha)
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "fluxwarden.cli.main", *args, "-n", tenant.config]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    listed = cli("get", "kustomizations")
    assert listed.stdout.splitlines()[1].split()[:4] == ["apps", f"main@sha1:{sha}", "False", "True"]
    newer = tenant.push({"apps/a.yaml": configmap("cli", "2")})
    done = cli("reconcile", "kustomization", "apps", "--with-source")
    assert done.returncode == 0, done.stderr
    assert f"Applied revision: main@sha1:{newer}" in done.stdout
    assert tenant.configmaps(tenant.target)["cli"] == {"value": "2"}
    assert cli("suspend", "kustomization", "apps").returncode == 0
    assert tenant.get("apps")["spec"]["suspend"] is True
    assert cli("resume", "kustomization", "apps").returncode == 0
    assert tenant.get("apps")["spec"]["suspend"] is False


def test_common_metadata_lands_on_every_object_under_the_owner_labels(tenant: Tenant) -> None:
    sha = tenant.push({"apps/a.yaml": configmap("a", "1"), "apps/b.yaml": configmap("b", "1")})
    tenant.git_repository()
    common = {"labels": {"team": "payments", OWNER_NAME: "not-the-owner"}, "annotations": {"owner": "pay@example"}}
    tenant.kustomization("apps", path="./apps", targetNamespace=tenant.target, commonMetadata=common)
    tenant.ready("apps", sha)
    for name in ("a", "b"):
        meta = tenant.core.read_namespaced_config_map(name, tenant.target).metadata
        assert meta.labels["team"] == "payments" and meta.annotations["owner"] == "pay@example"
        assert meta.labels[OWNER_NAME] == "apps", "the owner labels always win"


def test_a_cluster_scoped_kind_defined_in_the_same_build_keeps_one_inventory_id(platform: Tenant) -> None:
    """Before its CRD exists the kind's scope comes from that CRD, so the id never flips and nothing is pruned."""
    group = f"g{uuid.uuid4().hex[:8]}.example.com"
    sha = platform.push({"crds/all.yaml": crd_and_object(group, "Issuer", "Cluster", "letsencrypt", "{acme: true}")})
    platform.git_repository()
    platform.kustomization("crds", path="./crds")
    first = platform.ready("crds", sha)
    issuer = platform.custom.get_cluster_custom_object(group, "v1", "issuers", "letsencrypt")
    expected = f"_letsencrypt_{group}_Issuer"
    assert expected in [e["id"] for e in first["status"]["inventory"]["entries"]]

    platform.patch("crds", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "again"}}})
    again = until(
        lambda: platform.get("crds"),
        lambda o: (o.get("status") or {}).get("lastHandledReconcileAt") == "again" and condition(o)["status"] == "True",
        what="the second reconcile",
    )
    assert expected in [e["id"] for e in again["status"]["inventory"]["entries"]]
    same = platform.custom.get_cluster_custom_object(group, "v1", "issuers", "letsencrypt")
    assert same["metadata"]["uid"] == issuer["metadata"]["uid"], "never pruned and recreated"
