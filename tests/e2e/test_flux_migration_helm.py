"""A HelmRelease changes hands between upstream Flux's helm-controller and fluxwarden's, both ways.

Flux's helm-controller (v1.6.4, built by ``tests/flux/controllers.sh`` from its Go module, lockdown
flags) and fluxwarden run side by side on label shards. The HelmRepository and the HelmChart stay on
fluxwarden's shard (``spec.chart.metadata.labels``), so fluxwarden's source controller serves the
chart to both; only the HelmRelease moves: suspend, move it to the other shard, resume.

The storage namespace is where the two differ. Flux stores a release in ``spec.storageNamespace``,
which defaults to the HelmRelease's namespace; fluxwarden stores it in the target namespace (where
the helm CLI does). fluxwarden moves the records of a release Flux stored into the target namespace,
history kept; back to Flux, ``spec.storageNamespace: <target>`` makes Flux read them there.
Both directions check: the same release (no reinstall, history kept), no object re-created, nothing
uninstalled or left behind, and the new owner upgrading it afterwards.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.helm.api import HELM_RELEASE
from fluxwarden.controllers.source.api import HELM_CHART
from tests.support.control_plane import ControlPlane
from tests.support.flux_migration import config_maps, hand_over, uids, versions
from tests.support.flux_mixed_fixtures import chart_fixture, flux_fixture, fluxwarden_fixture
from tests.support.flux_upstream import FluxController
from tests.support.helm_cli import AdminHelm, release_secrets
from tests.support.helm_repo import HelmRepoServer
from tests.support.helm_tenants import HelmTenant, make_helm_tenant, release_name
from tests.support.tenants import SHARD, condition
from tests.support.tls import PrivateCA

FLUXWARDEN_SHARD = "migrate-helm-fluxwarden"
FLUX_SHARD = "migrate-helm-flux"
RELEASE_NAME = "meta.helm.sh/release-name"
RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"


charts = chart_fixture("migration-charts", {"greeting": "hello"}, "1.0.0")
fluxwarden = fluxwarden_fixture(FLUXWARDEN_SHARD, "source", "helm")
flux = flux_fixture("helm-controller", shard=FLUX_SHARD)


def create_release(tenant: HelmTenant, shard: str, **spec: Any) -> str:
    """HelmRelease ``app`` on ``shard``, its HelmChart on fluxwarden's; returns the release name."""
    chart = {"chart": "cms", "version": "1.0.0", "sourceRef": {"kind": "HelmRepository", "name": "charts"}}
    body = {
        "interval": "10m",
        "targetNamespace": tenant.target,
        "timeout": "30s",
        "values": {"greeting": "kept"},
        "chart": {"spec": {**chart, "interval": "1m"}, "metadata": {"labels": {SHARD: FLUXWARDEN_SHARD}}},
        **spec,
    }
    dataclasses.replace(tenant, shard=shard).create(HELM_RELEASE, "app", body)
    return release_name("app", tenant.target)


def revisions(helm: AdminHelm, release: str, namespace: str) -> list[tuple[int, str]]:
    return [(e["revision"], e["status"]) for e in helm.history(release, namespace)]


def owned_by(core: client.CoreV1Api, namespace: str, release: str) -> set[str]:
    """The ConfigMaps whose helm ownership annotations name the release: none left behind, none foreign."""
    return {
        name
        for name, c in config_maps(core, namespace).items()
        if (c.metadata.annotations or {}).get(RELEASE_NAME) == release
        and (c.metadata.annotations or {}).get(RELEASE_NAMESPACE) == namespace
    }


def one_chart(tenant: HelmTenant) -> None:
    """The chart template is one HelmChart, ``<ns>-<name>``, whichever side made it: none orphaned."""
    listed = tenant.custom.list_namespaced_custom_object(
        HELM_CHART.group, HELM_CHART.version, tenant.config, HELM_CHART.plural
    )
    assert [c["metadata"]["name"] for c in listed["items"]] == [f"{tenant.config}-app"]


def upgraded_by_new_owner(tenant: HelmTenant, helm: AdminHelm, release: str, revision: int) -> None:
    """A values change after the hand-over is an upgrade by the new owner, in the same storage."""
    tenant.patch("app", {"spec": {"values": {"greeting": "moved"}}})
    done = tenant.ready("app", "UpgradeSucceeded")
    assert done["status"]["history"][0]["version"] == revision + 1
    assert [r for _, r in revisions(helm, release, tenant.target)][-1] == "deployed"
    assert len(helm.history(release, tenant.target)) == revision + 1
    assert {json.loads(c["values"])["greeting"] for c in tenant.configmaps().values()} == {"moved"}


