"""The helm controller end to end: real API server, real helm v4, a real HTTPS chart repository.

Every expected revision, status and value comes from helm itself (``helm history/status/get values``
run here as admin) or from the chart this module wrote, never from the controller's own tables.
Hook and test Jobs are finished through the status subresource (``tests.support.jobs``): a bare API
server runs no Job controller.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.helm.api import HELM_RELEASE
from fluxwarden.controllers.source.api import HELM_CHART, HELM_REPOSITORY
from tests.support import helm_charts, jobs
from tests.support.control_plane import ControlPlane
from tests.support.helm_cli import AdminHelm, kill_mid_upgrade, release_secrets
from tests.support.helm_repo import HelmRepoServer, helm_binary
from tests.support.helm_tenants import RESET_AT, HelmTenant, make_helm_tenant, release_name
from tests.support.processes import ChildWatch
from tests.support.tenants import SHARD, condition
from tests.support.tls import PrivateCA
from tests.support.wait import until

SHARD_VALUE = "helm"
NAME_LABEL = "helm.toolkit.fluxcd.io/name"
NAMESPACE_LABEL = "helm.toolkit.fluxcd.io/namespace"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory, authority: PrivateCA) -> Iterator[HelmRepoServer]:
    """One HTTPS repository (its own CA) for the module, with every chart the tests install."""
    with HelmRepoServer(tmp_path_factory.mktemp("charts"), tls=authority.server_context()) as repo:
        repo.add_chart("cms", "1.0.0", {"greeting": "hello"}, templates=helm_charts.configmaps(2))
        repo.add_chart("cms", "1.1.0", {"greeting": "hello"}, templates=helm_charts.configmaps(3))
        repo.add_chart("workload", "1.0.0", {"token": "chart-default"}, templates=helm_charts.workload())
        repo.add_chart("hooks", "1.0.0", templates=helm_charts.hooks())
        repo.add_chart("broken", "1.0.0", templates=helm_charts.broken())
        repo.add_chart("custom", "1.0.0", templates=helm_charts.custom_resource())
        yield repo


@pytest.fixture(scope="module")
def controllers(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source", "helm"), label_selector=f"{SHARD}={SHARD_VALUE}")


@pytest.fixture(scope="module")
def driver(admin_api: client.ApiClient) -> Iterator[jobs.JobDriver]:
    with jobs.JobDriver(admin_api) as running:
        yield running


@pytest.fixture(scope="module")
def helm(control_plane: ControlPlane) -> AdminHelm:
    return AdminHelm(control_plane.kubeconfig)


@pytest.fixture
def tenant(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    charts: HelmRepoServer,
    authority: PrivateCA,
    controllers: Reconcilers,
    driver: jobs.JobDriver,
) -> HelmTenant:
    return make_helm_tenant(admin_api, namespace_factory, charts.url, authority.ca_pem, SHARD_VALUE)


def cm_values(tenant: HelmTenant, name: str) -> dict[str, Any]:
    """The values the chart rendered into ConfigMap ``name`` (``helm_charts.configmaps``)."""
    values: dict[str, Any] = json.loads(tenant.configmaps()[name]["values"])
    return values


def statuses(history: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(entry["revision"], entry["status"]) for entry in history]


def one_line(message: str) -> bool:
    return bool(message) and "\n" not in message


# --- the seed's scenario --------------------------------------------------------------------------


def test_seed_scenario_installs_as_flux_applier_into_the_target_namespace(
    tenant: HelmTenant, helm: AdminHelm, admin_api: client.ApiClient
) -> None:
    release = tenant.release("nginx", chart="workload", values={"token": "from-the-release"})
    done = tenant.ready("nginx", "InstallSucceeded")

    [entry] = helm.history(release, tenant.target)
    assert (entry["revision"], entry["status"], entry["chart"]) == (1, "deployed", "workload-1.0.0")
    assert condition(done)["message"] == (
        f"Helm install succeeded for release {tenant.target}/{release}.v1 with chart workload@1.0.0"
    )
    assert list(release_secrets(admin_api, tenant.target, release)) == [f"sh.helm.release.v1.{release}.v1"]
    assert release_secrets(admin_api, tenant.config, release) == {}, "stored in the target namespace"
    status = done["status"]
    assert status["storageNamespace"] == tenant.target
    assert status["helmChart"] == f"{tenant.config}/{tenant.config}-nginx"
    snapshot = status["history"][0]
    assert {k: snapshot[k] for k in ("name", "namespace", "version", "status", "chartName", "chartVersion")} == {
        "name": release, "namespace": tenant.target, "version": 1, "status": "deployed",
        "chartName": "workload", "chartVersion": "1.0.0",
    }  # fmt: skip
    assert DIGEST.match(snapshot["configDigest"]) and status["lastAttemptedConfigDigest"] == snapshot["configDigest"]

    core, rbac = tenant.core, client.RbacAuthorizationV1Api(admin_api)
    secret = core.read_namespaced_secret(release, tenant.target)
    assert base64.b64decode(secret.data["token"]) == b"from-the-release"
    assert core.read_namespaced_service(release, tenant.target).spec.cluster_ip
    assert core.read_namespaced_service_account(release, tenant.target)
    assert rbac.read_namespaced_role_binding(release, tenant.target).role_ref.name == release
    labels = core.read_namespaced_service(release, tenant.target).metadata.labels
    assert (labels[NAME_LABEL], labels[NAMESPACE_LABEL]) == ("nginx", tenant.config)
    assert "from-the-release" not in json.dumps(done["status"]), "values never reach the status"

    # The same release aimed at a namespace flux-applier may not write to: helm ran as flux-applier.
    elsewhere = tenant.release("elsewhere", chart="workload", targetNamespace=tenant.other)
    user = f"system:serviceaccount:{tenant.config}:flux-applier"
    refused = tenant.wait(
        "elsewhere",
        lambda o: condition(o).get("status") == "False" and user in condition(o).get("message", ""),
        f"refused as {user}",
        timeout=90,
    )
    assert condition(refused)["reason"] == "InstallFailed", condition(refused)
    assert one_line(condition(refused)["message"])
    assert helm.history(elsewhere, tenant.other) == []


def test_a_chart_with_a_crd_backed_object_installs_it_as_the_tenant(tenant: HelmTenant) -> None:
    release = tenant.release("custom", chart="custom", values={"address": "http://127.0.0.1:9/custom"})
    tenant.ready("custom", "InstallSucceeded")
    group, version, plural, _ = helm_charts.PROVIDER
    provider = tenant.custom.get_namespaced_custom_object(group, version, tenant.target, plural, release)
    assert provider["spec"] == {"type": "generic", "address": "http://127.0.0.1:9/custom"}
    labels = provider["metadata"]["labels"]
    assert (labels[NAME_LABEL], labels[NAMESPACE_LABEL]) == ("custom", tenant.config)


# --- upgrades --------------------------------------------------------------------------------------


def test_a_values_change_upgrades(tenant: HelmTenant, helm: AdminHelm) -> None:
    release = tenant.release("app", values={"greeting": "one"})
    first = tenant.ready("app", "InstallSucceeded")
    tenant.patch("app", {"spec": {"values": {"greeting": "two"}}})
    second = tenant.ready("app", "UpgradeSucceeded")

    assert statuses(helm.history(release, tenant.target)) == [(1, "superseded"), (2, "deployed")]
    assert helm.values(release, tenant.target) == {"greeting": "two"}
    assert cm_values(tenant, f"{release}-0")["greeting"] == "two"
    assert condition(second)["message"] == (
        f"Helm upgrade succeeded for release {tenant.target}/{release}.v2 with chart cms@1.0.0"
    )
    assert second["status"]["history"][0]["version"] == 2
    assert second["status"]["history"][0]["configDigest"] != first["status"]["history"][0]["configDigest"]


def test_a_new_chart_version_upgrades(tenant: HelmTenant, helm: AdminHelm, charts: HelmRepoServer) -> None:
    charts.add_chart("grow", "1.0.0", templates=helm_charts.configmaps(1))
    # The tenant's HelmRepository may have read the index before grow was published: without a refetch
    # it would see grow only at its 1m interval.
    tenant.handled("charts", tenant.request("charts", HELM_REPOSITORY), resource=HELM_REPOSITORY)
    release = tenant.release("grow", chart="grow", version=">=1.0.0")
    tenant.ready("grow", "InstallSucceeded")
    charts.add_chart("grow", "1.1.0", templates=helm_charts.configmaps(2))
    chart_revision(tenant, "grow", "1.1.0")
    until(
        lambda: tenant.get("grow"),
        lambda o: ((o.get("status") or {}).get("history") or [{}])[0].get("chartVersion") == "1.1.0",
        timeout=60,
        what="release upgraded to chart 1.1.0",
    )
    upgraded = tenant.ready("grow", "UpgradeSucceeded")
    assert upgraded["status"]["lastAttemptedRevision"] == "1.1.0"
    history = helm.history(release, tenant.target)
    assert [(e["revision"], e["chart"]) for e in history] == [(1, "grow-1.0.0"), (2, "grow-1.1.0")]
    assert set(tenant.configmaps()) == {f"{release}-0", f"{release}-1"}


def chart_revision(tenant: HelmTenant, release: str, version: str, timeout: float = 60) -> None:
    """Make the source controller see a new chart version now rather than at its interval."""
    deadline = time.monotonic() + timeout
    tenant.request("charts", HELM_REPOSITORY)
    while True:
        chart = tenant.helm_chart(release) or {}
        if (chart.get("status") or {}).get("artifact", {}).get("revision") == version:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"HelmChart of {release} never reached {version}: {chart.get('status')}")
        time.sleep(2)
        tenant.request(f"{tenant.config}-{release}", HELM_CHART)


# --- no-op reconciles and hand edits --------------------------------------------------------------


def versions(tenant: HelmTenant) -> dict[str, str]:
    return {
        c.metadata.name: c.metadata.resource_version
        for c in tenant.core.list_namespaced_config_map(tenant.target).items
    }


def test_an_unchanged_spec_runs_no_helm_and_writes_nothing(
    tenant: HelmTenant, helm: AdminHelm, admin_api: client.ApiClient
) -> None:
    release = tenant.release("quiet", values={"greeting": "same"})
    tenant.ready("quiet", "InstallSucceeded")
    time.sleep(1)  # let the install's follow-up reconciles settle
    records = release_secrets(admin_api, tenant.target, release)
    objects = versions(tenant)
    before = tenant.get("quiet")

    with ChildWatch(helm_binary()) as watch:
        token = tenant.request("quiet")
        after = tenant.handled("quiet", token)
        time.sleep(0.5)
    assert watch.seen == set(), f"a no-op reconcile ran helm: pids {watch.seen}"
    assert release_secrets(admin_api, tenant.target, release) == records, "release records rewritten"
    assert versions(tenant) == objects, "rendered objects rewritten"
    assert len(helm.history(release, tenant.target)) == 1
    assert after["status"]["history"] == before["status"]["history"]
    assert condition(after)["status"] == "True"

    # The watcher does see helm when the controller runs it: a values change upgrades.
    with ChildWatch(helm_binary()) as watch:
        tenant.patch("quiet", {"spec": {"values": {"greeting": "changed"}}})
        tenant.ready("quiet", "UpgradeSucceeded")
    assert watch.seen, "the watcher saw no helm during an upgrade: it cannot prove the no-op"


def test_a_hand_rollback_is_corrected_at_the_next_reconcile(tenant: HelmTenant, helm: AdminHelm) -> None:
    release = tenant.release("rb", values={"greeting": "v1"})
    tenant.ready("rb", "InstallSucceeded")
    tenant.patch("rb", {"spec": {"values": {"greeting": "v2"}}})
    tenant.ready("rb", "UpgradeSucceeded")

    helm("rollback", release, "1", "-n", tenant.target)
    assert helm.history(release, tenant.target)[-1]["description"] == "Rollback to 1"
    assert cm_values(tenant, f"{release}-0")["greeting"] == "v1"

    token = tenant.request("rb")
    tenant.handled("rb", token)
    until(
        lambda: helm.history(release, tenant.target),
        lambda h: len(h) == 4 and h[-1]["status"] == "deployed",
        what="the controller upgraded back to the spec",
    )
    assert helm.values(release, tenant.target) == {"greeting": "v2"}
    assert cm_values(tenant, f"{release}-0")["greeting"] == "v2"
    assert tenant.ready("rb")["status"]["history"][0]["version"] == 4


def test_a_hand_uninstall_is_corrected_at_the_next_reconcile(tenant: HelmTenant, helm: AdminHelm) -> None:
    release = tenant.release("gone", values={"greeting": "back"})
    tenant.ready("gone", "InstallSucceeded")
    helm("uninstall", release, "-n", tenant.target)
    assert tenant.configmaps() == {} and helm.history(release, tenant.target) == []

    token = tenant.request("gone")
    tenant.handled("gone", token)
    until(
        lambda: helm.history(release, tenant.target),
        lambda h: statuses(h) == [(1, "deployed")],
        what="the controller installed the release again",
    )
    assert cm_values(tenant, f"{release}-0")["greeting"] == "back"
    tenant.ready("gone", "InstallSucceeded")


# --- failures, remediation, retries ---------------------------------------------------------------


def test_install_failure_retries_then_stalls_then_reset_at_retries(
    tenant: HelmTenant, helm: AdminHelm, driver: jobs.JobDriver
) -> None:
    release = tenant.release("flaky", chart="hooks", values={"hook": "Failed"}, install={"remediation": {"retries": 1}})
    stalled = tenant.stalled("flaky", "RetriesExceeded")
    assert condition(stalled, "Stalled")["message"] == "Failed to install after 2 attempt(s)"
    ready_when_stalled = condition(stalled)
    assert stalled["status"]["installFailures"] == 2
    hook = f"{release}-hook"
    assert driver.count(tenant.target, hook, "Failed") == 2, driver.outcomes(tenant.target)
    history_when_stalled = helm.history(release, tenant.target)
    # A requested reconcile of the stalled release runs (lastHandledReconcileAt) but installs nothing.
    tenant.handled("flaky", tenant.request("flaky"))
    assert driver.count(tenant.target, hook, "Failed") == 2, "a stalled release is not retried"
    assert helm.history(release, tenant.target) == history_when_stalled

    driver.overrides[tenant.target] = jobs.COMPLETE  # what the hook needed is there now
    token = tenant.request("flaky", annotations={RESET_AT: "token"})
    tenant.handled("flaky", token)
    # Flux: with the failure count reset, a failed release is upgraded ("conditions have changed").
    done = tenant.ready("flaky", "UpgradeSucceeded")
    assert condition(done, "Stalled") == {} or condition(done, "Stalled")["status"] == "False"
    assert statuses(helm.history(release, tenant.target))[-1] == (2, "deployed")
    assert driver.count(tenant.target, hook, "Complete") == 1
    # Flux marks only Stalled when retries run out; Ready keeps the last action's failure.
    stalled_ready = (ready_when_stalled["status"], ready_when_stalled["reason"])
    assert stalled_ready == ("False", "InstallFailed"), ready_when_stalled
    # The install remediation's remediateLastFailure defaults to false: the last failed install stays.
    assert statuses(history_when_stalled) == [(1, "failed")], history_when_stalled


def test_an_upgrade_failure_is_rolled_back(tenant: HelmTenant, helm: AdminHelm) -> None:
    release = tenant.release(
        "roll", chart="hooks",
        upgrade={"remediation": {"retries": 0, "remediateLastFailure": True, "strategy": "rollback"}},
    )  # fmt: skip
    tenant.ready("roll", "InstallSucceeded")
    tenant.patch("roll", {"spec": {"values": {"upgradeHook": "Failed"}}})
    stalled = tenant.stalled("roll", "RetriesExceeded")

    history = helm.history(release, tenant.target)
    assert statuses(history) == [(1, "superseded"), (2, "failed"), (3, "deployed")]
    assert history[-1]["description"] == "Rollback to 1"
    assert helm.values(release, tenant.target) == {}, "the rollback restored revision 1's values"
    assert condition(stalled, "Remediated")["status"] == "True"
    assert condition(stalled, "Remediated")["reason"] == "RollbackSucceeded"
    assert condition(stalled, "Stalled")["message"] == "Failed to upgrade after 1 attempt(s)"
    assert tenant.events("RollbackSucceeded")


def test_the_uninstall_strategy_uninstalls_a_failed_upgrade_then_installs_afresh(
    tenant: HelmTenant, helm: AdminHelm
) -> None:
    release = tenant.release("fresh", chart="hooks", upgrade={"remediation": {"retries": 1, "strategy": "uninstall"}})
    tenant.ready("fresh", "InstallSucceeded")
    tenant.patch("fresh", {"spec": {"values": {"upgradeHook": "Failed"}}})
    until(lambda: tenant.events("UninstallSucceeded"), bool, timeout=90, what="an UninstallSucceeded event")
    tenant.ready("fresh", "InstallSucceeded")
    history = helm.history(release, tenant.target)
    assert statuses(history) == [(1, "deployed")], "the failed release was uninstalled, then installed afresh"
    assert history[0]["description"] == "Install complete"
    assert helm.values(release, tenant.target) == {"upgradeHook": "Failed"}


def test_a_failing_test_hook_marks_test_success_false(tenant: HelmTenant, driver: jobs.JobDriver) -> None:
    release = tenant.release("tested", chart="hooks", values={"test": "Failed"}, test={"enable": True})
    good = tenant.release("passing", chart="hooks", test={"enable": True})
    failed = tenant.failed("tested", "TestFailed", type_="TestSuccess")
    message = condition(failed, "TestSuccess")["message"]
    assert one_line(message) and f"{tenant.target}/{release}.v1" in message, message
    assert driver.count(tenant.target, f"{release}-test", "Failed") >= 1
    hooks = failed["status"]["history"][0].get("testHooks") or {}
    assert [h.get("phase") for h in hooks.values()] == ["Failed"], hooks

    passed = tenant.ready("passing", "TestSucceeded")
    assert condition(passed, "TestSuccess")["status"] == "True"
    hooks = passed["status"]["history"][0]["testHooks"]
    assert [h.get("phase") for h in hooks.values()] == ["Succeeded"], hooks
    assert driver.count(tenant.target, f"{good}-test", "Complete") >= 1
    # Ready follows TestSuccess when tests count (Flux's summarize), also once retries ran out.
    assert (condition(failed)["status"], condition(failed)["reason"]) == ("False", "TestFailed"), condition(failed)


def test_a_release_left_pending_upgrade_is_unlocked_and_recovered(
    tenant: HelmTenant, helm: AdminHelm, charts: HelmRepoServer, controllers: Reconcilers, tmp_path: Path
) -> None:
    release = tenant.release("stuck", chart="hooks", values={"greeting": "spec"})
    tenant.ready("stuck", "InstallSucceeded")
    tenant.patch("stuck", {"spec": {"suspend": True}})
    # A suspended object records nothing on itself, but its worker sets the suspend gauge: once it
    # reads 1, any reconcile that was in flight has ended and none will run helm beside the admin's.
    labels = {"kind": "HelmRelease", "name": "stuck", "namespace": tenant.config}
    until(
        lambda: controllers.manager.metrics.registry.get_sample_value("gotk_suspend_status", labels),
        lambda value: value == 1,
        what="the controller saw the suspension",
    )

    # An admin's helm upgrade whose post-upgrade hook never finishes, killed mid-way.
    archive = str(charts.root / "hooks-1.0.0.tgz")
    kill_mid_upgrade(helm, tmp_path, release, tenant.target, archive, "--reuse-values", "--set", "upgradeHook=Never")
    assert statuses(helm.history(release, tenant.target)) == [(1, "deployed"), (2, "pending-upgrade")]

    tenant.patch("stuck", {"spec": {"suspend": False}})
    until(
        lambda: helm.history(release, tenant.target),
        lambda h: len(h) >= 3 and h[-1]["status"] == "deployed",
        timeout=120,
        what="the controller unlocked the release and released again",
    )
    tenant.ready("stuck")
    history = helm.history(release, tenant.target)
    assert history[1]["status"] == "failed" and "unlocked" in history[1]["description"].lower(), history[1]
    assert helm.values(release, tenant.target) == {"greeting": "spec"}


# --- values ---------------------------------------------------------------------------------------


def test_values_from_with_target_path_and_optional(tenant: HelmTenant, helm: AdminHelm) -> None:
    tenant.core.create_namespaced_config_map(
        tenant.config,
        {"metadata": {"name": "base"}, "data": {"values.yaml": "greeting: from-configmap\nlist: [1, 2]\nkeep: cm\n"}},
    )
    tenant.core.create_namespaced_secret(
        tenant.config, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cret-value"}}
    )
    release = tenant.release(
        "merged",
        values={"greeting": "inline-wins"},
        valuesFrom=[
            {"kind": "ConfigMap", "name": "base"},
            {"kind": "Secret", "name": "creds", "valuesKey": "token", "targetPath": "auth.token"},
            {"kind": "ConfigMap", "name": "absent", "optional": True},
            {"kind": "ConfigMap", "name": "base", "valuesKey": "missing.yaml", "optional": True},
        ],
    )
    done = tenant.ready("merged", "InstallSucceeded")
    expected = {"greeting": "inline-wins", "list": [1, 2], "keep": "cm", "auth": {"token": "s3cret-value"}}
    assert helm.values(release, tenant.target) == expected
    assert cm_values(tenant, f"{release}-0") == expected
    assert "s3cret-value" not in json.dumps(done), "a Secret's value reached the HelmRelease"
    assert not any("s3cret-value" in m for m in tenant.events())


def test_the_watch_label_triggers_an_upgrade(tenant: HelmTenant, helm: AdminHelm) -> None:
    tenant.core.create_namespaced_config_map(
        tenant.config,
        {"metadata": {"name": "watched", "labels": {"reconcile.fluxcd.io/watch": "Enabled"}},
         "data": {"values.yaml": "greeting: first\n"}},
    )  # fmt: skip
    release = tenant.release("watcher", interval="1h", valuesFrom=[{"kind": "ConfigMap", "name": "watched"}])
    tenant.ready("watcher", "InstallSucceeded")
    tenant.core.patch_namespaced_config_map("watched", tenant.config, {"data": {"values.yaml": "greeting: second\n"}})
    until(
        lambda: helm.history(release, tenant.target),
        lambda h: statuses(h) == [(1, "superseded"), (2, "deployed")],
        timeout=60,
        what="an upgrade triggered by the watched ConfigMap",
    )
    assert helm.values(release, tenant.target) == {"greeting": "second"}
    tenant.ready("watcher", "UpgradeSucceeded")


# --- rendering: post-renderers and drift ----------------------------------------------------------


def test_post_renderers_patch_is_applied(tenant: HelmTenant) -> None:
    patch = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: any\n  labels:\n    patched: by-kustomize\n"
    release = tenant.release(
        "patched", postRenderers=[{"kustomize": {"patches": [{"target": {"kind": "ConfigMap"}, "patch": patch}]}}]
    )
    tenant.ready("patched", "InstallSucceeded")
    for name in (f"{release}-0", f"{release}-1"):
        labels = tenant.core.read_namespaced_config_map(name, tenant.target).metadata.labels
        assert labels["patched"] == "by-kustomize", labels
        assert (labels[NAME_LABEL], labels[NAMESPACE_LABEL]) == ("patched", tenant.config)


def test_drift_is_detected_and_repaired_in_enabled_mode(tenant: HelmTenant, helm: AdminHelm) -> None:
    release = tenant.release("drifty", driftDetection={"mode": "enabled"})
    tenant.ready("drifty", "InstallSucceeded")
    rendered = tenant.configmaps()
    tenant.core.patch_namespaced_config_map(f"{release}-0", tenant.target, {"data": {"chartVersion": "edited"}})
    tenant.core.delete_namespaced_config_map(f"{release}-1", tenant.target)

    token = tenant.request("drifty")
    tenant.handled("drifty", token)
    until(tenant.configmaps, lambda cms: cms == rendered, timeout=60, what="drift repaired")
    assert len(helm.history(release, tenant.target)) == 1, "drift is repaired without a new release revision"
    tenant.handled("drifty", tenant.request("drifty"))  # a reconcile after the repair finds no drift
    corrected = tenant.events("DriftCorrected", "drifty")
    detected = tenant.events("DriftDetected", "drifty")
    target = f"ConfigMap/{tenant.target}/{release}"
    # One drift, one repair, as Flux reports it: the deleted object is created, the edited one configured.
    assert len(detected) == 1 and f"{target}-0 changed" in detected[0] and f"{target}-1 removed" in detected[0], (
        " || ".join(detected)
    )
    assert len(corrected) == 1 and f"{target}-1 created" in corrected[0], " || ".join(corrected)


def test_drift_in_warn_mode_is_reported_not_repaired(tenant: HelmTenant) -> None:
    watched = tenant.release("warned", driftDetection={"mode": "warn"})
    tenant.ready("warned", "InstallSucceeded")
    tenant.core.patch_namespaced_config_map(f"{watched}-0", tenant.target, {"data": {"chartVersion": "edited"}})
    tenant.handled("warned", tenant.request("warned"))
    warned = until(lambda: tenant.events("DriftDetected", "warned"), bool, timeout=30, what="a DriftDetected event")
    edited = f"ConfigMap/{tenant.target}/{watched}"
    assert f"{edited}-0 changed" in warned[0] and f"{edited}-1" not in warned[0], " || ".join(warned)
    assert tenant.configmaps()[f"{watched}-0"]["chartVersion"] == "edited"


# --- tenancy --------------------------------------------------------------------------------------


def test_cross_namespace_references_are_refused(tenant: HelmTenant, helm: AdminHelm) -> None:
    tenant.release("cross", source_namespace=tenant.other)
    refused = tenant.failed("cross", "AccessDenied")
    assert condition(refused)["message"] == (
        f"cross-namespace references are not allowed: cannot access HelmRepository {tenant.other}/charts"
    )
    assert condition(refused, "Stalled")["status"] == "True"

    tenant.create(HELM_RELEASE, "by-ref", {
        "interval": "10m", "targetNamespace": tenant.target,
        "chartRef": {"kind": "HelmChart", "name": "theirs", "namespace": tenant.other},
    })  # fmt: skip
    by_ref = tenant.failed("by-ref", "AccessDenied")
    assert condition(by_ref)["message"] == (
        f"cross-namespace references are not allowed: cannot access HelmChart {tenant.other}/theirs"
    )
    assert condition(by_ref, "Stalled")["status"] == "True"
    assert tenant.configmaps() == {} and helm.releases(tenant.target) == []


def test_a_namespace_without_flux_applier_is_refused(tenant: HelmTenant, helm: AdminHelm, authority: PrivateCA) -> None:
    # The seed's legacy layout: the HelmRelease and its source in the workload namespace, no applier there.
    tenant.core.create_namespaced_secret(
        tenant.other, {"metadata": {"name": "charts-ca"}, "stringData": {"ca.crt": authority.ca_pem.decode()}}
    )
    tenant.helm_repository(namespace=tenant.other)
    source = {"kind": "HelmRepository", "name": "charts"}
    chart = {"spec": {"chart": "cms", "version": "1.0.0", "sourceRef": source}, "metadata": {"labels": tenant.labels()}}
    tenant.create(HELM_RELEASE, "legacy", {"interval": "10m", "timeout": "20s", "chart": chart}, namespace=tenant.other)
    refused = tenant.wait(
        "legacy",
        lambda o: condition(o).get("status") == "False" and "flux-applier" in condition(o).get("message", ""),
        "refused for want of flux-applier",
        timeout=90,
        namespace=tenant.other,
    )
    message = condition(refused)["message"]
    assert f"system:serviceaccount:{tenant.other}:flux-applier" in message and one_line(message), message
    assert condition(refused)["reason"] in ("InstallFailed", "ActionPlanError", "AccessDenied"), condition(refused)
    assert helm.releases(tenant.other) == []


# --- lifecycle: delete, chartRef, adoption --------------------------------------------------------


def test_deleting_the_helm_release_uninstalls(tenant: HelmTenant, helm: AdminHelm) -> None:
    release = tenant.release("doomed")
    tenant.ready("doomed", "InstallSucceeded")
    assert tenant.helm_chart("doomed") is not None
    tenant.core.create_namespaced_config_map(tenant.target, {"metadata": {"name": "bystander"}})
    tenant.custom.delete_namespaced_custom_object(
        HELM_RELEASE.group, HELM_RELEASE.version, tenant.config, HELM_RELEASE.plural, "doomed"
    )

    def gone() -> bool:
        try:
            tenant.get("doomed")
        except client.ApiException as error:
            return bool(error.status == 404)
        return False

    until(gone, bool, timeout=60, what="HelmRelease deleted (finalizer removed)")
    assert helm.history(release, tenant.target) == []
    assert set(tenant.configmaps()) == {"bystander"}, "only the release's objects are deleted"
    assert tenant.helm_chart("doomed") is None


def test_the_helm_chart_is_garbage_collected_when_the_release_moves_to_chart_ref(
    tenant: HelmTenant, helm: AdminHelm
) -> None:
    release = tenant.release("moving")
    tenant.ready("moving", "InstallSucceeded")
    generated = tenant.helm_chart("moving")
    assert generated is not None and generated["spec"]["chart"] == "cms"
    tenant.create(HELM_CHART, "direct", {
        "chart": "cms", "version": "1.0.0", "interval": "1m",
        "sourceRef": {"kind": "HelmRepository", "name": "charts"},
    })  # fmt: skip
    until(lambda: tenant.get("direct", HELM_CHART), lambda c: condition(c).get("status") == "True",
          what="HelmChart direct Ready")  # fmt: skip

    tenant.patch("moving", {"spec": {"chart": None, "chartRef": {"kind": "HelmChart", "name": "direct"}}})
    until(lambda: tenant.helm_chart("moving"), lambda c: c is None, timeout=60, what="generated HelmChart deleted")
    tenant.ready("moving")
    assert len(helm.history(release, tenant.target)) == 1, "same chart, same values: no new revision"


def test_a_release_installed_by_upstream_flux_is_adopted_without_reinstall(
    tenant: HelmTenant, helm: AdminHelm, charts: HelmRepoServer, admin_api: client.ApiClient
) -> None:
    """Upstream Flux stores a release in the HelmRelease's namespace, its objects in the target namespace."""
    release = release_name("adopted", tenant.target)
    archive = str(charts.root / "cms-1.0.0.tgz")
    helm("install", release, archive, "-n", tenant.target, "--set", "greeting=kept")
    record = f"sh.helm.release.v1.{release}.v1"
    moved = tenant.core.read_namespaced_secret(record, tenant.target)
    tenant.core.create_namespaced_secret(tenant.config, {
        "metadata": {"name": record, "labels": moved.metadata.labels}, "type": moved.type, "data": moved.data,
    })  # fmt: skip
    tenant.core.delete_namespaced_secret(record, tenant.target)
    objects = {c.metadata.name: c.metadata.uid for c in tenant.core.list_namespaced_config_map(tenant.target).items}

    tenant.release("adopted", values={"greeting": "kept"})
    adopted = tenant.ready("adopted")
    assert list(release_secrets(admin_api, tenant.target, release)) == [record], "moved into the target namespace"
    assert release_secrets(admin_api, tenant.config, release) == {}
    [entry] = helm.history(release, tenant.target)
    assert (entry["revision"], entry["status"]) == (1, "deployed"), "no reinstall, no upgrade"
    assert adopted["status"]["history"][0]["version"] == 1
    now = {c.metadata.name: c.metadata.uid for c in tenant.core.list_namespaced_config_map(tenant.target).items}
    assert now == objects, "the objects were not recreated"

    tenant.patch("adopted", {"spec": {"values": {"greeting": "changed"}}})
    tenant.ready("adopted", "UpgradeSucceeded")
    assert statuses(helm.history(release, tenant.target)) == [(1, "superseded"), (2, "deployed")]


