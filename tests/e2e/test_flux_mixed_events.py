"""Mixed deployment: upstream Flux's kustomize-controller posts its events to fluxwarden's notification controller.

Flux's kustomize-controller runs with ``--events-addr`` at fluxwarden's event server; an Alert on the
Kustomization routes to a generic Provider at an HTTPS recording endpoint (trusted through
``certSecretRef``). What arrives there is Flux's own event, parsed and forwarded by fluxwarden: Flux's
reason, message and revision metadata. The GitRepository is fluxwarden's, the Kustomization Flux's.
Flux's "Reconciliation finished" event carries ``commit_status: update``, which goes to commit-status
providers only (Flux's rule, kept by fluxwarden): the generic Provider gets the change set and errors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.helm.api import HELM_RELEASE
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.source.api import GIT_REPOSITORY
from tests.support import helm_charts
from tests.support.flux_mixed import (
    FLUX_SHARD,
    FLUXWARDEN_SHARDS,
    Tenant,
    configmaps,
    git_source,
    helm_repository,
    kustomization_spec,
    templated_release,
)
from tests.support.flux_mixed_fixtures import flux_fixture, tenant_fixture
from tests.support.git_server import GitHttpServer
from tests.support.helm_repo import HelmRepoServer
from tests.support.helm_tenants import release_name, trust_charts
from tests.support.notification import Notifications, start_notification
from tests.support.recorder import Received, Recorder
from tests.support.tenants import condition, configmap
from tests.support.tls import PrivateCA

# fluxwarden's own shard in this module: its reconcilers run until the session ends, so no module shares it.
FLUXWARDEN_SHARD = f"{FLUXWARDEN_SHARDS}-events"


@pytest.fixture(scope="module")
def fluxwarden(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_notification(start_reconcilers, controllers=("notification", "source"), shard=FLUXWARDEN_SHARD)


flux_kustomize = flux_fixture("kustomize-controller", events=True)
flux_helm = flux_fixture("helm-controller", events=True)
tenant = tenant_fixture("flux_kustomize", "flux_helm")


def https_hook(nt: Notifications, hook: Recorder, authority: PrivateCA, kind: str, name: str) -> None:
    """A generic Provider at ``hook`` (path ``/flux``), trusted through certSecretRef, and an Alert on one object."""
    nt.secret("hook-ca", {"ca.crt": authority.ca_pem})
    nt.provider("hook", address=f"{hook.url}/flux", cert_secret="hook-ca")
    nt.alert("hook", "hook", [{"kind": kind, "name": name}])
    nt.settled()


def test_flux_events_reach_a_provider_through_fluxwarden_notification_controller(
    tenant: Tenant,
    git_server: GitHttpServer,
    tmp_path: Path,
    authority: PrivateCA,
    fluxwarden: Reconcilers,
) -> None:
    api, config, target, objects = tenant.api, tenant.config, tenant.target, tenant.objects
    with Recorder(tls=authority) as hook:
        https_hook(Notifications(api, config, fluxwarden), hook, authority, "Kustomization", "apps")
        files = {"apps/a.yaml": configmap("app-a", "evented")}
        repo, sha = git_source(objects, git_server, tmp_path / "work", "mixed-events", FLUXWARDEN_SHARD, files)
        made = objects.create(KUSTOMIZATION, "apps", FLUX_SHARD, kustomization_spec(target, "GitRepository", "repo"))
        done = objects.ready(KUSTOMIZATION, "apps")
        assert done["status"]["lastAppliedRevision"] == f"main@sha1:{sha}"
        assert configmaps(api, target) == {"app-a": {"value": "evented"}}

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
    tenant: Tenant,
    tmp_path: Path,
    authority: PrivateCA,
    fluxwarden: Reconcilers,
) -> None:
    api, config, target, objects = tenant.api, tenant.config, tenant.target, tenant.objects
    trust_charts(api, config, authority.ca_pem)
    with HelmRepoServer(tmp_path / "charts", tls=authority.server_context()) as charts, Recorder(tls=authority) as hook:
        charts.add_chart("cms", "1.0.0", {"greeting": "hi"}, templates=helm_charts.configmaps(1))
        https_hook(Notifications(api, config, fluxwarden), hook, authority, "HelmRelease", "app")
        helm_repository(objects, charts, FLUXWARDEN_SHARD)
        made = objects.create(HELM_RELEASE, "app", FLUX_SHARD, templated_release(target, "1.0.0", FLUXWARDEN_SHARD))
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
