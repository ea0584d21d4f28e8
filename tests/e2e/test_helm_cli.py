"""``fluxwarden get|reconcile|suspend|resume helmrelease`` against a real API server with Flux's CRDs.

``get`` reads HelmReleases whose status the test writes itself: no controller is needed to list them.
``reconcile`` and ``resume`` run against the real source and helm controllers (real helm v4), for a
tenant as TENANCY.md has it (flux-applier of the configuration namespace, a target namespace).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.helm.api import FORCE_AT, HELM_RELEASE, RESET_AT
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.runtime.prologue import REQUESTED_AT
from fluxwarden.controllers.source.api import HELM_CHART, HELM_REPOSITORY
from tests.support.control_plane import ControlPlane
from tests.support.helm_repo import HelmRepoServer
from tests.support.tenants import condition, grant
from tests.support.wait import until

SHARD = "sharding.fluxcd.io/key"
SHARD_VALUE = "helm-cli"
LABELS = {SHARD: SHARD_VALUE}
CHARTS = {"kind": "HelmRepository", "name": "charts"}
UPGRADED = "Helm upgrade succeeded for release web/web.v2 with chart app@2.1.0"


def _entry(version: str, namespace: str, name: str) -> dict[str, Any]:
    """A ``status.history`` snapshot with every field the CRD requires."""
    stamp = "2026-01-01T00:00:00Z"
    return {"chartName": "app", "chartVersion": version, "configDigest": "sha256:0", "digest": "sha256:1",
            "firstDeployed": stamp, "lastDeployed": stamp, "name": name, "namespace": namespace,
            "status": "deployed", "version": 1}  # fmt: skip


@pytest.fixture(scope="module")
def controllers(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source", "helm"), label_selector=f"{SHARD}={SHARD_VALUE}")


@pytest.fixture(scope="module")
def helm_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HelmRepoServer]:
    with HelmRepoServer(tmp_path_factory.mktemp("charts")) as server:
        server.add_chart("app", "1.0.0")
        yield server


@pytest.fixture
def tenant(
    admin_api: client.ApiClient, namespace_factory: Callable[[], str], controllers: Reconcilers,
    helm_repo: HelmRepoServer,
) -> tuple[str, str]:  # fmt: skip
    """``(config, target)``: flux-applier of config may write there and to target; the HelmRepository."""
    config, target = namespace_factory(), namespace_factory()
    client.CoreV1Api(admin_api).create_namespaced_service_account(config, {"metadata": {"name": "flux-applier"}})
    grant(admin_api, config, config)
    grant(admin_api, target, config)
    _create(admin_api, HELM_REPOSITORY, config, "charts", {"url": helm_repo.url, "interval": "1h"})
    return config, target


def _release(api: client.ApiClient, config: str, target: str, name: str, **spec: Any) -> dict[str, Any]:
    """A HelmRelease of chart app from the tenant's repository; its HelmChart carries the shard label."""
    template = {"chart": "app", "version": spec.pop("version", "1.x"), "sourceRef": CHARTS}
    chart = {"metadata": {"labels": LABELS}, "spec": template}
    return _create(api, HELM_RELEASE, config, name, {"interval": "1h", "targetNamespace": target, "chart": chart,
                                                      **spec})  # fmt: skip


