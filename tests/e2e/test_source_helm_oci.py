"""HelmRepository ``type: oci`` and the HelmCharts pulled from it, against the real distribution registry
(htpasswd + TLS) with charts pushed by the real ``helm push``; a HelmRelease installs from it.

Expected bytes and digests come from what ``helm package`` wrote and what the registry's manifest says,
never from the controller.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.source.api import HELM_CHART, HELM_REPOSITORY
from tests.e2e.test_source_controller import Api, condition, is_ready
from tests.support.control_plane import ControlPlane
from tests.support.helm_cli import AdminHelm
from tests.support.helm_tenants import make_helm_tenant
from tests.support.oci_charts import ChartPublisher, sha256
from tests.support.oci_registry import OciRegistry
from tests.support.tenants import SHARD
from tests.support.tls import PrivateCA
from tests.support.wait import until

SHARD_VALUE = "helm-oci"
LABELS = {SHARD: SHARD_VALUE}


@pytest.fixture(scope="module")
def controllers(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source", "helm"), label_selector=f"{SHARD}={SHARD_VALUE}")


@pytest.fixture(scope="module")
def registry(authority: PrivateCA) -> Iterator[OciRegistry]:
    with OciRegistry(authority) as server:
        yield server


@pytest.fixture(scope="module")
def publisher(registry: OciRegistry, tmp_path_factory: pytest.TempPathFactory) -> ChartPublisher:
    return ChartPublisher(registry, tmp_path_factory.mktemp("publish"))


class OciApi(Api):
    """The source test helper, with this module's shard label on everything and the registry's Secrets."""

    def __init__(self, api: client.ApiClient, namespace: str, registry: OciRegistry) -> None:
        super().__init__(api, namespace)
        self.registry = registry

    def create(self, res: Any, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> None:
        super().create(res, name, spec, {**LABELS, **(labels or {})})

    def basic_auth(self, name: str = "auth", password: str | None = None) -> None:
        self.secret(name, {"username": self.registry.username.encode(),
                           "password": (password or self.registry.password).encode()})  # fmt: skip

    def docker_auth(self, name: str = "docker") -> None:
        data = {".dockerconfigjson": base64.b64encode(self.registry.dockerconfigjson().encode()).decode()}
        body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), type="kubernetes.io/dockerconfigjson",
                               data=data)  # fmt: skip
        self.core.create_namespaced_secret(self.namespace, body)

    def oci_repository(self, name: str = "oci", **spec: Any) -> None:
        base = {"type": "oci", "url": self.registry.oci_url("charts"), "interval": "1m"}
        self.create(HELM_REPOSITORY, name, {**base, **spec})

    def chart(self, name: str, chart: str, version: str, repository: str = "oci", **spec: Any) -> None:
        base = {"chart": chart, "version": version, "interval": "1m",
                "sourceRef": {"kind": "HelmRepository", "name": repository}}  # fmt: skip
        self.create(HELM_CHART, name, {**base, **spec})


@pytest.fixture
def kube(admin_api: client.ApiClient, namespace: str, registry: OciRegistry, controllers: Reconcilers) -> OciApi:
    api = OciApi(admin_api, namespace, registry)
    api.secret("ca", {"ca.crt": registry.ca_pem or b""})
    return api


def registry_requests(registry: OciRegistry, path: str) -> int:
    """How many requests for ``path`` the registry's access log has."""
    return (registry.state_dir / "registry.log").read_text().count(path)


def fetch(obj: dict[str, Any]) -> bytes:
    artifact = obj["status"]["artifact"]
    data = httpx.get(artifact["url"], timeout=10).raise_for_status().content
    assert artifact["digest"] == sha256(data) and artifact["size"] == len(data)
    return data


def failed(kube: Api, name: str, reason: str, timeout: float = 60) -> dict[str, Any]:
    return until(
        lambda: kube.get(HELM_CHART, name),
        lambda o: condition(o, "Ready").get("status") == "False" and condition(o, "Ready").get("reason") == reason,
        timeout=timeout, what=f"HelmChart {name} Ready=False {reason}",
    )  # fmt: skip


def one_line_without(message: str, *secrets: str) -> bool:
    return bool(message) and "\n" not in message and not any(s and s in message for s in secrets)


