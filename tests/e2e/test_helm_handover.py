"""Handing a release from fluxwarden to upstream Flux's helm-controller, without a reinstall.

fluxwarden stores a release in its target namespace (the helm CLI stores where it installs); Flux
stores it in ``spec.storageNamespace``, which defaults to the HelmRelease's namespace. The documented
way back to Flux: set ``spec.storageNamespace`` to the target namespace, then let Flux's controller
take the HelmRelease over. This test runs the real upstream helm-controller (v1.6.4, built by
``tests/flux/controllers.sh`` from its Go module) beside fluxwarden, on label shards, and checks that
Flux finds the release where fluxwarden left it: it upgrades it in place (it does not trust another
controller's history), and nothing is uninstalled or recreated.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from tests.support import helm_charts, processes
from tests.support.binaries import cache_dir
from tests.support.control_plane import ControlPlane
from tests.support.helm_cli import AdminHelm, release_secrets
from tests.support.helm_repo import HelmRepoServer
from tests.support.helm_tenants import make_helm_tenant
from tests.support.tenants import SHARD, condition
from tests.support.tls import PrivateCA
from tests.support.wait import until

FLUXWARDEN_SHARD = "handover-fluxwarden"
FLUX_SHARD = "handover-flux"
CONTROLLERS_SCRIPT = Path(__file__).resolve().parents[1] / "flux" / "controllers.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory, authority: PrivateCA) -> Iterator[HelmRepoServer]:
    with HelmRepoServer(tmp_path_factory.mktemp("handover-charts"), tls=authority.server_context()) as repo:
        repo.add_chart("cms", "1.0.0", {"greeting": "hello"}, templates=helm_charts.configmaps(2))
        yield repo


@pytest.fixture(scope="module")
def fluxwarden(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source", "helm"), label_selector=f"{SHARD}={FLUXWARDEN_SHARD}")


@pytest.fixture(scope="module")
def flux_helm_controller(
    control_plane: ControlPlane, flux_crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """Upstream helm-controller, locked down as Flux's multi-tenancy guide says, on its own shard.

    A build or start failure is an error, never a skip.
    """
    binary = cache_dir("FLUXWARDEN_FLUX_CONTROLLERS", CONTROLLERS_SCRIPT) / "helm-controller"
    work = tmp_path_factory.mktemp("flux-helm-controller")
    log = (work / "helm-controller.log").open("wb")
    argv = [
        str(binary), "--watch-all-namespaces=true", f"--watch-label-selector={SHARD}={FLUX_SHARD}",
        "--no-cross-namespace-refs=true", "--default-service-account=flux-applier",
        "--enable-leader-election=false", f"--metrics-addr=127.0.0.1:{free_port()}",
        f"--health-addr=127.0.0.1:{free_port()}",
    ]  # fmt: skip
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig), "TMPDIR": str(work)}
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield process
    finally:
        processes.end(process, grace=20)
        log.close()


def test_a_release_moves_to_upstream_flux_without_a_reinstall(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    control_plane: ControlPlane,
    charts: HelmRepoServer,
    authority: PrivateCA,
    fluxwarden: Reconcilers,
    flux_helm_controller: subprocess.Popen[bytes],
) -> None:
    tenant = make_helm_tenant(admin_api, namespace_factory, charts.url, authority.ca_pem, FLUXWARDEN_SHARD)
    config, target, core = tenant.config, tenant.target, tenant.core
    release = tenant.release("app", storageNamespace=target, values={"greeting": "kept"})
    installed = tenant.ready("app", "InstallSucceeded")
    assert installed["status"]["storageNamespace"] == target
    helm = AdminHelm(control_plane.kubeconfig)
    assert [(e["revision"], e["status"]) for e in helm.history(release, target)] == [(1, "deployed")]
    objects = {c.metadata.name: c.metadata.uid for c in core.list_namespaced_config_map(target).items}
    assert len(objects) >= 2

    # Hand over: the HelmRelease leaves fluxwarden's shard for Flux's. Its HelmChart keeps fluxwarden's
    # shard (spec.chart.metadata.labels), so fluxwarden's source controller still serves the chart.
    tenant.patch("app", {"metadata": {"labels": {SHARD: FLUX_SHARD}}})

    def taken_over(obj: dict[str, Any]) -> bool:
        history = (obj.get("status") or {}).get("history") or []
        return condition(obj).get("status") == "True" and bool(history) and history[0].get("version") == 2

    def current() -> dict[str, Any]:
        assert flux_helm_controller.poll() is None, "Flux's helm-controller exited"
        return tenant.get("app")

    done = until(current, taken_over, timeout=120, what="Flux's helm-controller to take the release over")
    assert condition(done)["reason"] == "UpgradeSucceeded", condition(done)
    assert done["status"]["storageNamespace"] == target
    # The same release, upgraded in place: history kept, nothing uninstalled, no object recreated.
    assert [(e["revision"], e["status"]) for e in helm.history(release, target)] == [(1, "superseded"), (2, "deployed")]
    assert sorted(release_secrets(admin_api, target, release)) == [
        f"sh.helm.release.v1.{release}.v1",
        f"sh.helm.release.v1.{release}.v2",
    ]
    assert release_secrets(admin_api, config, release) == {}, "Flux reads and writes where fluxwarden stored it"
    now = {c.metadata.name: c.metadata.uid for c in core.list_namespaced_config_map(target).items}
    assert now == objects, "no object was recreated"
