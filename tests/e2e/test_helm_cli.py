"""``fluxwarden get|reconcile|suspend|resume helmrelease`` against a real API server with Flux's CRDs.

``get`` reads HelmReleases whose status the test writes itself: no controller is needed to list them.
``reconcile`` and ``resume`` need something that handles ``requestedAt``: the real source controller
for the HelmRepository and HelmChart (``--with-source``), and for the HelmRelease a STAND-IN, a
controller on the real runtime that runs no helm and records what Flux's helm-controller records of a
request (``lastHandledReconcileAt``, and ``lastHandledForceAt``/``lastHandledResetAt`` only when the
annotation equals ``requestedAt``). It proves what the CLI writes and waits for, not helm's work.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.helm.api import FORCE_AT, HELM_RELEASE, RESET_AT
from fluxwarden.controllers.runtime.controller import Context, Success
from fluxwarden.controllers.runtime.kube import Kube, Resource
from fluxwarden.controllers.runtime.manager import Manager, ManagerOptions
from fluxwarden.controllers.runtime.prologue import REQUESTED_AT
from fluxwarden.controllers.source.api import HELM_CHART, HELM_REPOSITORY
from tests.support.control_plane import ControlPlane
from tests.support.helm_repo import HelmRepoServer
from tests.support.wait import until

SHARD = "sharding.fluxcd.io/key"
SHARD_VALUE = "helm-cli"
LABELS = {SHARD: SHARD_VALUE}
UPGRADED = "Helm upgrade succeeded for release web/web.v2 with chart app@2.1.0"


def _entry(version: str, namespace: str, name: str) -> dict[str, Any]:
    """A ``status.history`` snapshot with every field the CRD requires."""
    stamp = "2026-01-01T00:00:00Z"
    return {"chartName": "app", "chartVersion": version, "configDigest": "sha256:0", "digest": "sha256:1",
            "firstDeployed": stamp, "lastDeployed": stamp, "name": name, "namespace": namespace,
            "status": "deployed", "version": 1}  # fmt: skip


class _ReleaseStandIn:
    """STAND-IN for the helm controller (see the module docstring): records requests, runs no helm."""

    name = "helm-stand-in"
    resource = HELM_RELEASE
    finalizer = "test.fluxwarden.io/helm-stand-in"

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        annotations, status = obj["metadata"].get("annotations") or {}, obj["status"]
        requested = annotations.get(REQUESTED_AT)
        for annotation, field in ((FORCE_AT, "lastHandledForceAt"), (RESET_AT, "lastHandledResetAt")):
            if requested and annotations.get(annotation) == requested:
                status[field] = requested
        meta = obj["metadata"]
        status["history"] = [_entry("1.0.0", obj["spec"].get("targetNamespace", meta["namespace"]), meta["name"])]
        return Success(f"Helm upgrade succeeded for release {meta['namespace']}/{meta['name']}.v1 with chart app@1.0.0")

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        return


@pytest.fixture(scope="module")
def source(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source",), label_selector=f"{SHARD}={SHARD_VALUE}")


@pytest.fixture(scope="module")
def stand_in(admin_api: client.ApiClient, flux_crds: list[str]) -> Iterator[Manager]:
    options = ManagerOptions(label_selector=f"{SHARD}={SHARD_VALUE}", watch_timeout=30, backoff_base=0.2)
    manager = Manager(Kube(admin_api), [_ReleaseStandIn()], options)
    manager.start()
    yield manager
    manager.stop()


@pytest.fixture(scope="module")
def helm_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HelmRepoServer]:
    with HelmRepoServer(tmp_path_factory.mktemp("charts")) as server:
        server.add_chart("app", "1.0.0")
        yield server


def _cli(control_plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}
    command = [sys.executable, "-m", "fluxwarden.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


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


def _ready(status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": "Ready", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip


def _helm_chart(**extra: str) -> dict[str, Any]:
    return {"chart": "app", "interval": "1h", "sourceRef": {"kind": "HelmRepository", "name": "charts"}, **extra}


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
        "conditions": [_ready("True", "UpgradeSucceeded", UPGRADED)],
    })  # fmt: skip
    _create(admin_api, HELM_RELEASE, first, "db", {**_chart_template(), "suspend": True}, labels={})
    failed = _ready("False", "InstallFailed", "Helm install failed: timeout")
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


def _annotations(api: client.ApiClient, namespace: str, name: str, resource: Resource = HELM_RELEASE) -> dict[str, str]:
    return dict(_get(api, resource, namespace, name)["metadata"].get("annotations") or {})


def test_reconcile_with_source_force_and_reset(
    control_plane: ControlPlane, admin_api: client.ApiClient, namespace: str, source: Reconcilers,
    stand_in: Manager, helm_repo: HelmRepoServer,
) -> None:  # fmt: skip
    _create(admin_api, HELM_REPOSITORY, namespace, "charts", {"url": helm_repo.url, "interval": "1h"})
    # The template the helm controller makes, and records in status.helmChart: made here by the test.
    chart = f"{namespace}-podinfo"
    _create(admin_api, HELM_CHART, namespace, chart, _helm_chart(version="1.x"))
    _create(admin_api, HELM_RELEASE, namespace, "podinfo", _chart_template())
    until(lambda: _get(admin_api, HELM_CHART, namespace, chart), lambda c: "artifact" in (c.get("status") or {}),
          what="the HelmChart's first artifact")  # fmt: skip

    done = _cli(control_plane, "reconcile", "helmrelease", "podinfo", "-n", namespace, "--with-source")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # Source first (HelmRepository, then the HelmChart), then the release; each handled its own request.
    assert lines.index(f"► annotating HelmRepository charts in {namespace} namespace") < lines.index(
        f"► annotating HelmChart {chart} in {namespace} namespace"
    ) < lines.index(f"► annotating HelmRelease podinfo in {namespace} namespace")  # fmt: skip
    assert lines[-2:] == ["✔ HelmRelease reconciliation completed", "✔ applied revision 1.0.0"]
    for resource, name in ((HELM_REPOSITORY, "charts"), (HELM_CHART, chart), (HELM_RELEASE, "podinfo")):
        obj = _get(admin_api, resource, namespace, name)
        assert obj["status"]["lastHandledReconcileAt"] == obj["metadata"]["annotations"][REQUESTED_AT], name
    plain = _get(admin_api, HELM_RELEASE, namespace, "podinfo")
    assert FORCE_AT not in plain["metadata"]["annotations"] and "lastHandledForceAt" not in plain["status"]

    chart_request = _annotations(admin_api, namespace, chart, HELM_CHART)[REQUESTED_AT]
    forced = _cli(control_plane, "reconcile", "hr", "podinfo", "-n", namespace, "--force", "--reset")
    assert forced.returncode == 0, forced.stderr
    annotations, status = (
        _annotations(admin_api, namespace, "podinfo"),
        _get(admin_api, HELM_RELEASE, namespace, "podinfo")["status"],
    )
    token = annotations[REQUESTED_AT]
    assert annotations[FORCE_AT] == annotations[RESET_AT] == token != plain["status"]["lastHandledReconcileAt"]
    assert status["lastHandledReconcileAt"] == status["lastHandledForceAt"] == status["lastHandledResetAt"] == token
    assert _annotations(admin_api, namespace, chart, HELM_CHART)[REQUESTED_AT] == chart_request, "no --with-source"

    # The status.helmChart the controller recorded wins over the name flux would derive.
    _create(admin_api, HELM_CHART, namespace, "recorded", _helm_chart())
    _status(admin_api, namespace, "podinfo", {"helmChart": f"{namespace}/recorded"})
    again = _cli(control_plane, "reconcile", "hr", "podinfo", "-n", namespace, "--with-source")
    assert again.returncode == 0, again.stderr
    assert f"► annotating HelmChart recorded in {namespace} namespace" in again.stdout


def test_reconcile_with_source_follows_chart_ref(
    control_plane: ControlPlane, admin_api: client.ApiClient, namespace: str, source: Reconcilers,
    stand_in: Manager, helm_repo: HelmRepoServer,
) -> None:  # fmt: skip
    _create(admin_api, HELM_REPOSITORY, namespace, "charts", {"url": helm_repo.url, "interval": "1h"})
    _create(admin_api, HELM_CHART, namespace, "shared", _helm_chart())
    _create(
        admin_api,
        HELM_RELEASE,
        namespace,
        "by-ref",
        {"interval": "1h", "chartRef": {"kind": "HelmChart", "name": "shared"}},
    )
    done = _cli(control_plane, "reconcile", "hr", "by-ref", "-n", namespace, "--with-source")
    assert done.returncode == 0, done.stderr
    assert f"► annotating HelmChart shared in {namespace} namespace" in done.stdout
    assert f"► annotating HelmRepository charts in {namespace} namespace" in done.stdout

    _create(
        admin_api,
        HELM_RELEASE,
        namespace,
        "oci",
        {"interval": "1h", "chartRef": {"kind": "OCIRepository", "name": "app"}},
    )
    refused = _cli(control_plane, "reconcile", "hr", "oci", "-n", namespace, "--with-source")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (
        f"✗ --with-source: HelmRelease {namespace}/oci uses source kind 'OCIRepository', which fluxwarden does not "
        f"reconcile; reconcile OCIRepository {namespace}/app with flux"
    )
    assert REQUESTED_AT not in _annotations(admin_api, namespace, "oci"), "nothing annotated on a refusal"


def test_suspend_refuse_resume_and_time_out(
    control_plane: ControlPlane, admin_api: client.ApiClient, namespace: str, stand_in: Manager
) -> None:
    _create(admin_api, HELM_RELEASE, namespace, "web", _chart_template())
    assert _cli(control_plane, "suspend", "helmrelease", "web", "-n", namespace).returncode == 0
    assert _get(admin_api, HELM_RELEASE, namespace, "web")["spec"]["suspend"] is True
    refused = _cli(control_plane, "reconcile", "hr", "web", "-n", namespace)
    assert refused.returncode == 1 and f"HelmRelease {namespace}/web is suspended" in refused.stderr

    resumed = _cli(control_plane, "resume", "hr", "web", "-n", namespace)
    assert resumed.returncode == 0, resumed.stderr
    obj = _get(admin_api, HELM_RELEASE, namespace, "web")
    assert obj["spec"]["suspend"] is False
    assert obj["status"]["lastHandledReconcileAt"] == obj["metadata"]["annotations"][REQUESTED_AT], "resume waited"
    assert resumed.stdout.splitlines()[-2:] == ["✔ HelmRelease reconciliation completed", "✔ applied revision 1.0.0"]

    # Outside the stand-in's shard nothing handles the request: the CLI says so, in one line.
    name = f"orphan-{uuid.uuid4().hex[:6]}"
    _create(admin_api, HELM_RELEASE, namespace, name, _chart_template(), labels={})
    timed_out = _cli(control_plane, "reconcile", "hr", name, "-n", namespace, "--timeout", "1s")
    assert timed_out.returncode == 1
    assert timed_out.stderr.strip() == (
        f"✗ HelmRelease {namespace}/{name} was not reconciled within 1s; is the controller running?"
    )
    missing = _cli(control_plane, "reconcile", "hr", "nope", "-n", namespace)
    assert missing.returncode == 1 and "nope" in missing.stderr and "Traceback" not in missing.stderr


def test_a_failed_release_fails_the_command(
    control_plane: ControlPlane, admin_api: client.ApiClient, namespace: str, flux_crds: list[str]
) -> None:
    """Ready=False after the request was handled: exit 1 with the object and its message."""
    name = f"failing-{uuid.uuid4().hex[:6]}"
    _create(admin_api, HELM_RELEASE, namespace, name, _chart_template(), labels={})

    # Played by the test in-line: the request is handled, with an install failure.
    def handle() -> None:
        token = until(lambda: _annotations(admin_api, namespace, name).get(REQUESTED_AT), bool, what="the request")
        failed = _ready("False", "InstallFailed", "Helm install failed for release x/y with chart app@1.0.0: timed out")
        _status(admin_api, namespace, name, {"lastHandledReconcileAt": token, "conditions": [failed]})

    handler = threading.Thread(target=handle)
    handler.start()
    failed = _cli(control_plane, "reconcile", "hr", name, "-n", namespace, "--timeout", "30s")
    handler.join()
    assert failed.returncode == 1
    assert failed.stderr.strip() == (
        f"✗ HelmRelease {namespace}/{name}: Helm install failed for release x/y with chart app@1.0.0: timed out"
    )