# -- the HelmRepository: data only, as in Flux ------------------------------------------------------------


def test_oci_helm_repository_has_no_finalizer_status_or_artifact(kube: OciApi, registry: OciRegistry) -> None:
    kube.oci_repository("oci")
    # As a reconcile by an older controller would have left it: a finalizer and a status. Flux's
    # migration to static removes both, which proves the reconcile ran.
    kube.patch(HELM_REPOSITORY, "oci", {"metadata": {"finalizers": ["finalizers.fluxcd.io"]}})
    kube.custom.patch_namespaced_custom_object_status(
        HELM_REPOSITORY.group, HELM_REPOSITORY.version, kube.namespace, HELM_REPOSITORY.plural, "oci",
        {"status": {"observedGeneration": 1, "url": "http://old/index.yaml"}},
    )  # fmt: skip
    assert kube.get(HELM_REPOSITORY, "oci")["status"]["url"] == "http://old/index.yaml"
    kube.request_reconcile(HELM_REPOSITORY, "oci")  # as Flux: status and finalizer changes alone start nothing
    obj = until(
        lambda: kube.get(HELM_REPOSITORY, "oci"),
        lambda o: not o["metadata"].get("finalizers") and not o.get("status"),
        timeout=30, what="the OCI HelmRepository made static",
    )  # fmt: skip
    assert obj["spec"]["url"] == registry.oci_url("charts")
    assert not kube.events("oci"), "nothing to announce for a data-only object"

    # A cloud provider needs a token service fluxwarden cannot reach: Stalled, not silently anonymous.
    kube.oci_repository("cloud", provider="aws")
    stalled = kube.stalled(HELM_REPOSITORY, "cloud")
    assert condition(stalled, "Stalled")["reason"] == "UnsupportedField"
    assert "spec.provider 'aws'" in condition(stalled, "Stalled")["message"]
    kube.chart("from-cloud", "app", "1.0.0", repository="cloud")
    waiting = until(
        lambda: kube.get(HELM_CHART, "from-cloud"), lambda o: condition(o, "Ready").get("status") == "False",
        timeout=30, what="HelmChart from-cloud not Ready",
    )  # fmt: skip
    assert "spec.provider 'aws'" in condition(waiting, "Ready")["message"]


# -- charts -------------------------------------------------------------------------------------------------


def test_chart_pulled_with_basic_auth_and_private_ca(
    kube: OciApi, registry: OciRegistry, publisher: ChartPublisher
) -> None:
    pushed = publisher.push("basic", "1.0.0")
    kube.basic_auth()
    kube.oci_repository(secretRef={"name": "auth"}, certSecretRef={"name": "ca"})
    kube.chart("basic", "basic", "1.0.0")
    obj = kube.wait_ready(HELM_CHART, "basic", timeout=60)

    artifact = obj["status"]["artifact"]
    assert artifact["revision"] == "1.0.0"
    assert fetch(obj) == pushed, "stored as pulled: the very bytes helm push uploaded"
    assert artifact["digest"] == publisher.layer_digest("basic", "1.0.0")
    assert artifact["path"] == f"helmchart/{kube.namespace}/basic/basic-1.0.0.tgz"
    ready = condition(obj, "Ready")
    assert (ready["reason"], ready["message"]) == ("ChartPullSucceeded", "pulled 'basic' chart with version '1.0.0'")
    assert "observedSourceArtifactRevision" not in obj["status"], "an OCI HelmRepository has no artifact"
    assert obj["status"]["observedChartName"] == "basic"

    # An exact version already stored: the next reconcile asks the registry nothing (as Flux).
    manifests = registry_requests(registry, "/v2/charts/basic/manifests/1.0.0")
    assert manifests >= 1
    stamp = kube.request_reconcile(HELM_CHART, "basic")
    again = kube.reconciled(HELM_CHART, "basic", stamp)
    assert again["status"]["artifact"] == artifact
    assert registry_requests(registry, "/v2/charts/basic/manifests/1.0.0") == manifests


