"""A Bucket artifact consumed unchanged: by a Kustomization (kustomize controller) and by a HelmChart."""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
import yaml
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.source.api import BUCKET, HELM_CHART
from tests.e2e.test_source_bucket import Buckets
from tests.support.buckets import flux_revision, md5
from tests.support.s3_server import S3Server
from tests.support.tenants import SHARD, configmap, grant
from tests.support.wait import until

SHARD_VALUE = "bucket-consumers"


@pytest.fixture(scope="module")
def controllers(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(controllers=("source", "kustomize"), label_selector=f"{SHARD}={SHARD_VALUE}")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture
def kube(admin_api: client.ApiClient, namespace: str, controllers: Reconcilers) -> Buckets:
    return Buckets(admin_api, namespace, shard=SHARD_VALUE)


def new_bucket(server: S3Server, objects: dict[str, str]) -> str:
    name = f"b-{uuid.uuid4().hex[:10]}"
    server.client().create_bucket(Bucket=name)
    for key, body in objects.items():
        server.client().put_object(Bucket=name, Key=key, Body=body.encode())
    return name


def test_a_kustomization_applies_a_bucket_artifact_and_its_updates(
    s3: S3Server, kube: Buckets, admin_api: client.ApiClient, namespace_factory: Callable[[], str]
) -> None:
    target = namespace_factory()
    accounts = client.CoreV1Api(admin_api)
    accounts.create_namespaced_service_account(kube.namespace, {"metadata": {"name": "flux-applier"}})
    grant(admin_api, kube.namespace, kube.namespace)
    grant(admin_api, target, kube.namespace)
    objects = {"apps/a.yaml": configmap("app-a", "1"), "apps/b.yaml": configmap("app-b", "1")}
    bucket = new_bucket(s3, objects)
    kube.s3_bucket(s3, "configs", bucket)
    kube.create(KUSTOMIZATION, "apps", {
        "interval": "1m", "retryInterval": "2s", "path": "./apps", "prune": True, "targetNamespace": target,
        "sourceRef": {"kind": "Bucket", "name": "configs"},
    })  # fmt: skip
    revision = flux_revision({k: md5(v.encode()) for k, v in objects.items()})

    def applied(expected: str) -> dict[str, object]:
        return until(
            lambda: kube.get(KUSTOMIZATION, "apps"),
            lambda o: (o.get("status") or {}).get("lastAppliedRevision") == expected,
            timeout=20, what=f"Kustomization applied {expected}",  # within the 1m interval: the watch
        )  # fmt: skip

    assert kube.wait_ready(BUCKET, "configs")["status"]["artifact"]["revision"] == revision
    applied(revision)
    core = client.CoreV1Api(admin_api)
    assert {c.metadata.name: c.data for c in core.list_namespaced_config_map(target).items
            if c.metadata.name.startswith("app-")} == {"app-a": {"value": "1"}, "app-b": {"value": "1"}}  # fmt: skip

    s3.client().put_object(Bucket=bucket, Key="apps/b.yaml", Body=configmap("app-b", "2").encode())
    s3.client().delete_object(Bucket=bucket, Key="apps/a.yaml")
    kube.request_reconcile(BUCKET, "configs")
    applied(flux_revision({"apps/b.yaml": md5(configmap("app-b", "2").encode())}))
    assert {c.metadata.name: c.data for c in core.list_namespaced_config_map(target).items
            if c.metadata.name.startswith("app-")} == {"app-b": {"value": "2"}}  # pruned with the object  # fmt: skip


def test_a_helm_chart_is_packaged_from_a_bucket_and_follows_it(s3: S3Server, kube: Buckets) -> None:
    chart_yaml = "apiVersion: v2\nname: app\nversion: {}\n"
    bucket = new_bucket(s3, {
        "charts/app/Chart.yaml": chart_yaml.format("1.2.3"),
        "charts/app/values.yaml": "replicas: 1\nimage:\n  tag: a\n",
        "charts/app/values-prod.yaml": "replicas: 5\n",
        "charts/app/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
    })  # fmt: skip
    kube.s3_bucket(s3, "charts", bucket)
    kube.create(HELM_CHART, "app", {
        "chart": "charts/app", "interval": "1m", "sourceRef": {"kind": "Bucket", "name": "charts"},
        "valuesFiles": ["charts/app/values.yaml", "charts/app/values-prod.yaml"],
    })  # fmt: skip
    chart = kube.wait_ready(HELM_CHART, "app", timeout=60)
    bucket_obj = kube.get(BUCKET, "charts")
    assert chart["status"]["artifact"]["revision"] == "1.2.3"
    assert chart["status"]["observedSourceArtifactRevision"] == bucket_obj["status"]["artifact"]["revision"]
    data = httpx.get(chart["status"]["artifact"]["url"], timeout=10).raise_for_status().content
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        values = yaml.safe_load(archive.extractfile("app/values.yaml").read())  # type: ignore[union-attr]
    assert values == {"replicas": 5, "image": {"tag": "a"}}

    s3.client().put_object(Bucket=bucket, Key="charts/app/Chart.yaml", Body=chart_yaml.format("1.2.4").encode())
    kube.request_reconcile(BUCKET, "charts")  # the chart follows the Bucket's new revision through its watch
    until(lambda: kube.get(HELM_CHART, "app"), lambda o: o["status"]["artifact"]["revision"] == "1.2.4",
          timeout=60, what="HelmChart at 1.2.4")  # fmt: skip
