"""Mixed deployment: fluxwarden's kustomize and helm controllers consume upstream source-controller's artifacts.

Flux's source-controller (v1.9.5, built with fluxcd/pkg/artifact v0.18.0: see tests/flux) runs on Flux's
shard with its own storage and artifact server on loopback; the GitRepository, HelmRepository and HelmChart
are its. The Kustomization and HelmRelease are on fluxwarden's shard: fluxwarden downloads Flux's
``status.artifact.url`` and checks it against the digest Flux wrote. source-controller has no
``--no-cross-namespace-refs`` flag (it follows no references), so it runs without the lockdown flags.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.helm.api import HELM_RELEASE
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.source.api import GIT_REPOSITORY, HELM_CHART, HELM_REPOSITORY
from tests.support import helm_charts
from tests.support.control_plane import ControlPlane
from tests.support.flux_mixed import FLUX_SHARD, FLUXWARDEN_SHARDS, Objects, configmaps
from tests.support.flux_upstream import FluxController, free_port
from tests.support.git_server import GitHttpServer, GitRepo
from tests.support.helm_repo import HelmRepoServer
from tests.support.helm_tenants import release_name, trust_charts
from tests.support.tenants import OWNER_NAME, SHARD, condition, configmap, grant
from tests.support.tls import PrivateCA

CHART_VALUES = {"greeting": "from-the-chart"}

# fluxwarden's own shard in this module: its reconcilers run until the session ends, so no module shares it.
FLUXWARDEN_SHARD = f"{FLUXWARDEN_SHARDS}-sources"


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory, authority: PrivateCA) -> Iterator[HelmRepoServer]:
    with HelmRepoServer(tmp_path_factory.mktemp("mixed-source-charts"), tls=authority.server_context()) as repo:
        repo.add_chart("cms", "2.0.0", CHART_VALUES, templates=helm_charts.configmaps(2))
        yield repo


@pytest.fixture(scope="module")
def fluxwarden(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    """fluxwarden's source controller runs too, on its shard: it must leave Flux's sources alone."""
    return start_reconcilers(("source", "kustomize", "helm"), label_selector=f"{SHARD}={FLUXWARDEN_SHARD}")


@pytest.fixture(scope="module")
def flux_source(
    control_plane: ControlPlane, flux_crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FluxController]:
    work = tmp_path_factory.mktemp("flux-source")
    port = free_port()
    storage = work / "storage"
    storage.mkdir()
    args = (
        "--watch-all-namespaces=true", f"--watch-label-selector={SHARD}={FLUX_SHARD}",
        f"--storage-path={storage}", f"--storage-addr=127.0.0.1:{port}", f"--storage-adv-addr=127.0.0.1:{port}",
    )  # fmt: skip
    with FluxController("source-controller", control_plane.kubeconfig, work, args, lockdown=False) as controller:
        yield controller


def namespaces(api: client.ApiClient, namespace_factory: Callable[[], str]) -> tuple[str, str]:
    config, target = namespace_factory(), namespace_factory()
    client.CoreV1Api(api).create_namespaced_service_account(config, {"metadata": {"name": "flux-applier"}})
    grant(api, config, config)
    grant(api, target, config)
    return config, target


def flux_artifact(objects: Objects, resource: Any, name: str, port_of: FluxController) -> dict[str, Any]:
    """The artifact of Flux's source ``name``, Ready; it must be Flux's, served by its storage server."""
    obj = objects.ready(resource, name)
    artifact: dict[str, Any] = obj["status"]["artifact"]
    assert artifact["url"].startswith("http://127.0.0.1:"), artifact["url"]
    assert any(a.endswith(artifact["url"].split("/")[2]) for a in port_of.argv), "served by Flux's storage server"
    writers = {m["manager"] for m in obj["metadata"].get("managedFields") or [] if m.get("subresource") == "status"}
    assert writers == {"source-controller"}, writers  # Flux's status field manager
    return artifact


def test_fluxwarden_kustomize_controller_applies_a_flux_git_artifact(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    fluxwarden: Reconcilers,
    flux_source: FluxController,
) -> None:
    config, target = namespaces(admin_api, namespace_factory)
    git_server.create_repo("mixed-from-flux")
    repo = GitRepo(tmp_path / "work")
    sha = repo.commit({"apps/a.yaml": configmap("app-a", "flux-made"), "apps/b.yaml": configmap("app-b", "2")})
    repo.push(git_server.repo_path("mixed-from-flux"))
    objects = Objects(admin_api, config, (flux_source,))
    git_spec = {"url": git_server.repo_url("mixed-from-flux"), "interval": "1h", "ref": {"branch": "main"}}
    objects.create(GIT_REPOSITORY, "repo", FLUX_SHARD, git_spec)
    objects.create(
        KUSTOMIZATION, "apps", FLUXWARDEN_SHARD,
        {"interval": "1h", "retryInterval": "2s", "path": "./apps", "prune": True, "targetNamespace": target,
         "sourceRef": {"kind": "GitRepository", "name": "repo"}},
    )  # fmt: skip
    artifact = flux_artifact(objects, GIT_REPOSITORY, "repo", flux_source)
    assert artifact["revision"] == f"main@sha1:{sha}"
    done = objects.ready(KUSTOMIZATION, "apps")
    assert done["status"]["lastAppliedRevision"] == f"main@sha1:{sha}"
    assert configmaps(admin_api, target) == {"app-a": {"value": "flux-made"}, "app-b": {"value": "2"}}
    labels = client.CoreV1Api(admin_api).read_namespaced_config_map("app-a", target).metadata.labels
    assert labels[OWNER_NAME] == "apps"


def test_fluxwarden_refuses_a_flux_artifact_whose_bytes_do_not_match_its_digest(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    fluxwarden: Reconcilers,
    flux_source: FluxController,
) -> None:
    """fluxwarden checks Flux's digest: the file on Flux's storage swapped for another archive is refused."""
    config, target = namespaces(admin_api, namespace_factory)
    git_server.create_repo("mixed-flux-swapped")
    repo = GitRepo(tmp_path / "work")
    repo.commit({"apps/a.yaml": configmap("app-a", "from-git")})
    repo.push(git_server.repo_path("mixed-flux-swapped"))
    objects = Objects(admin_api, config, (flux_source,))
    git_spec = {"url": git_server.repo_url("mixed-flux-swapped"), "interval": "1h", "ref": {"branch": "main"}}
    objects.create(GIT_REPOSITORY, "repo", FLUX_SHARD, git_spec)
    artifact = flux_artifact(objects, GIT_REPOSITORY, "repo", flux_source)
    stored = flux_source.work / "storage" / artifact["path"]
    other = GitRepo(tmp_path / "other")
    other.commit({"apps/a.yaml": configmap("app-a", "evil")})
    other.git("archive", "--format=tar.gz", "-o", str(stored), "HEAD")
    objects.create(
        KUSTOMIZATION, "apps", FLUXWARDEN_SHARD,
        {"interval": "1h", "retryInterval": "2s", "path": "./apps", "prune": True, "targetNamespace": target,
         "sourceRef": {"kind": "GitRepository", "name": "repo"}},
    )  # fmt: skip
    failed = objects.wait(
        KUSTOMIZATION, "apps",
        lambda o: condition(o).get("status") == "False" and condition(o).get("reason") == "ArtifactFailed",
        "Ready=False ArtifactFailed",
    )  # fmt: skip
    assert "digest mismatch" in condition(failed)["message"]
    assert artifact["digest"].partition(":")[2][:12] in condition(failed)["message"]
    assert configmaps(admin_api, target) == {}, "nothing of the swapped archive was applied"


def test_fluxwarden_helm_controller_installs_a_chart_that_flux_fetched(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    charts: HelmRepoServer,
    authority: PrivateCA,
    fluxwarden: Reconcilers,
    flux_source: FluxController,
) -> None:
    config, target = namespaces(admin_api, namespace_factory)
    trust_charts(admin_api, config, authority.ca_pem)
    objects = Objects(admin_api, config, (flux_source,))
    repo_spec = {"url": charts.url, "interval": "1h", "certSecretRef": {"name": "charts-ca"}}
    objects.create(HELM_REPOSITORY, "charts", FLUX_SHARD, repo_spec)
    objects.create(
        HELM_CHART, "cms", FLUX_SHARD,
        {"chart": "cms", "version": "2.0.0", "interval": "1h",
         "sourceRef": {"kind": "HelmRepository", "name": "charts"}},
    )  # fmt: skip
    objects.create(
        HELM_RELEASE, "app", FLUXWARDEN_SHARD,
        {"interval": "1h", "targetNamespace": target, "timeout": "30s", "values": {"extra": "yes"},
         "chartRef": {"kind": "HelmChart", "name": "cms"}},
    )  # fmt: skip
    artifact = flux_artifact(objects, HELM_CHART, "cms", flux_source)
    package = (charts.root / "cms-2.0.0.tgz").read_bytes()
    assert (artifact["revision"], artifact["digest"]) == ("2.0.0", "sha256:" + hashlib.sha256(package).hexdigest())
    done = objects.ready(HELM_RELEASE, "app", timeout=120)
    assert condition(done)["reason"] == "InstallSucceeded"
    history = done["status"]["history"]
    assert (history[0]["chartName"], history[0]["chartVersion"]) == ("cms", "2.0.0")
    release = release_name("app", target)
    cms = configmaps(admin_api, target)
    assert set(cms) == {f"{release}-0", f"{release}-1"}
    assert cms[f"{release}-0"]["chartVersion"] == "2.0.0"
    assert json.loads(cms[f"{release}-0"]["values"]) == {**CHART_VALUES, "extra": "yes"}


def test_fluxwarden_helmrelease_template_makes_a_helm_chart_that_flux_reconciles(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    charts: HelmRepoServer,
    authority: PrivateCA,
    fluxwarden: Reconcilers,
    flux_source: FluxController,
) -> None:
    """fluxwarden's HelmRelease makes HelmChart ``<namespace>-<name>`` with Flux's shard label from
    ``spec.chart.metadata.labels``: Flux's source-controller fetches it, fluxwarden installs from its artifact."""
    config, target = namespaces(admin_api, namespace_factory)
    trust_charts(admin_api, config, authority.ca_pem)
    objects = Objects(admin_api, config, (flux_source,))
    repo_spec = {"url": charts.url, "interval": "1h", "certSecretRef": {"name": "charts-ca"}}
    objects.create(HELM_REPOSITORY, "charts", FLUX_SHARD, repo_spec)
    chart_spec = {"chart": "cms", "version": "2.0.0", "interval": "1h",
                  "sourceRef": {"kind": "HelmRepository", "name": "charts"}}  # fmt: skip
    objects.create(
        HELM_RELEASE, "tpl", FLUXWARDEN_SHARD,
        {"interval": "1h", "targetNamespace": target, "timeout": "30s",
         "chart": {"spec": chart_spec, "metadata": {"labels": {SHARD: FLUX_SHARD}}}},
    )  # fmt: skip
    done = objects.ready(HELM_RELEASE, "tpl", timeout=120)
    assert condition(done)["reason"] == "InstallSucceeded"
    assert done["status"]["helmChart"] == f"{config}/{config}-tpl"
    artifact = flux_artifact(objects, HELM_CHART, f"{config}-tpl", flux_source)
    package = (charts.root / "cms-2.0.0.tgz").read_bytes()
    assert (artifact["revision"], artifact["digest"]) == ("2.0.0", "sha256:" + hashlib.sha256(package).hexdigest())
    release = release_name("tpl", target)
    cms = configmaps(admin_api, target)
    assert set(cms) == {f"{release}-0", f"{release}-1"}
    assert json.loads(cms[f"{release}-0"]["values"]) == CHART_VALUES
