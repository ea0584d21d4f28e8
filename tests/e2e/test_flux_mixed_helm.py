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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.helm.api import HELM_RELEASE
from fluxwarden.controllers.source.api import HELM_CHART, HELM_REPOSITORY, OCI_REPOSITORY
from tests.support import helm_charts
from tests.support.control_plane import ControlPlane
from tests.support.flux_mixed import FLUX_SHARD, FLUXWARDEN_SHARDS, Objects, configmaps, flux_on_shard, registry_secrets
from tests.support.flux_upstream import FluxController
from tests.support.helm_cli import AdminHelm
from tests.support.helm_repo import HelmRepoServer
from tests.support.helm_tenants import release_name, trust_charts
from tests.support.oci_artifacts import HELM_CHART_LAYER, RegistryReader
from tests.support.oci_charts import ChartPublisher
from tests.support.oci_registry import OciRegistry
from tests.support.tenants import SHARD, condition, grant
from tests.support.tls import PrivateCA

CHART_VALUES = {"greeting": "hello"}

# fluxwarden's own shard in this module: its reconcilers run until the session ends, so no module shares it.
FLUXWARDEN_SHARD = f"{FLUXWARDEN_SHARDS}-helm"


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory, authority: PrivateCA) -> Iterator[HelmRepoServer]:
    with HelmRepoServer(tmp_path_factory.mktemp("mixed-charts"), tls=authority.server_context()) as repo:
        repo.add_chart("cms", "1.0.0", CHART_VALUES, templates=helm_charts.configmaps(2))
        repo.add_chart("cms", "1.1.0", CHART_VALUES, templates=helm_charts.configmaps(2))
        yield repo


