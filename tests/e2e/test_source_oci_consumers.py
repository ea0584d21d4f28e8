"""OCIRepository artifacts consumed end to end: a Kustomization applies what ``fluxwarden push artifact``
published; a HelmRelease ``chartRef`` installs a chart published with the real ``helm push``. The
controllers run as the shipped ServiceAccount (manifests/controllers RBAC, its own token), so these
also prove those rights are enough to reconcile, watch and consume OCIRepositories.

The registry is the real distribution registry (htpasswd + TLS); helm logs in with ``--password-stdin``
and a registry config in a temporary directory. Revisions and chart versions are derived here from the
registry's own digests (Flux: ``<tag>@<digest>``; helm-controller: ``<version>+<first 12 hex>``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.helm.api import HELM_RELEASE
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.source.api import OCI_REPOSITORY
from tests.support import helm_charts
from tests.support.control_plane import ControlPlane
from tests.support.helm_cli import helm_env
from tests.support.helm_repo import helm_binary, write_chart
from tests.support.helm_tenants import release_name
from tests.support.kube import Kubectl
from tests.support.manifests import apply, built, rbac_of
from tests.support.namespaces import ensure_namespace
from tests.support.oci_artifacts import HELM_CHART_LAYER, RegistryReader, fluxwarden_push, write_tree
from tests.support.oci_registry import OciRegistry
from tests.support.tenants import SHARD, configmap, grant
from tests.support.tokens import service_account_token, token_client, token_kubeconfig
from tests.support.wait import until

SHARD_VALUE = "oci-consumers"
NAMESPACE, ACCOUNT = "flux-system", "fluxwarden-controllers"  # manifests/controllers


@pytest.fixture(scope="module")
def account_api(
    kubectl: Kubectl, admin_api: client.ApiClient, control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[client.ApiClient]:
    """The controllers' shipped RBAC (manifests/controllers) applied; a client with that account's own token."""
    ensure_namespace(admin_api, NAMESPACE)
    apply(kubectl, rbac_of(built(kubectl, "manifests/controllers"), ACCOUNT))
    token = service_account_token(admin_api, NAMESPACE, ACCOUNT)
    path = token_kubeconfig(control_plane.kubeconfig, token, tmp_path_factory.mktemp("sa") / "kubeconfig")
    with token_client(path) as api:
        until(lambda: _can_watch_oci(api), bool, what=f"RBAC of {ACCOUNT}")
        yield api


def _can_watch_oci(api: client.ApiClient) -> bool:
    attributes = client.V1ResourceAttributes(verb="watch", resource="ocirepositories", group=OCI_REPOSITORY.group)
    review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes))
    return bool(client.AuthorizationV1Api(api).create_self_subject_access_review(review).status.allowed)


@pytest.fixture(scope="module")
def controllers(start_reconcilers: Callable[..., Reconcilers], account_api: client.ApiClient) -> Reconcilers:
    """Source, kustomize and helm as the shipped ServiceAccount, with exactly its rights."""
    return start_reconcilers(("source", "kustomize", "helm"), label_selector=f"{SHARD}={SHARD_VALUE}", api=account_api)


class Tenant:
    """A config namespace (Flux objects, flux-applier) and a target namespace it may write to."""

    def __init__(self, api: client.ApiClient, config: str, target: str, registry: OciRegistry) -> None:
        self.custom, self.core = client.CustomObjectsApi(api), client.CoreV1Api(api)
        self.config, self.target, self.registry = config, target, registry
        self.core.create_namespaced_service_account(config, {"metadata": {"name": "flux-applier"}})
        grant(api, config, config)
        grant(api, target, config)
        login = {".dockerconfigjson": base64.b64encode(registry.dockerconfigjson().encode()).decode()}
        self.core.create_namespaced_secret(
            config, {"metadata": {"name": "login"}, "type": "kubernetes.io/dockerconfigjson", "data": login}
        )
        self.core.create_namespaced_secret(
            config, {"metadata": {"name": "registry-ca"}, "stringData": {"ca.crt": (registry.ca_pem or b"").decode()}}
        )

    def create(self, resource: Resource, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": resource.api_version, "kind": resource.kind, "spec": spec,
                "metadata": {"name": name, "namespace": self.config, "labels": {SHARD: SHARD_VALUE}}}  # fmt: skip
        self.custom.create_namespaced_custom_object(
            resource.group, resource.version, self.config, resource.plural, body
        )

    def oci_repository(self, name: str, repo: str, **spec: Any) -> None:
        self.create(OCI_REPOSITORY, name, {
            "url": self.registry.oci_url(repo), "interval": "10m", "secretRef": {"name": "login"},
            "certSecretRef": {"name": "registry-ca"}, **spec,
        })  # fmt: skip

    def get(self, resource: Resource, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            resource.group, resource.version, self.config, resource.plural, name
        )
        return obj

    def ready(self, resource: Resource, name: str, done: Callable[[dict[str, Any]], bool], timeout: float = 90) -> Any:
        def check(obj: dict[str, Any]) -> bool:
            status = obj.get("status") or {}
            current = status.get("observedGeneration") == obj["metadata"]["generation"]
            return current and condition(obj).get("status") == "True" and done(obj)

        return until(lambda: self.get(resource, name), check, timeout=timeout, what=f"{resource.kind} {name} Ready")

    def configmaps(self) -> dict[str, dict[str, str]]:
        found = self.core.list_namespaced_config_map(self.target).items
        return {c.metadata.name: dict(c.data or {}) for c in found if c.metadata.name != "kube-root-ca.crt"}


def condition(obj: dict[str, Any], type_: str = "Ready") -> dict[str, Any]:
    return next((dict(c) for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


@pytest.fixture
def tenant(
    admin_api: client.ApiClient, namespace_factory: Callable[[], str], registry: OciRegistry, controllers: Reconcilers
) -> Tenant:
    return Tenant(admin_api, namespace_factory(), namespace_factory(), registry)


def test_kustomization_applies_an_artifact_from_push_artifact(
    tenant: Tenant, registry: OciRegistry, reader: RegistryReader, tmp_path: Path
) -> None:
    first = write_tree(tmp_path / "one", {"app/a.yaml": configmap("app-a", "1"), "app/b.yaml": configmap("app-b", "1")})
    pushed = fluxwarden_push(registry, registry.oci_url("deploy/app") + ":main", first, "--source", "git.example")
    assert pushed.returncode == 0, pushed.stderr
    tenant.oci_repository("app", "deploy/app", ref={"tag": "main"})
    tenant.create(KUSTOMIZATION, "app", {
        "interval": "10m", "retryInterval": "2s", "prune": True, "path": "./app", "targetNamespace": tenant.target,
        "sourceRef": {"kind": "OCIRepository", "name": "app"},
    })  # fmt: skip
    revision = f"main@{reader.digest('deploy/app', 'main')}"
    applied = tenant.ready(KUSTOMIZATION, "app", lambda o: o["status"].get("lastAppliedRevision") == revision)
    assert applied["status"]["lastAttemptedRevision"] == revision
    assert tenant.configmaps() == {"app-a": {"value": "1"}, "app-b": {"value": "1"}}

    # A new push to the same tag: the OCIRepository moves, and the Kustomization applies and prunes.
    second = write_tree(tmp_path / "two", {"app/a.yaml": configmap("app-a", "2")})
    assert fluxwarden_push(registry, registry.oci_url("deploy/app") + ":main", second).returncode == 0
    new_revision = f"main@{reader.digest('deploy/app', 'main')}"
    assert new_revision != revision
    tenant.custom.patch_namespaced_custom_object(
        OCI_REPOSITORY.group, OCI_REPOSITORY.version, tenant.config, OCI_REPOSITORY.plural, "app",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": new_revision}}},
    )  # fmt: skip
    tenant.ready(KUSTOMIZATION, "app", lambda o: o["status"].get("lastAppliedRevision") == new_revision)
    until(tenant.configmaps, lambda found: found == {"app-a": {"value": "2"}}, timeout=30, what="app-b pruned")


def helm(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real helm CLI with its own home and registry config (``HELM_REGISTRY_CONFIG``) under ``home``."""
    env = {**helm_env(str(home)), "HELM_REGISTRY_CONFIG": str(home / "registry.json")}
    env.pop("DOCKER_CONFIG", None)
    return subprocess.run([helm_binary(), *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)


def helm_push(registry: OciRegistry, home: Path, source: Path, name: str, version: str, **values: Any) -> None:
    chart = write_chart(source, name, version, values, templates=helm_charts.configmaps(2))
    packaged = helm(home, "package", str(chart), "-d", str(source / "pkg"))
    assert packaged.returncode == 0, packaged.stderr
    pushed = helm(home, "push", str(source / "pkg" / f"{name}-{version}.tgz"), registry.oci_url("charts"),
                  "--ca-file", str(registry.ca_file))  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr


def test_helmrelease_chart_ref_installs_a_chart_pushed_with_helm(
    tenant: Tenant, registry: OciRegistry, reader: RegistryReader, tmp_path: Path
) -> None:
    home = tmp_path / "helm"
    home.mkdir()
    login = helm(home, "registry", "login", registry.host, "--username", registry.username, "--password-stdin",
                 "--ca-file", str(registry.ca_file), stdin=registry.password)  # fmt: skip
    assert login.returncode == 0, login.stderr
    assert registry.host in (home / "registry.json").read_text(), "the login went to the temporary config"
    assert not os.environ.get("HELM_REGISTRY_CONFIG")
    helm_push(registry, home, tmp_path / "v1", "cms", "1.0.0", greeting="hello")

    selector = {"mediaType": HELM_CHART_LAYER, "operation": "copy"}
    tenant.oci_repository("chart", "charts/cms", ref={"semver": ">=1.0.0"}, layerSelector=selector)
    tenant.create(HELM_RELEASE, "web", {
        "interval": "10m", "timeout": "30s", "targetNamespace": tenant.target,
        "chartRef": {"kind": "OCIRepository", "name": "chart"}, "values": {"greeting": "from-the-release"},
    })  # fmt: skip
    digest = reader.digest("charts/cms", "1.0.0")
    version = f"1.0.0+{digest.partition(':')[2][:12]}"  # helm-controller's mutateChartWithSourceRevision
    done = tenant.ready(HELM_RELEASE, "web", lambda o: condition(o)["reason"] == "InstallSucceeded")
    [entry] = done["status"]["history"]
    assert (entry["chartName"], entry["chartVersion"]) == ("cms", version)
    assert done["status"]["lastAttemptedRevision"] == version
    assert done["status"]["lastAttemptedRevisionDigest"] == digest
    release = release_name("web", tenant.target)
    assert condition(done)["message"].endswith(f"with chart cms@{version}")
    found = tenant.configmaps()
    assert set(found) == {f"{release}-0", f"{release}-1"}
    assert found[f"{release}-0"]["chartVersion"] == version
    assert json.loads(found[f"{release}-0"]["values"]) == {"greeting": "from-the-release"}

    source = tenant.get(OCI_REPOSITORY, "chart")
    assert source["status"]["artifact"]["revision"] == f"1.0.0@{digest}"
    _, manifest = reader.manifest("charts/cms", digest)
    assert source["status"]["artifact"]["digest"] == manifest["layers"][0]["digest"], "copy: the chart as pushed"

    # A new chart version pushed: the OCIRepository (watched by the helm controller) moves and it upgrades.
    helm_push(registry, home, tmp_path / "v2", "cms", "1.1.0", greeting="hello")
    tenant.custom.patch_namespaced_custom_object(
        OCI_REPOSITORY.group, OCI_REPOSITORY.version, tenant.config, OCI_REPOSITORY.plural, "chart",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "1.1.0"}}},
    )  # fmt: skip
    new_version = f"1.1.0+{reader.digest('charts/cms', '1.1.0').partition(':')[2][:12]}"
    upgraded = tenant.ready(HELM_RELEASE, "web", lambda o: o["status"]["history"][0]["chartVersion"] == new_version)
    assert condition(upgraded)["reason"] == "UpgradeSucceeded"
    assert [e["chartVersion"] for e in upgraded["status"]["history"]] == [new_version, version]
    assert tenant.configmaps()[f"{release}-1"]["chartVersion"] == new_version