def test_range_follows_new_versions_with_docker_config(
    kube: OciApi, registry: OciRegistry, publisher: ChartPublisher
) -> None:
    first = publisher.push("ranged", "1.0.0")
    publisher.push("ranged", "2.0.0")  # outside the range
    kube.docker_auth()
    kube.oci_repository(secretRef={"name": "docker"}, certSecretRef={"name": "ca"})
    kube.chart("ranged", "ranged", "1.x")
    obj = kube.wait_ready(HELM_CHART, "ranged", timeout=60)
    assert obj["status"]["artifact"]["revision"] == "1.0.0"
    assert fetch(obj) == first

    newer = publisher.push("ranged", "1.1.0")
    stamp = kube.request_reconcile(HELM_CHART, "ranged")
    obj = kube.reconciled(HELM_CHART, "ranged", stamp, timeout=60)
    assert obj["status"]["artifact"]["revision"] == "1.1.0"
    assert fetch(obj) == newer
    assert obj["status"]["artifact"]["digest"] == publisher.layer_digest("ranged", "1.1.0")
    assert condition(obj, "Ready")["message"] == "pulled 'ranged' chart with version '1.1.0'"

    # The same tags again: the tags are listed, nothing is downloaded, the same artifact stays.
    before = obj["status"]["artifact"]
    listed = registry_requests(registry, "/v2/charts/ranged/tags/list")
    pulled = registry_requests(registry, "/v2/charts/ranged/manifests/")
    stamp = kube.request_reconcile(HELM_CHART, "ranged")
    assert kube.reconciled(HELM_CHART, "ranged", stamp, timeout=60)["status"]["artifact"] == before
    assert registry_requests(registry, "/v2/charts/ranged/tags/list") > listed
    assert registry_requests(registry, "/v2/charts/ranged/manifests/") == pulled


def test_build_metadata_survives_the_tag_encoding(kube: OciApi, publisher: ChartPublisher) -> None:
    """helm push tags 0.1.0+ci.5 as 0.1.0_ci.5 (OCI tags have no '+'); the revision is the chart version."""
    pushed = publisher.push("built", "0.1.0+ci.5")
    kube.basic_auth()
    kube.oci_repository(secretRef={"name": "auth"}, certSecretRef={"name": "ca"})
    kube.chart("built", "built", "<1.0.0")
    obj = kube.wait_ready(HELM_CHART, "built", timeout=60)
    assert obj["status"]["artifact"]["revision"] == "0.1.0+ci.5"
    assert fetch(obj) == pushed


def test_values_files_are_merged_into_the_pulled_chart(kube: OciApi, publisher: ChartPublisher) -> None:
    publisher.push("valued", "0.3.0", {"replicas": 1, "name": "chart"})
    kube.basic_auth()
    kube.oci_repository(secretRef={"name": "auth"}, certSecretRef={"name": "ca"})
    kube.chart("valued", "valued", "0.3.0", valuesFiles=["values.yaml"])
    obj = kube.wait_ready(HELM_CHART, "valued", timeout=60)
    assert (
        condition(obj, "Ready")["message"]
        == "packaged 'valued' chart with version '0.3.0' and merged values files [values.yaml]"
    )
    assert obj["status"]["observedValuesFiles"] == ["values.yaml"]


def test_plain_http_registry_with_insecure(kube: OciApi, tmp_path: Path) -> None:
    with OciRegistry(auth=False) as plain:
        pushed = ChartPublisher(plain, tmp_path).push("plain", "0.1.0")
        kube.create(HELM_REPOSITORY, "plain", {"type": "oci", "url": plain.oci_url("charts"), "insecure": True})
        kube.chart("plain", "plain", "*", repository="plain")
        obj = kube.wait_ready(HELM_CHART, "plain", timeout=60)
        assert obj["status"]["artifact"]["revision"] == "0.1.0"
        assert fetch(obj) == pushed

        # Without insecure, helm speaks TLS to a plain-HTTP server: a pull error (as Flux), never Ready.
        kube.create(HELM_REPOSITORY, "strict", {"type": "oci", "url": plain.oci_url("charts")})
        kube.chart("strict", "plain", "0.1.0", repository="strict")
        message = condition(failed(kube, "strict", "ChartPullError"), "Ready")["message"]
        assert one_line_without(message) and "server gave HTTP response to HTTPS client" in message, message


# -- bad input ----------------------------------------------------------------------------------------------