@pytest.fixture
def tenant(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    charts: HelmRepoServer,
    authority: PrivateCA,
    fluxwarden: Reconcilers,
) -> HelmTenant:
    """A helm tenant whose objects start on fluxwarden's shard (each test moves its HelmRelease)."""
    return make_helm_tenant(admin_api, namespace_factory, charts.url, authority.ca_pem, FLUXWARDEN_SHARD)


def test_flux_to_fluxwarden_adopts_the_release_flux_stored(
    admin_api: client.ApiClient, control_plane: ControlPlane, tenant: HelmTenant, flux: FluxController
) -> None:
    config, target, core = tenant.config, tenant.target, tenant.core
    release = create_release(tenant, FLUX_SHARD)
    installed = tenant.ready("app", "InstallSucceeded")
    flux.assert_running()
    # Flux's default: the records in the HelmRelease's namespace, the objects in the target namespace.
    assert installed["status"]["storageNamespace"] == config
    helm = AdminHelm(control_plane.kubeconfig)
    assert revisions(helm, release, config) == [(1, "deployed")]
    assert release_secrets(admin_api, target, release) == {}
    objects, written = uids(core, target), versions(core, target)
    assert len(objects) >= 2 and owned_by(core, target, release) == set(objects)

    hand_over(lambda body: tenant.patch("app", body), FLUXWARDEN_SHARD)
    # Only fluxwarden sees the resumed generation (Flux's watch dropped the object with its label).
    adopted = tenant.ready("app")
    assert adopted["metadata"]["generation"] == installed["metadata"]["generation"] + 2
    flux.assert_running()
    assert adopted["status"]["storageNamespace"] == target
    # The same release, not upgraded (the spec did not change): revision 1 is still the deployed one, and
    # fluxwarden's snapshot of it replaced Flux's (whose digest is Flux's own).
    assert [(h["version"], h["status"]) for h in adopted["status"]["history"]] == [(1, "deployed")]
    kept = revisions(helm, release, target)
    assert kept == [(1, "deployed")], kept
    assert release_secrets(admin_api, config, release) == {}, "the records moved, none left in Flux's place"
    assert sorted(release_secrets(admin_api, target, release)) == [
        f"sh.helm.release.v1.{release}.v{n}" for n, _ in kept
    ]
    assert uids(core, target) == objects, "no object was re-created or uninstalled"
    assert versions(core, target) == written, "an adopted release in sync is not even written"
    assert owned_by(core, target, release) == set(objects)
    one_chart(tenant)
    assert condition(adopted, "Released")["status"] == "True", condition(adopted, "Released")

    upgraded_by_new_owner(tenant, helm, release, len(kept))
    assert uids(core, target) == objects


def test_fluxwarden_to_flux_with_the_storage_namespace_set(
    admin_api: client.ApiClient, control_plane: ControlPlane, tenant: HelmTenant, flux: FluxController
) -> None:
    config, target, core = tenant.config, tenant.target, tenant.core
    # Step 0 of the hand-over: spec.storageNamespace names where fluxwarden keeps the records.
    release = create_release(tenant, FLUXWARDEN_SHARD, storageNamespace=target)
    installed = tenant.ready("app", "InstallSucceeded")
    assert installed["status"]["storageNamespace"] == target
    helm = AdminHelm(control_plane.kubeconfig)
    assert revisions(helm, release, target) == [(1, "deployed")]
    objects = uids(core, target)
    assert len(objects) >= 2 and owned_by(core, target, release) == set(objects)

    hand_over(lambda body: tenant.patch("app", body), FLUX_SHARD)
    done = tenant.ready("app", "UpgradeSucceeded", timeout=120)
    assert done["metadata"]["generation"] == installed["metadata"]["generation"] + 2
    flux.assert_running()
    assert done["status"]["storageNamespace"] == target
    # Flux does not trust another controller's history: it upgrades the release in place, once.
    assert done["status"]["history"][0]["version"] == 2
    assert revisions(helm, release, target) == [(1, "superseded"), (2, "deployed")]
    assert sorted(release_secrets(admin_api, target, release)) == [
        f"sh.helm.release.v1.{release}.v1",
        f"sh.helm.release.v1.{release}.v2",
    ]
    assert release_secrets(admin_api, config, release) == {}, "Flux reads and writes where fluxwarden stored it"
    assert uids(core, target) == objects, "no object was re-created or uninstalled"
    assert owned_by(core, target, release) == set(objects)
    one_chart(tenant)

    upgraded_by_new_owner(tenant, helm, release, 2)
    assert uids(core, target) == objects
