"""The helm controller's test charts and Job driver, proven with the real helm against the real apiserver.

No controller runs here: helm is called by hand as admin (or as a tenant's flux-applier), so a
failure of the helm controller's tests can be told apart from a broken test chart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support import helm_charts, jobs
from tests.support.control_plane import ControlPlane
from tests.support.helm_cli import AdminHelm, kill_mid_upgrade, release_secrets
from tests.support.helm_repo import HelmRepoServer, helm_binary
from tests.support.processes import ChildWatch
from tests.support.tenants import grant
from tests.support.tls import PrivateCA


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory, authority: PrivateCA) -> Iterator[HelmRepoServer]:
    with HelmRepoServer(tmp_path_factory.mktemp("charts"), tls=authority.server_context()) as repo:
        repo.add_chart("cms", "1.0.0", {"greeting": "hi"}, templates=helm_charts.configmaps(3))
        repo.add_chart("workload", "1.0.0", {"token": "s3cret"}, templates=helm_charts.workload())
        repo.add_chart("hooks", "1.0.0", templates=helm_charts.hooks())
        repo.add_chart("broken", "1.0.0", templates=helm_charts.broken())
        repo.add_chart("custom", "1.0.0", templates=helm_charts.custom_resource())
        yield repo


@pytest.fixture(scope="module")
def helm(control_plane: ControlPlane) -> AdminHelm:
    return AdminHelm(control_plane.kubeconfig)


@pytest.fixture(scope="module")
def driver(admin_api: client.ApiClient) -> Iterator[jobs.JobDriver]:
    with jobs.JobDriver(admin_api) as running:
        yield running


@pytest.fixture
def ca_file(tmp_path: Path, authority: PrivateCA) -> str:
    path = tmp_path / "ca.crt"
    path.write_bytes(authority.ca_pem)
    return str(path)


def names(items: list[object]) -> set[str]:
    return {i.metadata.name for i in items}  # type: ignore[attr-defined]


def test_configmap_chart_installs_from_the_https_repository(
    helm: AdminHelm, charts: HelmRepoServer, namespace: str, ca_file: str, admin_api: client.ApiClient
) -> None:
    helm("install", "app", "cms", "--repo", charts.url, "--ca-file", ca_file, "--version", "1.0.0", "-n", namespace)
    core = client.CoreV1Api(admin_api)
    maps = {c.metadata.name: c.data for c in core.list_namespaced_config_map(namespace).items}
    assert {n: maps[n]["chartVersion"] for n in ("app-0", "app-1", "app-2")} == dict.fromkeys(
        ("app-0", "app-1", "app-2"), "1.0.0"
    )
    assert maps["app-0"]["values"] == '{"greeting":"hi"}'
    [entry] = helm.history("app", namespace)
    assert (entry["revision"], entry["status"], entry["chart"]) == (1, "deployed", "cms-1.0.0")
    assert list(release_secrets(admin_api, namespace, "app")) == ["sh.helm.release.v1.app.v1"]


def test_workload_chart_installs_as_a_tenants_flux_applier(
    helm: AdminHelm, charts: HelmRepoServer, namespace: str, admin_api: client.ApiClient
) -> None:
    client.CoreV1Api(admin_api).create_namespaced_service_account(namespace, {"metadata": {"name": "flux-applier"}})
    grant(admin_api, namespace, namespace)
    user = f"system:serviceaccount:{namespace}:flux-applier"
    groups = ["--kube-as-group", "system:serviceaccounts", "--kube-as-group", f"system:serviceaccounts:{namespace}"]
    archive = str(charts.root / "workload-1.0.0.tgz")
    helm("install", "web", archive, "-n", namespace, "--kube-as-user", user, *groups, "--wait", "--timeout", "30s")
    core, rbac = client.CoreV1Api(admin_api), client.RbacAuthorizationV1Api(admin_api)
    assert "web" in names(core.list_namespaced_service_account(namespace).items)
    assert core.read_namespaced_service("web", namespace).spec.cluster_ip
    assert core.read_namespaced_secret("web", namespace).data["token"] == "czNjcmV0"  # base64 of s3cret
    assert rbac.read_namespaced_role_binding("web", namespace).subjects[0].name == "web"
    assert helm.status("web", namespace)["info"]["status"] == "deployed"


def test_hook_and_test_jobs_follow_the_values(
    helm: AdminHelm, charts: HelmRepoServer, namespace: str, driver: jobs.JobDriver
) -> None:
    archive = str(charts.root / "hooks-1.0.0.tgz")
    helm("install", "h", archive, "-n", namespace, "--timeout", "30s")
    assert driver.outcomes(namespace) == [("h-hook", "Complete")]
    helm("test", "h", "-n", namespace, "--timeout", "30s")
    assert driver.outcomes(namespace)[-1] == ("h-test", "Complete")

    helm("upgrade", "h", archive, "-n", namespace, "--set", "test=Failed", "--timeout", "30s")
    assert driver.outcomes(namespace)[-1] == ("h-hook", "Complete"), "post-upgrade hook ran"
    failed_test = helm.run_unchecked("test", "h", "-n", namespace, "--timeout", "30s")
    assert failed_test.returncode != 0 and "h-test" in failed_test.stderr, failed_test.stderr

    failed_hook = helm.run_unchecked("upgrade", "h", archive, "-n", namespace, "--set", "hook=Failed")
    assert failed_hook.returncode != 0 and "Failed" in failed_hook.stderr, failed_hook.stderr
    assert [e["status"] for e in helm.history("h", namespace)] == ["superseded", "deployed", "failed"]

    helm("install", "u", archive, "-n", namespace, "--set", "upgradeHook=Failed", "--timeout", "30s")
    upgrade_only = helm.run_unchecked("upgrade", "u", archive, "-n", namespace, "--reuse-values", "--timeout", "30s")
    assert upgrade_only.returncode != 0 and "u-hook" in upgrade_only.stderr, upgrade_only.stderr

    stuck = helm.run_unchecked("upgrade", "h", archive, "-n", namespace, "--set", "hook=Never", "--timeout", "2s")
    assert stuck.returncode != 0 and "h-hook" in stuck.stderr, stuck.stderr
    assert helm.history("h", namespace)[-1]["status"] == "failed"


def test_broken_chart_fails_to_render_until_the_value_is_given(
    helm: AdminHelm, charts: HelmRepoServer, namespace: str
) -> None:
    archive = str(charts.root / "broken-1.0.0.tgz")
    refused = helm.run_unchecked("install", "b", archive, "-n", namespace)
    assert refused.returncode != 0 and "value x is required" in refused.stderr, refused.stderr
    assert helm.history("b", namespace) == [], "a render failure stores no release"
    helm("install", "b", archive, "-n", namespace, "--set", "x=1")
    assert helm.status("b", namespace)["info"]["status"] == "deployed"


def test_custom_resource_chart_creates_the_flux_object(
    helm: AdminHelm, charts: HelmRepoServer, namespace: str, admin_api: client.ApiClient, flux_crds: list[str]
) -> None:
    helm("install", "c", str(charts.root / "custom-1.0.0.tgz"), "-n", namespace, "--wait", "--timeout", "30s")
    group, version, plural, _ = helm_charts.PROVIDER
    provider = client.CustomObjectsApi(admin_api).get_namespaced_custom_object(group, version, namespace, plural, "c")
    assert provider["spec"] == {"type": "generic", "address": "http://127.0.0.1:9/hook"}


JOB = {
    "metadata": {"name": "direct"},
    "spec": {
        "backoffLimit": 0,
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "registry.example/c"}]}},
    },
}


def test_finish_writes_a_status_the_apiserver_accepts_and_it_refuses_a_shortcut(
    admin_api: client.ApiClient, namespace: str
) -> None:
    batch = client.BatchV1Api(admin_api)
    batch.create_namespaced_job(namespace, JOB)
    shortcut = jobs.finished_status(jobs.COMPLETE)
    shortcut["conditions"] = shortcut["conditions"][1:]  # Complete without SuccessCriteriaMet
    with pytest.raises(ApiException) as refused:
        batch.patch_namespaced_job_status(
            "direct", namespace, {"status": shortcut}, _content_type="application/merge-patch+json"
        )
    assert refused.value.status == 422 and "SuccessCriteriaMet" in refused.value.body
    jobs.finish(admin_api, namespace, "direct", jobs.COMPLETE)
    assert jobs.is_finished(batch.read_namespaced_job("direct", namespace))

    batch.create_namespaced_job(namespace, {**JOB, "metadata": {"name": "failing"}})
    jobs.finish(admin_api, namespace, "failing", jobs.FAILED)
    failed = batch.read_namespaced_job("failing", namespace)
    assert [c.type for c in failed.status.conditions] == ["FailureTarget", "Failed"] and failed.status.failed == 1


def test_child_watch_sees_a_helm_run_and_nothing_when_none_runs(helm: AdminHelm) -> None:
    with ChildWatch(helm_binary()) as idle:
        time.sleep(0.3)
    assert idle.seen == set()
    with ChildWatch(helm_binary()) as busy:
        helm("version")
    assert busy.seen, "a helm run of this process went unseen"


def test_a_killed_upgrade_leaves_pending_upgrade_until_unlocked(
    helm: AdminHelm, charts: HelmRepoServer, namespace: str, driver: jobs.JobDriver, tmp_path: Path
) -> None:
    archive = str(charts.root / "hooks-1.0.0.tgz")
    helm("install", "p", archive, "-n", namespace, "--timeout", "30s")
    kill_mid_upgrade(helm, tmp_path, "p", namespace, archive, "--set", "upgradeHook=Never")
    assert [(e["revision"], e["status"]) for e in helm.history("p", namespace)] == [
        (1, "deployed"), (2, "pending-upgrade"),
    ]  # fmt: skip
    locked = helm.run_unchecked("upgrade", "p", archive, "-n", namespace)
    assert locked.returncode != 0 and "another operation" in locked.stderr, locked.stderr