def test_wrong_credentials_untrusted_ca_and_missing_chart(
    kube: OciApi, registry: OciRegistry, publisher: ChartPublisher, authority: PrivateCA
) -> None:
    publisher.push("present", "1.0.0")
    wrong = "not-the-Pa55word-" + registry.password[:4]
    leftovers = set(Path(tempfile.gettempdir()).glob("fluxwarden-helm-login-*"))
    kube.basic_auth("wrong", password=wrong)
    kube.basic_auth("auth")
    kube.secret("stranger", {"ca.crt": PrivateCA().ca_pem})
    kube.oci_repository("wrong", secretRef={"name": "wrong"}, certSecretRef={"name": "ca"})
    kube.oci_repository("untrusted", secretRef={"name": "auth"}, certSecretRef={"name": "stranger"})
    kube.oci_repository("good", secretRef={"name": "auth"}, certSecretRef={"name": "ca"})
    kube.oci_repository("nosecret", secretRef={"name": "absent"}, certSecretRef={"name": "ca"})
    kube.chart("wrong", "present", "1.0.0", repository="wrong")
    kube.chart("wrong-range", "present", "1.x", repository="wrong")  # refused while listing the tags
    kube.chart("untrusted-range", "present", "*", repository="untrusted")
    kube.chart("untrusted", "present", "1.0.0", repository="untrusted")
    kube.chart("missing", "absent", "1.0.0", repository="good")
    kube.chart("no-tag", "present", "9.9.9", repository="good")
    kube.chart("no-match", "present", ">=5.0.0", repository="good")
    kube.chart("nosecret", "present", "1.0.0", repository="nosecret")

    for name, reason, says in (
        ("wrong", "AuthenticationFailed", "401"),
        ("untrusted", "AuthenticationFailed", "certificate"),
        ("wrong-range", "AuthenticationFailed", "401"),
        ("untrusted-range", "AuthenticationFailed", "certificate"),
        ("missing", "ChartPullError", "not found"),
        ("no-tag", "ChartPullError", "not found"),
        ("no-match", "ChartPullError", ">=5.0.0"),
        ("nosecret", "AuthenticationFailed", f"'{kube.namespace}/absent'"),
    ):
        obj = failed(kube, name, reason)
        message = condition(obj, "Ready")["message"]
        assert says in message.lower() if says.islower() else says in message, (name, message)
        assert one_line_without(message, wrong, registry.password), (name, message)
        assert not obj["status"].get("artifact"), name
    # Every pull's private helm home (registry config, TLS files) is gone once it ends (other charts
    # of the module may be pulling right now: wait for those).
    until(lambda: set(Path(tempfile.gettempdir()).glob("fluxwarden-helm-login-*")) - leftovers, lambda s: not s,
          timeout=15, what="no private helm home left")  # fmt: skip


# -- a HelmRelease from an OCI HelmRepository ---------------------------------------------------------------


def test_helm_release_installs_from_an_oci_helm_repository(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    registry: OciRegistry,
    publisher: ChartPublisher,
    controllers: Reconcilers,
    control_plane: ControlPlane,
) -> None:
    publisher.push("released", "1.2.0", {"greeting": "from-oci"})
    tenant = make_helm_tenant(admin_api, namespace_factory, registry.oci_url("charts"), registry.ca_pem or b"",
                              SHARD_VALUE)  # fmt: skip
    Api(admin_api, tenant.config).secret("registry", {"username": registry.username.encode(),
                                                      "password": registry.password.encode()})  # fmt: skip
    tenant.helm_repository("oci", type="oci", secretRef={"name": "registry"})
    release = tenant.release("app", chart="released", version="1.2.0", repository="oci")
    done = tenant.ready("app", "InstallSucceeded", timeout=120)

    helm = AdminHelm(control_plane.kubeconfig)
    [entry] = helm.history(release, tenant.target)
    assert (entry["revision"], entry["status"], entry["chart"]) == (1, "deployed", "released-1.2.0")
    chart = tenant.helm_chart("app")
    assert chart is not None and is_ready(chart)
    assert chart["status"]["artifact"]["revision"] == "1.2.0"
    assert done["status"]["history"][0]["chartVersion"] == "1.2.0"
    assert registry.password not in str(done["status"])