def _ready(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return until(lambda: _get(api, HELM_RELEASE, namespace, name), lambda o: condition(o).get("status") == "True",
                 timeout=90, what=f"HelmRelease {name} Ready")  # fmt: skip


def _cli(control_plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}
    command = [sys.executable, "-m", "fluxwarden.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=180, check=False)


def _create(api: client.ApiClient, resource: Resource, namespace: str, name: str, spec: dict[str, Any],
            labels: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    body = {"apiVersion": resource.api_version, "kind": resource.kind,
            "metadata": {"name": name, "namespace": namespace, "labels": LABELS if labels is None else labels},
            "spec": spec}  # fmt: skip
    created: dict[str, Any] = client.CustomObjectsApi(api).create_namespaced_custom_object(
        resource.group, resource.version, namespace, resource.plural, body
    )
    return created


def _status(api: client.ApiClient, namespace: str, name: str, status: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        HELM_RELEASE.group, HELM_RELEASE.version, namespace, HELM_RELEASE.plural, name, {"status": status}
    )


def _get(api: client.ApiClient, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        resource.group, resource.version, namespace, resource.plural, name
    )
    return found


def _annotations(api: client.ApiClient, namespace: str, name: str, resource: Resource = HELM_RELEASE) -> dict[str, str]:
    return dict(_get(api, resource, namespace, name)["metadata"].get("annotations") or {})


def _condition(status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": "Ready", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip


def _chart_template() -> dict[str, Any]:
    return {
        "interval": "1h",
        "chart": {"spec": {"chart": "app", "sourceRef": {"kind": "HelmRepository", "name": "charts"}}},
    }


def test_get_helmreleases_prints_flux_columns(
    control_plane: ControlPlane, admin_api: client.ApiClient, namespace_factory: Callable[[], str],
    flux_crds: list[str],
) -> None:  # fmt: skip
    first, second = namespace_factory(), namespace_factory()
    # No shard label: no controller of this run reconciles these; the status is the test's own.
    _create(admin_api, HELM_RELEASE, first, "web", _chart_template(), labels={})
    _status(admin_api, first, "web", {
        "history": [_entry("2.1.0", "web", "web"), _entry("2.0.0", "web", "web")],
        "lastAttemptedRevision": "9.9.9",
        "conditions": [_condition("True", "UpgradeSucceeded", UPGRADED)],
    })  # fmt: skip
    _create(admin_api, HELM_RELEASE, first, "db", {**_chart_template(), "suspend": True}, labels={})
    failed = _condition("False", "InstallFailed", "Helm install failed: timeout")
    _status(admin_api, first, "db", {"lastAttemptedRevision": "0.3.0", "conditions": [failed]})
    by_ref = {"interval": "1h", "chartRef": {"kind": "OCIRepository", "name": "c"}}
    _create(admin_api, HELM_RELEASE, second, "cache", by_ref, labels={})

    listed = _cli(control_plane, "get", "helmreleases", "-n", first)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    # REVISION is the latest history entry's chart version, else the last attempted one (flux's choice).
    assert [r.split(None, 4) for r in rows] == [
        ["db", "0.3.0", "True", "False", "Helm install failed: timeout"],
        ["web", "2.1.0", "False", "True", UPGRADED],
    ]
    everywhere = _cli(control_plane, "get", "hr", "-A")
    assert everywhere.returncode == 0, everywhere.stderr
    header, *rows = everywhere.stdout.splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    assert [second, "cache", "False", "Unknown", "waiting to be reconciled"] in [r.split(None, 4) for r in rows]
    assert [first, "web", "2.1.0", "False", "True"] in [r.split()[:5] for r in rows]


def _version(api: client.ApiClient, namespace: str, name: str) -> int:
    return int(_get(api, HELM_RELEASE, namespace, name)["status"]["history"][0]["version"])


def test_reconcile_with_source_force_and_reset(
    control_plane: ControlPlane, admin_api: client.ApiClient, tenant: tuple[str, str]
) -> None:
    config, target = tenant
    _release(admin_api, config, target, "web")
    assert condition(_ready(admin_api, config, "web"))["reason"] == "InstallSucceeded"

    done = _cli(control_plane, "reconcile", "helmrelease", "web", "-n", config, "--with-source")
    assert done.returncode == 0, done.stderr
    lines, chart = done.stdout.splitlines(), f"{config}-web"
    # Flux's order: the HelmRepository, the HelmChart template the controller made, then the release.
    assert lines.index(f"► annotating HelmRepository charts in {config} namespace") < lines.index(
        f"► annotating HelmChart {chart} in {config} namespace"
    ) < lines.index(f"► annotating HelmRelease web in {config} namespace")  # fmt: skip
    assert lines[-2:] == ["✔ HelmRelease reconciliation completed", "✔ applied revision 1.0.0"]
    for resource, name in ((HELM_REPOSITORY, "charts"), (HELM_CHART, chart), (HELM_RELEASE, "web")):
        obj = _get(admin_api, resource, config, name)
        assert obj["status"]["lastHandledReconcileAt"] == obj["metadata"]["annotations"][REQUESTED_AT], name
    assert _version(admin_api, config, "web") == 1, "nothing changed: no upgrade"
    assert FORCE_AT not in _annotations(admin_api, config, "web")

    chart_request = _annotations(admin_api, config, chart, HELM_CHART)[REQUESTED_AT]
    forced = _cli(control_plane, "reconcile", "hr", "web", "-n", config, "--force")
    assert forced.returncode == 0, forced.stderr
    annotations = _annotations(admin_api, config, "web")
    assert annotations[FORCE_AT] == annotations[REQUESTED_AT], "forceAt must equal requestedAt to count"
    released = _get(admin_api, HELM_RELEASE, config, "web")
    assert released["status"]["lastHandledForceAt"] == annotations[FORCE_AT]
    assert released["status"]["history"][0]["version"] == 2, "the controller ran a forced upgrade"
    assert _annotations(admin_api, config, chart, HELM_CHART)[REQUESTED_AT] == chart_request, "no --with-source"

    reset = _cli(control_plane, "reconcile", "hr", "web", "-n", config, "--reset")
    assert reset.returncode == 0, reset.stderr
    annotations, status = _annotations(admin_api, config, "web"), _get(admin_api, HELM_RELEASE, config, "web")["status"]
    assert annotations[RESET_AT] == annotations[REQUESTED_AT] == status["lastHandledResetAt"]
    assert annotations[FORCE_AT] != annotations[REQUESTED_AT] and status["history"][0]["version"] == 2


def test_reconcile_with_source_follows_chart_ref(
    control_plane: ControlPlane, admin_api: client.ApiClient, tenant: tuple[str, str]
) -> None:
    config, target = tenant
    _create(admin_api, HELM_CHART, config, "shared", {"chart": "app", "interval": "1h", "sourceRef": CHARTS})
    by_ref = {"interval": "1h", "targetNamespace": target, "chartRef": {"kind": "HelmChart", "name": "shared"}}
    _create(admin_api, HELM_RELEASE, config, "by-ref", by_ref)
    _ready(admin_api, config, "by-ref")
    done = _cli(control_plane, "reconcile", "hr", "by-ref", "-n", config, "--with-source")
    assert done.returncode == 0, done.stderr
    assert f"► annotating HelmChart shared in {config} namespace" in done.stdout
    assert f"► annotating HelmRepository charts in {config} namespace" in done.stdout
    shared = _get(admin_api, HELM_CHART, config, "shared")
    assert shared["status"]["lastHandledReconcileAt"] == shared["metadata"]["annotations"][REQUESTED_AT]

    external = {"interval": "1h", "chartRef": {"kind": "ExternalArtifact", "name": "app"}}
    _create(admin_api, HELM_RELEASE, config, "external", external, labels={})
    refused = _cli(control_plane, "reconcile", "hr", "external", "-n", config, "--with-source")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"✗ --with-source: HelmRelease {config}/external uses source kind 'ExternalArtifact', which fluxwarden does "
        f"not reconcile; reconcile ExternalArtifact {config}/app with flux"
    )
    assert REQUESTED_AT not in _annotations(admin_api, config, "external"), "nothing annotated on a refusal"


def test_suspend_refuse_resume_and_time_out(
    control_plane: ControlPlane, admin_api: client.ApiClient, tenant: tuple[str, str]
) -> None:
    config, target = tenant
    _release(admin_api, config, target, "web")
    _ready(admin_api, config, "web")
    assert _cli(control_plane, "suspend", "helmrelease", "web", "-n", config).returncode == 0
    assert _get(admin_api, HELM_RELEASE, config, "web")["spec"]["suspend"] is True
    refused = _cli(control_plane, "reconcile", "hr", "web", "-n", config)
    assert refused.returncode == 1 and refused.stderr.strip() == (
        f"✗ HelmRelease {config}/web is suspended; resume it to reconcile"
    )

    resumed = _cli(control_plane, "resume", "hr", "web", "-n", config)
    assert resumed.returncode == 0, resumed.stderr
    obj = _get(admin_api, HELM_RELEASE, config, "web")
    assert obj["spec"]["suspend"] is False
    assert obj["status"]["lastHandledReconcileAt"] == obj["metadata"]["annotations"][REQUESTED_AT], "resume waited"
    assert resumed.stdout.splitlines()[-2:] == ["✔ HelmRelease reconciliation completed", "✔ applied revision 1.0.0"]

    # Outside the controllers' shard nothing handles the request: the CLI says so, in one line.
    name = f"orphan-{uuid.uuid4().hex[:6]}"
    _create(admin_api, HELM_RELEASE, config, name, _chart_template(), labels={})
    timed_out = _cli(control_plane, "reconcile", "hr", name, "-n", config, "--timeout", "1s")
    assert timed_out.returncode == 1
    assert timed_out.stderr.strip() == (
        f"✗ HelmRelease {config}/{name} was not reconciled within 1s; is the controller running?"
    )
    missing = _cli(control_plane, "reconcile", "hr", "nope", "-n", config)
    assert missing.returncode == 1 and "nope" in missing.stderr and "Traceback" not in missing.stderr


def test_a_failed_release_fails_the_command(
    control_plane: ControlPlane, admin_api: client.ApiClient, tenant: tuple[str, str]
) -> None:
    """Ready=False once the request was handled: exit 1, one line with the object and its message."""
    config, target = tenant
    _release(admin_api, config, target, "missing", version="9.x")  # the repository has only 1.0.0
    until(lambda: _get(admin_api, HELM_RELEASE, config, "missing"), lambda o: condition(o).get("status") == "False",
          timeout=60, what="the HelmRelease failing on its chart")  # fmt: skip
    failed = _cli(control_plane, "reconcile", "hr", "missing", "-n", config, "--timeout", "60s")
    assert failed.returncode == 1
    obj = _get(admin_api, HELM_RELEASE, config, "missing")
    assert obj["status"]["lastHandledReconcileAt"] == obj["metadata"]["annotations"][REQUESTED_AT]
    assert failed.stderr.strip() == f"✗ HelmRelease {config}/missing: {condition(obj)['message']}"
    assert "9.x" in condition(obj)["message"], condition(obj)