def test_storage_namespace_set_to_the_target_namespace_is_honoured(
    tenant: HelmTenant, helm: AdminHelm, admin_api: client.ApiClient
) -> None:
    """The hand-over to upstream Flux: with storageNamespace = targetNamespace, both store in one place."""
    release = tenant.release("handover", storageNamespace=tenant.target)
    done = tenant.ready("handover", "InstallSucceeded")
    assert done["status"]["storageNamespace"] == tenant.target
    assert statuses(helm.history(release, tenant.target)) == [(1, "deployed")]
    assert release_secrets(admin_api, tenant.config, release) == {}


# --- bad input ------------------------------------------------------------------------------------


def test_bad_inputs_fail_with_fluxs_reason_and_a_one_line_message(
    tenant: HelmTenant, helm: AdminHelm, driver: jobs.JobDriver
) -> None:
    vals = {"metadata": {"name": "vals"}, "data": {"values.yaml": "a: 1\n"}}
    tenant.core.create_namespaced_config_map(tenant.config, vals)
    tenant.core.create_namespaced_secret(tenant.config, {"metadata": {"name": "sec"}, "stringData": {"token": "x"}})
    tenant.helm_repository("nowhere", url=f"https://127.0.0.1:{unused_port()}/", certSecretRef={"name": "charts-ca"})
    cases: dict[str, tuple[str, dict[str, Any], str, str]] = {
        # name: (chart, spec, reason, a word the message must hold)
        "render": ("broken", {}, "InstallFailed", "value x is required"),
        "nokey": ("cms", {"valuesFrom": [{"kind": "ConfigMap", "name": "vals", "valuesKey": "nope.yaml"}]},
                  "ValuesError", "nope.yaml"),
        "noobject": ("cms", {"valuesFrom": [{"kind": "Secret", "name": "absent"}]}, "ValuesError", "absent"),
        "path": ("cms", {"valuesFrom": [{"kind": "Secret", "name": "sec", "valuesKey": "token",
                                         "targetPath": "list[99999]"}]}, "ValuesError", "list[99999]"),
        "timeout": ("hooks", {"values": {"hook": "Never"}, "timeout": "3s"}, "InstallFailed", "hook"),
        "hook": ("hooks", {"values": {"hook": "Failed"}}, "InstallFailed", "hook"),
        "test": ("hooks", {"values": {"test": "Failed"}, "test": {"enable": True}}, "TestFailed", "test"),
        "norepo": ("cms", {"repository": "nowhere"}, "SourceNotReady", "not ready"),
        "storage": ("cms", {"storageNamespace": tenant.other}, "UnsupportedField", "storageNamespace"),
    }  # fmt: skip
    releases = {name: tenant.release(name, chart=chart, **spec) for name, (chart, spec, _, _) in cases.items()}

    problems = []
    for name, (_, _, reason, word) in cases.items():
        try:
            obj = tenant.failed(name, reason, timeout=60)
        except AssertionError as error:
            problems.append(f"{name}: {error}")
            continue
        message = condition(obj)["message"]
        if not one_line(message) or word not in message:
            problems.append(f"{name}: message {message!r} is not one line or lacks {word!r}")
    assert not problems, "\n".join(problems)
    assert "HelmChart" in condition(tenant.get("norepo"))["message"]
    assert condition(tenant.get("storage"), "Stalled")["status"] == "True"
    for name in ("render", "nokey", "noobject", "path", "norepo", "storage"):
        assert helm.history(releases[name], tenant.target) == [], f"{name} left a release behind"


def unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
