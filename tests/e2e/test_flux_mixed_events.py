"""Mixed deployment: upstream Flux's kustomize-controller posts its events to fluxwarden's notification controller.

Flux's kustomize-controller runs with ``--events-addr`` at fluxwarden's event server; an Alert on the
Kustomization routes to a generic Provider at an HTTPS recording endpoint (trusted through
``certSecretRef``). What arrives there is Flux's own event, parsed and forwarded by fluxwarden: Flux's
reason, message and revision metadata. The GitRepository is fluxwarden's, the Kustomization Flux's.
Flux's "Reconciliation finished" event carries ``commit_status: update``, which goes to commit-status
providers only (Flux's rule, kept by fluxwarden): the generic Provider gets the change set and errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.helm.api import HELM_RELEASE
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.source.api import GIT_REPOSITORY, HELM_REPOSITORY
from tests.support import helm_charts
from tests.support.control_plane import ControlPlane
from tests.support.flux_mixed import FLUX_SHARD, FLUXWARDEN_SHARDS, Objects, configmaps, flux_on_shard
from tests.support.flux_upstream import FluxController
from tests.support.git_server import GitHttpServer, GitRepo
from tests.support.helm_repo import HelmRepoServer
from tests.support.helm_tenants import release_name, trust_charts
from tests.support.notification import Notifications, event_url, start_notification
from tests.support.recorder import Received, Recorder
from tests.support.tenants import SHARD, condition, configmap, grant
from tests.support.tls import PrivateCA

# fluxwarden's own shard in this module: its reconcilers run until the session ends, so no module shares it.
FLUXWARDEN_SHARD = f"{FLUXWARDEN_SHARDS}-events"


@pytest.fixture(scope="module")
def fluxwarden(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_notification(start_reconcilers, controllers=("notification", "source"), shard=FLUXWARDEN_SHARD)


@pytest.fixture(scope="module")
def flux_kustomize(
    control_plane: ControlPlane, flux_crds: list[str], tmp_path_factory: pytest.TempPathFactory, fluxwarden: Reconcilers
) -> Iterator[FluxController]:
    work = tmp_path_factory.mktemp("flux-kustomize-events")
    events = f"--events-addr={event_url(fluxwarden)}"
    with flux_on_shard("kustomize-controller", control_plane.kubeconfig, work, events) as controller:
        yield controller


@pytest.fixture(scope="module")
def flux_helm(
    control_plane: ControlPlane, flux_crds: list[str], tmp_path_factory: pytest.TempPathFactory, fluxwarden: Reconcilers
) -> Iterator[FluxController]:
    work = tmp_path_factory.mktemp("flux-helm-events")
    events = f"--events-addr={event_url(fluxwarden)}"
    with flux_on_shard("helm-controller", control_plane.kubeconfig, work, events) as controller:
        yield controller


def tenant(api: client.ApiClient, namespace_factory: Callable[[], str]) -> tuple[str, str]:
    config, target = namespace_factory(), namespace_factory()
    client.CoreV1Api(api).create_namespaced_service_account(config, {"metadata": {"name": "flux-applier"}})
    grant(api, config, config)
    grant(api, target, config)
    return config, target


def https_hook(nt: Notifications, hook: Recorder, authority: PrivateCA, kind: str, name: str) -> None:
    """A generic Provider at ``hook`` (path ``/flux``), trusted through certSecretRef, and an Alert on one object."""
    nt.secret("hook-ca", {"ca.crt": authority.ca_pem})
    nt.provider("hook", address=f"{hook.url}/flux", cert_secret="hook-ca")
    nt.alert("hook", "hook", [{"kind": kind, "name": name}])
    nt.settled()


def test_flux_events_reach_a_provider_through_fluxwarden_notification_controller(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    authority: PrivateCA,
    fluxwarden: Reconcilers,
    flux_kustomize: FluxController,
) -> None:
    config, target = tenant(admin_api, namespace_factory)
    git_server.create_repo("mixed-events")
    repo = GitRepo(tmp_path / "work")
    sha = repo.commit({"apps/a.yaml": configmap("app-a", "evented")})
    repo.push(git_server.repo_path("mixed-events"))

    with Recorder(tls=authority) as hook:
        https_hook(Notifications(admin_api, config, fluxwarden), hook, authority, "Kustomization", "apps")
        objects = Objects(admin_api, config, (flux_kustomize,))
        git_spec = {"url": git_server.repo_url("mixed-events"), "interval": "1h", "ref": {"branch": "main"}}
        objects.create(GIT_REPOSITORY, "repo", FLUXWARDEN_SHARD, git_spec)
        made = objects.create(
            KUSTOMIZATION, "apps", FLUX_SHARD,
            {"interval": "1h", "retryInterval": "2s", "path": "./apps", "prune": True, "targetNamespace": target,
             "sourceRef": {"kind": "GitRepository", "name": "repo"}},
        )  # fmt: skip
        done = objects.ready(KUSTOMIZATION, "apps")
        assert done["status"]["lastAppliedRevision"] == f"main@sha1:{sha}"
        assert configmaps(admin_api, target) == {"app-a": {"value": "evented"}}

        (sent,) = hook.wait_for(1, timeout=30, where=reason_is("Progressing"))
        # A commit Flux cannot build: its error event, with the new revision, comes the same way.
        broken = repo.commit({"apps/kustomization.yaml": "resources: [missing.yaml]\n"})
        repo.push(git_server.repo_path("mixed-events"))
        objects.request(GIT_REPOSITORY, "repo", "broken")
        (failed,) = hook.wait_for(1, timeout=60, where=reason_is("BuildFailed"))
    assert (sent.method, sent.path) == ("POST", "/flux")
    assert sent.header("gotk-component") == "kustomize-controller"
    body = sent.json()
    assert body["involvedObject"]["kind"] == "Kustomization"
    assert (body["involvedObject"]["namespace"], body["involvedObject"]["name"]) == (config, "apps")
    assert body["involvedObject"]["uid"] == made["metadata"]["uid"]
    assert (body["severity"], body["reportingController"]) == ("info", "kustomize-controller")
    # Flux's own message: the change set it applied, one line per object.
    assert body["message"] == f"ConfigMap/{target}/app-a created"
    # Flux sends kustomize.toolkit.fluxcd.io/revision; the event server strips the group, as Flux's does.
    assert body["metadata"] == {"revision": f"main@sha1:{sha}"}
    error = failed.json()
    assert error["severity"] == "error"
    assert "missing.yaml" in error["message"]
    assert error["metadata"]["revision"] == f"main@sha1:{broken}"
    assert condition(objects.get(KUSTOMIZATION, "apps"))["reason"] == "BuildFailed"


def reason_is(reason: str) -> Callable[[Received], bool]:
    return lambda received: bool(received.json().get("reason") == reason)


def test_flux_helm_controller_events_reach_a_provider_through_fluxwarden(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    tmp_path: Path,
    authority: PrivateCA,
    fluxwarden: Reconcilers,
    flux_helm: FluxController,
) -> None:
    config, target = tenant(admin_api, namespace_factory)
    trust_charts(admin_api, config, authority.ca_pem)
    with HelmRepoServer(tmp_path / "charts", tls=authority.server_context()) as charts, Recorder(tls=authority) as hook:
        charts.add_chart("cms", "1.0.0", {"greeting": "hi"}, templates=helm_charts.configmaps(1))
        https_hook(Notifications(admin_api, config, fluxwarden), hook, authority, "HelmRelease", "app")
        objects = Objects(admin_api, config, (flux_helm,))
        repo_spec = {"url": charts.url, "interval": "1h", "certSecretRef": {"name": "charts-ca"}}
        objects.create(HELM_REPOSITORY, "charts", FLUXWARDEN_SHARD, repo_spec)
        chart_spec = {"chart": "cms", "version": "1.0.0", "interval": "1h",
                      "sourceRef": {"kind": "HelmRepository", "name": "charts"}}  # fmt: skip
        made = objects.create(
            HELM_RELEASE, "app", FLUX_SHARD,
            {"interval": "1h", "targetNamespace": target, "timeout": "30s",
             "chart": {"spec": chart_spec, "metadata": {"labels": {SHARD: FLUXWARDEN_SHARD}}}},
        )  # fmt: skip
        done = objects.ready(HELM_RELEASE, "app", timeout=120)
        (sent,) = hook.wait_for(1, timeout=30, where=reason_is("InstallSucceeded"))
    assert condition(done)["reason"] == "InstallSucceeded"
    assert sent.header("gotk-component") == "helm-controller"
    body = sent.json()
    assert body["involvedObject"]["kind"] == "HelmRelease"
    assert (body["involvedObject"]["name"], body["involvedObject"]["uid"]) == ("app", made["metadata"]["uid"])
    assert (body["severity"], body["reportingController"]) == ("info", "helm-controller")
    release = release_name("app", target)
    assert f"Helm install succeeded for release {target}/{release}" in body["message"]
    assert "cms@1.0.0" in body["message"]
    # helm.toolkit.fluxcd.io/revision (the chart version) with the group stripped; <group>/token (the values'
    # digest) keys the rate limit only and is not forwarded, as in Flux's notification-controller.
    assert body["metadata"] == {"revision": "1.0.0"}
