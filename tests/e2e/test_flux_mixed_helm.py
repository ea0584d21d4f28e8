"""Mixed deployment: upstream Flux's helm-controller installs charts from fluxwarden's source artifacts.

The HelmRepository (and the HelmChart) are on fluxwarden's shard, the HelmRelease on Flux's. A HelmRelease
with ``spec.chart`` makes its HelmChart ``<namespace>-<name>`` from the template, with the labels of
``spec.chart.metadata.labels``: those put the chart on fluxwarden's shard. A HelmRelease with ``chartRef``
names a HelmChart that fluxwarden reconciles directly. Flux downloads the chart from fluxwarden's artifact
server and checks its digest. fluxwarden runs its own helm controller too, on its shard.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.helm.api import HELM_RELEASE
from fluxwarden.controllers.source.api import HELM_CHART, OCI_REPOSITORY
from tests.support.control_plane import ControlPlane
from tests.support.flux_mixed import (
    FLUX_SHARD,
    FLUXWARDEN_SHARDS,
    Objects,
    Tenant,
    chart_digest,
    chart_ref_release,
    chart_spec,
    configmaps,
    helm_repository,
    oci_repository_spec,
    registry_secrets,
    status_writers,
    templated_release,
)
from tests.support.flux_mixed_fixtures import chart_fixture, flux_fixture, fluxwarden_fixture, tenant_fixture
from tests.support.helm_cli import AdminHelm
from tests.support.helm_repo import HelmRepoServer
from tests.support.helm_tenants import release_name, trust_charts
from tests.support.oci_artifacts import HELM_CHART_LAYER, RegistryReader
from tests.support.oci_charts import ChartPublisher
from tests.support.oci_registry import OciRegistry
from tests.support.tenants import SHARD, condition
from tests.support.tls import PrivateCA

CHART_VALUES = {"greeting": "hello"}

# fluxwarden's own shard in this module: its reconcilers run until the session ends, so no module shares it.
FLUXWARDEN_SHARD = f"{FLUXWARDEN_SHARDS}-helm"

charts = chart_fixture("mixed-charts", CHART_VALUES, "1.0.0", "1.1.0")
fluxwarden = fluxwarden_fixture(FLUXWARDEN_SHARD, "source", "helm")
flux_helm = flux_fixture("helm-controller")
tenant = tenant_fixture("flux_helm")


def helm_tenant(tenant: Tenant, charts: HelmRepoServer, ca_pem: bytes) -> None:
    """HelmRepository ``charts`` in the tenant's config namespace, trusted, on fluxwarden's shard."""
    trust_charts(tenant.api, tenant.config, ca_pem)
    helm_repository(tenant.objects, charts, FLUXWARDEN_SHARD)


def installed(objects: Objects, name: str, version: str) -> dict[str, Any]:
    def done(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        history = status.get("history") or []
        current = status.get("observedGeneration") == obj["metadata"]["generation"]
        at_version = bool(history) and history[0].get("chartVersion") == version
        return current and condition(obj).get("status") == "True" and at_version

    return objects.wait(HELM_RELEASE, name, done, f"Ready at chart {version}", timeout=120)


def test_flux_helm_controller_installs_a_chart_that_fluxwarden_fetched(
    tenant: Tenant,
    control_plane: ControlPlane,
    charts: HelmRepoServer,
    authority: PrivateCA,
    fluxwarden: Reconcilers,
) -> None:
    api, config, target, objects = tenant.api, tenant.config, tenant.target, tenant.objects
    helm_tenant(tenant, charts, authority.ca_pem)
    spec = templated_release(target, "1.0.0", FLUXWARDEN_SHARD, values={"greeting": "mixed"})
    objects.create(HELM_RELEASE, "app", FLUX_SHARD, spec)

    done = installed(objects, "app", "1.0.0")
    assert condition(done)["reason"] == "InstallSucceeded"
    release = release_name("app", target)  # Flux's default: <targetNamespace>-<name>, shortened
    # The HelmChart Flux made from the template is fluxwarden's: its artifact is the repository's package.
    chart = objects.ready(HELM_CHART, f"{config}-app")
    assert chart["metadata"]["labels"][SHARD] == FLUXWARDEN_SHARD
    artifact = chart["status"]["artifact"]
    assert artifact["url"].startswith(fluxwarden.artifacts.url)
    assert (artifact["revision"], artifact["digest"]) == ("1.0.0", chart_digest(charts, "1.0.0"))
    assert done["status"]["lastAttemptedRevision"] == "1.0.0"
    assert done["status"]["history"][0]["chartName"] == "cms"
    assert done["status"]["helmChart"] == f"{config}/{config}-app"
    cms = configmaps(api, target)
    assert set(cms) == {f"{release}-0", f"{release}-1"}
    assert cms[f"{release}-0"]["chartVersion"] == "1.0.0"
    assert json.loads(cms[f"{release}-0"]["values"]) == {"greeting": "mixed"}
    helm = AdminHelm(control_plane.kubeconfig)
    assert [(e["revision"], e["status"]) for e in helm.history(release, config)] == [(1, "deployed")]
    writers = status_writers(chart)
    assert writers and "source-controller" not in writers, writers  # not Flux's source-controller

    # A new chart version in the HelmRelease: Flux updates the HelmChart, fluxwarden fetches it, Flux upgrades.
    objects.patch(HELM_RELEASE, "app", {"spec": {"chart": {"spec": {"version": "1.1.0"}}}})
    upgraded = installed(objects, "app", "1.1.0")
    assert condition(upgraded)["reason"] == "UpgradeSucceeded"
    assert objects.get(HELM_CHART, f"{config}-app")["status"]["artifact"]["digest"] == chart_digest(charts, "1.1.0")
    assert configmaps(api, target)[f"{release}-0"]["chartVersion"] == "1.1.0"


def test_flux_helm_controller_installs_from_a_chart_ref_to_a_fluxwarden_helm_chart(
    tenant: Tenant,
    charts: HelmRepoServer,
    authority: PrivateCA,
) -> None:
    api, target, objects = tenant.api, tenant.target, tenant.objects
    helm_tenant(tenant, charts, authority.ca_pem)
    objects.create(HELM_CHART, "cms", FLUXWARDEN_SHARD, chart_spec("1.1.0"))
    objects.create(HELM_RELEASE, "ref", FLUX_SHARD, chart_ref_release(target, "HelmChart", "cms"))
    done = installed(objects, "ref", "1.1.0")
    assert condition(done)["reason"] == "InstallSucceeded"
    artifact = objects.get(HELM_CHART, "cms")["status"]["artifact"]
    assert artifact["digest"] == chart_digest(charts, "1.1.0")
    # With chartRef to a HelmChart, Flux records the version of the chart it installed.
    assert done["status"]["lastAttemptedRevision"] == "1.1.0"
    release = release_name("ref", target)
    cms = configmaps(api, target)
    assert set(cms) == {f"{release}-0", f"{release}-1"}
    assert cms[f"{release}-0"]["chartVersion"] == "1.1.0"
    assert json.loads(cms[f"{release}-0"]["values"]) == CHART_VALUES


def test_flux_helm_controller_installs_from_a_chart_ref_to_a_fluxwarden_oci_repository(
    tenant: Tenant,
    registry: OciRegistry,
    reader: RegistryReader,
    tmp_path: Path,
) -> None:
    """A chart pushed with the real ``helm push``; fluxwarden's OCIRepository copies its layer, Flux installs it."""
    api, config, target, objects = tenant.api, tenant.config, tenant.target, tenant.objects
    registry_secrets(api, config, registry)
    package = ChartPublisher(registry, tmp_path).push("ocicms", "3.0.0", {"greeting": "from-oci"})
    copy = {"mediaType": HELM_CHART_LAYER, "operation": "copy"}
    oci_spec = oci_repository_spec(registry.oci_url("charts/ocicms"), "3.0.0", layerSelector=copy)
    objects.create(OCI_REPOSITORY, "chart", FLUXWARDEN_SHARD, oci_spec)
    objects.create(HELM_RELEASE, "oci", FLUX_SHARD, chart_ref_release(target, "OCIRepository", "chart"))
    digest = reader.digest("charts/ocicms", "3.0.0")
    artifact = objects.ready(OCI_REPOSITORY, "chart")["status"]["artifact"]
    assert artifact["revision"] == f"3.0.0@{digest}"
    assert artifact["digest"] == "sha256:" + hashlib.sha256(package).hexdigest(), "copy: the chart as pushed"
    # helm-controller appends the first 12 hex digits of the manifest digest to the chart version.
    version = f"3.0.0+{digest.partition(':')[2][:12]}"
    done = installed(objects, "oci", version)
    assert condition(done)["reason"] == "InstallSucceeded"
    assert done["status"]["lastAttemptedRevision"] == version
    assert done["status"]["lastAttemptedRevisionDigest"] == digest
    release = release_name("oci", target)
    cms = configmaps(api, target)
    assert cms[f"{release}-ocicms"]["chartVersion"] == version
    assert json.loads(cms[f"{release}-ocicms"]["values"]) == {"greeting": "from-oci"}
