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
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.source.api import GIT_REPOSITORY
from tests.support.control_plane import ControlPlane
from tests.support.flux_mixed import FLUX_SHARD, FLUXWARDEN_SHARDS, Objects, configmaps, flux_on_shard
from tests.support.flux_upstream import FluxController
from tests.support.git_server import GitHttpServer, GitRepo
from tests.support.notification import Notifications, event_url, start_notification
from tests.support.recorder import Received, Recorder
from tests.support.tenants import condition, configmap, grant
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


def test_flux_events_reach_a_provider_through_fluxwarden_notification_controller(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    authority: PrivateCA,
    fluxwarden: Reconcilers,
    flux_kustomize: FluxController,
) -> None:
    config, target = namespace_factory(), namespace_factory()
    client.CoreV1Api(admin_api).create_namespaced_service_account(config, {"metadata": {"name": "flux-applier"}})
    grant(admin_api, config, config)
    grant(admin_api, target, config)
    git_server.create_repo("mixed-events")
    repo = GitRepo(tmp_path / "work")
    sha = repo.commit({"apps/a.yaml": configmap("app-a", "evented")})
    repo.push(git_server.repo_path("mixed-events"))

    with Recorder(tls=authority) as hook:
        nt = Notifications(admin_api, config, fluxwarden)
        nt.secret("hook-ca", {"ca.crt": authority.ca_pem})
        nt.provider("hook", address=f"{hook.url}/flux", cert_secret="hook-ca")
        nt.alert("hook", "hook", [{"kind": "Kustomization", "name": "apps"}])
        nt.settled()
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