@pytest.fixture(scope="module")
def fluxwarden(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source", "helm"), label_selector=f"{SHARD}={FLUXWARDEN_SHARD}")


@pytest.fixture(scope="module")
def flux_helm(
    control_plane: ControlPlane, flux_crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FluxController]:
    work = tmp_path_factory.mktemp("flux-helm")
    with flux_on_shard("helm-controller", control_plane.kubeconfig, work) as controller:
        yield controller


def helm_tenant(
    api: client.ApiClient, namespace_factory: Callable[[], str], charts: HelmRepoServer, ca_pem: bytes
) -> tuple[str, str]:
    """Config and target namespaces (flux-applier may write to both) and HelmRepository ``charts`` in config,
    on fluxwarden's shard."""
    config, target = namespace_factory(), namespace_factory()
    client.CoreV1Api(api).create_namespaced_service_account(config, {"metadata": {"name": "flux-applier"}})
    grant(api, config, config)
    grant(api, target, config)
    trust_charts(api, config, ca_pem)
    spec = {"url": charts.url, "interval": "1h", "certSecretRef": {"name": "charts-ca"}}
    Objects(api, config).create(HELM_REPOSITORY, "charts", FLUXWARDEN_SHARD, spec)
    return config, target


def chart_digest(charts: HelmRepoServer, version: str) -> str:
    """The digest of the packaged chart as the repository serves it: what the artifact must be, byte for byte."""
    return "sha256:" + hashlib.sha256((charts.root / f"cms-{version}.tgz").read_bytes()).hexdigest()


def installed(objects: Objects, name: str, version: str) -> dict[str, Any]:
    def done(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        history = status.get("history") or []
        current = status.get("observedGeneration") == obj["metadata"]["generation"]
        at_version = bool(history) and history[0].get("chartVersion") == version
        return current and condition(obj).get("status") == "True" and at_version

    return objects.wait(HELM_RELEASE, name, done, f"Ready at chart {version}", timeout=120)


def test_flux_helm_controller_installs_a_chart_that_fluxwarden_fetched(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    control_plane: ControlPlane,
    charts: HelmRepoServer,
    authority: PrivateCA,
    fluxwarden: Reconcilers,
    flux_helm: FluxController,
) -> None:
    config, target = helm_tenant(admin_api, namespace_factory, charts, authority.ca_pem)
    objects = Objects(admin_api, config, (flux_helm,))
    chart_spec = {"chart": "cms", "version": "1.0.0", "interval": "1h",
                  "sourceRef": {"kind": "HelmRepository", "name": "charts"}}  # fmt: skip
    objects.create(
        HELM_RELEASE, "app", FLUX_SHARD,
        {"interval": "1h", "targetNamespace": target, "timeout": "30s", "values": {"greeting": "mixed"},
         "chart": {"spec": chart_spec, "metadata": {"labels": {SHARD: FLUXWARDEN_SHARD}}}},
    )  # fmt: skip

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
    cms = configmaps(admin_api, target)
    assert set(cms) == {f"{release}-0", f"{release}-1"}
    assert cms[f"{release}-0"]["chartVersion"] == "1.0.0"
    assert json.loads(cms[f"{release}-0"]["values"]) == {"greeting": "mixed"}
    helm = AdminHelm(control_plane.kubeconfig)
    assert [(e["revision"], e["status"]) for e in helm.history(release, config)] == [(1, "deployed")]
    writers = {m["manager"] for m in chart["metadata"].get("managedFields") or [] if m.get("subresource") == "status"}
    assert writers and "source-controller" not in writers, writers  # not Flux's source-controller

    # A new chart version in the HelmRelease: Flux updates the HelmChart, fluxwarden fetches it, Flux upgrades.
    objects.patch(HELM_RELEASE, "app", {"spec": {"chart": {"spec": {"version": "1.1.0"}}}})
    upgraded = installed(objects, "app", "1.1.0")
    assert condition(upgraded)["reason"] == "UpgradeSucceeded"
    assert objects.get(HELM_CHART, f"{config}-app")["status"]["artifact"]["digest"] == chart_digest(charts, "1.1.0")
    assert configmaps(admin_api, target)[f"{release}-0"]["chartVersion"] == "1.1.0"


def test_flux_helm_controller_installs_from_a_chart_ref_to_a_fluxwarden_helm_chart(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    charts: HelmRepoServer,
    authority: PrivateCA,
    fluxwarden: Reconcilers,
    flux_helm: FluxController,
) -> None:
    config, target = helm_tenant(admin_api, namespace_factory, charts, authority.ca_pem)
    objects = Objects(admin_api, config, (flux_helm,))
    objects.create(
        HELM_CHART, "cms", FLUXWARDEN_SHARD,
        {"chart": "cms", "version": "1.1.0", "interval": "1h",
         "sourceRef": {"kind": "HelmRepository", "name": "charts"}},
    )  # fmt: skip
    objects.create(
        HELM_RELEASE, "ref", FLUX_SHARD,
        {"interval": "1h", "targetNamespace": target, "timeout": "30s",
         "chartRef": {"kind": "HelmChart", "name": "cms"}},
    )  # fmt: skip
    done = installed(objects, "ref", "1.1.0")
    assert condition(done)["reason"] == "InstallSucceeded"
    artifact = objects.get(HELM_CHART, "cms")["status"]["artifact"]
    assert artifact["digest"] == chart_digest(charts, "1.1.0")
    # With chartRef to a HelmChart, Flux records the version of the chart it installed.
    assert done["status"]["lastAttemptedRevision"] == "1.1.0"
    release = release_name("ref", target)
    cms = configmaps(admin_api, target)
    assert set(cms) == {f"{release}-0", f"{release}-1"}
    assert cms[f"{release}-0"]["chartVersion"] == "1.1.0"
    assert json.loads(cms[f"{release}-0"]["values"]) == CHART_VALUES


def test_flux_helm_controller_installs_from_a_chart_ref_to_a_fluxwarden_oci_repository(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    registry: OciRegistry,
    reader: RegistryReader,
    tmp_path: Path,
    fluxwarden: Reconcilers,
    flux_helm: FluxController,
) -> None:
    """A chart pushed with the real ``helm push``; fluxwarden's OCIRepository copies its layer, Flux installs it."""
    config, target = namespace_factory(), namespace_factory()
    client.CoreV1Api(admin_api).create_namespaced_service_account(config, {"metadata": {"name": "flux-applier"}})
    grant(admin_api, config, config)
    grant(admin_api, target, config)
    registry_secrets(admin_api, config, registry)
    package = ChartPublisher(registry, tmp_path).push("ocicms", "3.0.0", {"greeting": "from-oci"})
    objects = Objects(admin_api, config, (flux_helm,))
    objects.create(
        OCI_REPOSITORY, "chart", FLUXWARDEN_SHARD,
        {"url": registry.oci_url("charts/ocicms"), "interval": "1h", "ref": {"tag": "3.0.0"},
         "secretRef": {"name": "login"}, "certSecretRef": {"name": "registry-ca"},
         "layerSelector": {"mediaType": HELM_CHART_LAYER, "operation": "copy"}},
    )  # fmt: skip
    objects.create(
        HELM_RELEASE, "oci", FLUX_SHARD,
        {"interval": "1h", "targetNamespace": target, "timeout": "30s",
         "chartRef": {"kind": "OCIRepository", "name": "chart"}},
    )  # fmt: skip
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
    cms = configmaps(admin_api, target)
    assert cms[f"{release}-ocicms"]["chartVersion"] == version
    assert json.loads(cms[f"{release}-ocicms"]["values"]) == {"greeting": "from-oci"}
