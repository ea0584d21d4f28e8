"""The seed's legacy manifest, end to end: moved by ``--auto-fix-legacy``, then installed by the helm controller.

TENANCY.md's reference example (a HelmRelease in its target namespace pointing at a HelmRepository in
``flux-system``) is pushed to the tenant's repository. The kustomize controller, with
``auto_fix_legacy``, moves both objects into the configuration namespace (``targetNamespace`` keeps
where the release belongs), and the helm controller then installs the chart there as flux-applier.
The chart repository is a real one over HTTPS with its own CA; only its URL, its CA and the namespace
names differ from the shipped example.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.helm.api import HELM_RELEASE
from fluxwarden.controllers.kustomize.kustomization import KustomizeOptions
from tests.support.git_server import GitHttpServer
from tests.support.helm_repo import HelmRepoServer
from tests.support.helm_tenants import trust_charts
from tests.support.tenants import SHARD, condition, make_tenant
from tests.support.tls import PrivateCA
from tests.support.wait import until

SHARD_VALUE = "legacy-helm"
EXAMPLE = Path(__file__).parents[2] / "examples" / "legacy-helmrelease.yaml"


@pytest.fixture(scope="module")
def controllers(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(
        ("source", "kustomize", "helm"),
        label_selector=f"{SHARD}={SHARD_VALUE}",
        kustomize=KustomizeOptions(auto_fix_legacy=True),
    )


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory, authority: PrivateCA) -> Iterator[HelmRepoServer]:
    with HelmRepoServer(tmp_path_factory.mktemp("legacy-charts"), tls=authority.server_context()) as server:
        server.add_chart("nginx", "1.0.0", {"greeting": "hello"})
        yield server


def legacy_manifest(target: str, url: str) -> str:
    """The shipped example with a reachable repository (and its CA) and this test's target namespace."""
    repository, release = yaml.safe_load_all(EXAMPLE.read_text())
    assert release["metadata"]["namespace"] == "nginx" and repository["metadata"]["namespace"] == "flux-system"
    repository["spec"] = {**repository["spec"], "url": url, "certSecretRef": {"name": "charts-ca"}}
    release["metadata"]["namespace"] = target
    return yaml.safe_dump_all([repository, release])


def test_the_legacy_helmrelease_is_moved_then_installed_into_its_target_namespace(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    charts: HelmRepoServer,
    authority: PrivateCA,
    controllers: Reconcilers,
) -> None:
    tenant = make_tenant(admin_api, namespace_factory, git_server, tmp_path, shard=SHARD_VALUE)
    core = client.CoreV1Api(admin_api)
    trust_charts(admin_api, tenant.config, authority.ca_pem)
    tenant.push({"legacy/release.yaml": legacy_manifest(tenant.target, charts.url)})
    tenant.git_repository()
    # The shard label on what the Kustomization applies, and (as Flux's sharding docs say) on the
    # HelmChart template through spec.chart.metadata.labels.
    shard_patch = {
        "target": {"kind": "HelmRelease"},
        "patch": yaml.safe_dump(
            [{"op": "add", "path": "/spec/chart/metadata", "value": {"labels": {SHARD: SHARD_VALUE}}}]
        ),
    }
    tenant.kustomization(
        "legacy", path="./legacy", commonMetadata={"labels": {SHARD: SHARD_VALUE}}, patches=[shard_patch]
    )

    custom = client.CustomObjectsApi(admin_api)

    def release() -> dict[str, Any]:
        try:
            found: dict[str, Any] = custom.get_namespaced_custom_object(
                HELM_RELEASE.group, HELM_RELEASE.version, tenant.config, HELM_RELEASE.plural, "nginx"
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return {}  # not applied by the Kustomization yet
            raise
        return found

    def installed(obj: dict[str, Any]) -> bool:
        ready = condition(obj)
        return ready.get("status") == "True" and ready.get("reason") == "InstallSucceeded"

    done = until(release, installed, timeout=120, what="the moved HelmRelease installed")
    assert done["spec"]["targetNamespace"] == tenant.target
    assert done["spec"]["chart"]["spec"]["sourceRef"]["namespace"] == tenant.config
    assert done["status"]["storageNamespace"] == tenant.target
    events = core.list_namespaced_event(tenant.config).items
    assert any(e.reason == "LegacyManifestFixed" for e in events)

    # The chart's ConfigMap is in the target namespace, owned by the release, with the values given.
    release_name = done["status"]["history"][0]["name"]
    made = core.read_namespaced_config_map(f"{release_name}-nginx", tenant.target)
    assert made.data["chartVersion"] == "1.0.0"
    assert made.metadata.labels["helm.toolkit.fluxcd.io/name"] == "nginx"
    assert made.metadata.labels["helm.toolkit.fluxcd.io/namespace"] == tenant.config
    assert [s.metadata.name for s in core.list_namespaced_secret(tenant.target, label_selector="owner=helm").items] == [
        f"sh.helm.release.v1.{release_name}.v1"
    ]
    # Nothing was left where the legacy manifest pointed: no release in the legacy places.
    assert not core.list_namespaced_secret(tenant.config, label_selector="owner=helm").items
