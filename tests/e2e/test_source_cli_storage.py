"""``fluxwarden get sources bucket|oci [-A]`` and ``reconcile source bucket|oci NAME``, as the flux CLI.

First against objects whose status the test writes as the source controller does (so every column is
known in advance), then against the real Bucket and OCIRepository reconcilers with a real S3 server
and a real registry. An OCI HelmRepository shows as flux shows it (Ready, nothing to reconcile).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.source.api import BUCKET, HELM_REPOSITORY, OCI_REPOSITORY
from tests.e2e.test_controllers_runtime import cli, make_source
from tests.support.control_plane import ControlPlane
from tests.support.oci_charts import manifest_digest, push_artifact
from tests.support.oci_registry import OciRegistry
from tests.support.s3_server import S3Server
from tests.support.tenants import SHARD
from tests.support.wait import until

PATCHED = "cli-storage-patched"  # a shard no controller watches: the test writes the status
DIGEST = "sha256:" + "ab12" * 16
OCI_REVISION = "1.2.0@sha256:" + "cd34" * 16


def condition(status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": "Ready", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}  # fmt: skip


def write_status(api: client.ApiClient, res: Resource, namespace: str, name: str, status: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        res.group, res.version, namespace, res.plural, name, {"status": status}
    )


def artifact(revision: str) -> dict[str, Any]:
    return {"revision": revision, "digest": DIGEST, "path": "x/y.tar.gz", "url": "http://h/x/y.tar.gz",
            "size": 1, "lastUpdateTime": "2026-01-01T00:00:00Z"}  # fmt: skip


@pytest.fixture(autouse=True)
def crds(flux_crds: list[str]) -> list[str]:
    return flux_crds


class Answerer:
    """Answers reconcile requests on the patched shard as a controller would: lastHandledReconcileAt and
    the Ready condition it is told to report. Stops with the test."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.ready: dict[tuple[str, str], dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for (kind, name), ready in list(self.ready.items()):
                res = BUCKET if kind == BUCKET.kind else OCI_REPOSITORY
                obj = self.custom.get_namespaced_custom_object(res.group, res.version, self.namespace, res.plural, name)
                asked = ((obj["metadata"].get("annotations")) or {}).get("reconcile.fluxcd.io/requestedAt")
                if asked and (obj.get("status") or {}).get("lastHandledReconcileAt") != asked:
                    status = {"lastHandledReconcileAt": asked, "conditions": [ready]}
                    self.custom.patch_namespaced_custom_object_status(
                        res.group, res.version, self.namespace, res.plural, name, {"status": status}
                    )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture
def answerer(admin_api: client.ApiClient, namespace: str) -> Iterator[Answerer]:
    running = Answerer(admin_api, namespace)
    yield running
    running.stop()


def bucket_spec() -> dict[str, Any]:
    return {"bucketName": "apps", "endpoint": "127.0.0.1:9", "provider": "generic"}


def lines(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines() if line.strip()]


def cells(row: list[str]) -> list[str]:
    return [cell.strip() for cell in row]


def test_get_sources_bucket_and_oci_columns(
    control_plane: ControlPlane, admin_api: client.ApiClient, namespace: str
) -> None:
    make_source(admin_api, BUCKET, namespace, "apps", PATCHED, bucket_spec())
    make_source(admin_api, BUCKET, namespace, "broken", PATCHED, {**bucket_spec(), "suspend": True})
    make_source(admin_api, OCI_REPOSITORY, namespace, "manifests", PATCHED, {"url": "oci://127.0.0.1:9/m"})
    stored = f"stored artifact for revision '{DIGEST}'"
    write_status(admin_api, BUCKET, namespace, "apps",
                 {"artifact": artifact(DIGEST), "conditions": [condition("True", "Succeeded", stored)]})  # fmt: skip
    write_status(admin_api, BUCKET, namespace, "broken",
                 {"conditions": [condition("False", "BucketOperationFailed", "bucket 'apps' not found")]})  # fmt: skip
    ready = condition("True", "Succeeded", "stored")
    write_status(admin_api, OCI_REPOSITORY, namespace, "manifests", {"artifact": artifact(OCI_REVISION),
                                                                     "conditions": [ready]})  # fmt: skip

    buckets = cli(control_plane, "get", "sources", "bucket", "-n", namespace)
    assert buckets.returncode == 0, buckets.stderr
    header, *rows = lines(buckets.stdout)
    assert cells(header) == ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    assert [cells(r) for r in rows] == [
        ["apps", DIGEST, "False", "True", stored],
        ["broken", "", "True", "False", "bucket 'apps' not found"],
    ]

    oci = cli(control_plane, "get", "sources", "oci", "-A")
    assert oci.returncode == 0, oci.stderr
    header, *rows = lines(oci.stdout)
    assert cells(header) == ["NAMESPACE", "NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    assert [namespace, "manifests", OCI_REVISION, "False", "True", "stored"] in [cells(r) for r in rows]

    # A new source with no status yet: "waiting to be reconciled" (READY Unknown, as for every kind here).
    make_source(admin_api, OCI_REPOSITORY, namespace, "fresh", PATCHED, {"url": "oci://127.0.0.1:9/f"})
    fresh = [cells(r) for r in lines(cli(control_plane, "get", "sources", "oci", "-n", namespace).stdout)]
    assert ["fresh", "", "False", "Unknown", "waiting to be reconciled"] in fresh

    everything = cli(control_plane, "get", "sources", "-n", namespace).stdout
    assert everything.index("manifests") < everything.index("apps"), "OCIRepositories first, as flux lists them"


def test_reconcile_source_bucket_and_oci_wait_for_the_controller(
    control_plane: ControlPlane, admin_api: client.ApiClient, namespace: str, answerer: Answerer
) -> None:
    make_source(admin_api, BUCKET, namespace, "apps", PATCHED, bucket_spec())
    make_source(admin_api, OCI_REPOSITORY, namespace, "manifests", PATCHED, {"url": "oci://127.0.0.1:9/m"})
    write_status(admin_api, BUCKET, namespace, "apps", {"artifact": artifact(DIGEST)})
    write_status(admin_api, OCI_REPOSITORY, namespace, "manifests", {"artifact": artifact(OCI_REVISION)})
    answerer.ready[(BUCKET.kind, "apps")] = condition("True", "Succeeded", "stored")
    answerer.ready[(OCI_REPOSITORY.kind, "manifests")] = condition("False", "OCIArtifactPullFailed", "tag not found")

    done = cli(control_plane, "reconcile", "source", "bucket", "apps", "-n", namespace)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"► annotating Bucket apps in {namespace} namespace",
        "✔ Bucket annotated",
        "◎ waiting for Bucket reconciliation",
        "✔ Bucket reconciliation completed",
        f"✔ fetched revision {DIGEST}",
    ]
    failed = cli(control_plane, "reconcile", "source", "oci", "manifests", "-n", namespace)
    assert failed.returncode == 1
    assert f"OCIRepository {namespace}/manifests: tag not found" in failed.stderr
    assert "Traceback" not in failed.stderr

    # Nobody answers a source of a shard without a controller: a bounded wait and a one-line error.
    make_source(admin_api, BUCKET, namespace, "orphan", PATCHED, bucket_spec())
    started = time.monotonic()
    orphan = cli(control_plane, "reconcile", "source", "bucket", "orphan", "-n", namespace, "--timeout", "2s")
    assert orphan.returncode == 1 and "was not reconciled within 2s" in orphan.stderr
    assert time.monotonic() - started < 30


def test_oci_helm_repository_in_the_cli(
    control_plane: ControlPlane, admin_api: client.ApiClient, namespace: str
) -> None:
    make_source(admin_api, HELM_REPOSITORY, namespace, "oci", PATCHED, {"type": "oci", "url": "oci://127.0.0.1:9/c"})
    listed = [cells(r) for r in lines(cli(control_plane, "get", "sources", "helm", "-n", namespace).stdout)]
    assert ["oci", "", "False", "True", "Helm repository is Ready"] in listed
    done = cli(control_plane, "reconcile", "source", "helm", "oci", "-n", namespace, "--timeout", "2s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "✔ reconciliation not supported by the object"


# -- against the real reconcilers ---------------------------------------------------------------------------

REAL = "cli-storage-real"


@pytest.fixture(scope="module")
def source_controller(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source",), label_selector=f"{SHARD}={REAL}")


def s3_revision(s3_client: Any, bucket: str) -> str:
    """Flux's Bucket revision, from the server's own listing (sha256 of sorted ``<key> <etag>`` lines)."""
    found = {o["Key"]: str(o["ETag"]).strip('"') for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    lines = "".join(f"{key} {found[key]}\n" for key in sorted(found))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def test_get_and_reconcile_a_real_bucket(
    control_plane: ControlPlane, admin_api: client.ApiClient, namespace: str, source_controller: Reconcilers,
    tmp_path: Path,
) -> None:  # fmt: skip
    with S3Server(tmp_path / "s3") as s3:
        s3_client = s3.client()
        s3_client.create_bucket(Bucket="apps")
        s3_client.put_object(Bucket="apps", Key="app.yaml", Body=b"kind: ConfigMap\n")
        client.CoreV1Api(admin_api).create_namespaced_secret(
            namespace, {"metadata": {"name": "s3"}, "stringData": {"accesskey": s3.access_key,
                                                                    "secretkey": s3.secret_key}},
        )  # fmt: skip
        spec = {"bucketName": "apps", "endpoint": s3.endpoint, "insecure": True, "secretRef": {"name": "s3"}}
        make_source(admin_api, BUCKET, namespace, "apps", REAL, spec)
        first = s3_revision(s3_client, "apps")
        until(lambda: cli(control_plane, "get", "sources", "bucket", "-n", namespace).stdout,
              lambda out: first in out, timeout=60, what="the Bucket listed at its revision")  # fmt: skip
        [row] = [cells(r) for r in lines(cli(control_plane, "get", "sources", "bucket", "-n", namespace).stdout)[1:]]
        assert row[:4] == ["apps", first, "False", "True"]

        s3_client.put_object(Bucket="apps", Key="app.yaml", Body=b"kind: ConfigMap\nmetadata: {name: b}\n")
        second = s3_revision(s3_client, "apps")
        assert second != first
        done = cli(control_plane, "reconcile", "source", "bucket", "apps", "-n", namespace)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == f"✔ fetched revision {second}"

        # A wrong secret key: the reconcile fails, one line, no key in it.
        client.CoreV1Api(admin_api).patch_namespaced_secret(
            "s3", namespace, {"stringData": {"secretkey": "not-the-key-" + s3.secret_key[:4]}}
        )
        refused = cli(control_plane, "reconcile", "source", "bucket", "apps", "-n", namespace)
        assert refused.returncode == 1
        assert refused.stderr.startswith(f"✗ Bucket {namespace}/apps: "), refused.stderr
        assert s3.secret_key not in refused.stderr and "\n" not in refused.stderr.strip()


def test_get_and_reconcile_a_real_oci_repository(
    control_plane: ControlPlane, admin_api: client.ApiClient, namespace: str, source_controller: Reconcilers,
    tmp_path: Path,
) -> None:  # fmt: skip
    with OciRegistry(auth=False) as registry:
        (tmp_path / "manifests").mkdir()
        (tmp_path / "manifests" / "cm.yaml").write_text("kind: ConfigMap\n")
        push_artifact(registry, "apps:v1", tmp_path / "manifests")
        spec = {"url": registry.oci_url("apps"), "ref": {"tag": "v1"}, "insecure": True}
        make_source(admin_api, OCI_REPOSITORY, namespace, "apps", REAL, spec)
        first = f"v1@{manifest_digest(registry, 'apps', 'v1')}"
        until(lambda: cli(control_plane, "get", "sources", "oci", "-n", namespace).stdout,
              lambda out: first in out, timeout=60, what="the OCIRepository listed at its revision")  # fmt: skip
        [row] = [cells(r) for r in lines(cli(control_plane, "get", "sources", "oci", "-n", namespace).stdout)[1:]]
        assert row[:4] == ["apps", first, "False", "True"]

        (tmp_path / "manifests" / "cm.yaml").write_text("kind: ConfigMap\nmetadata: {name: b}\n")
        push_artifact(registry, "apps:v1", tmp_path / "manifests")
        second = f"v1@{manifest_digest(registry, 'apps', 'v1')}"
        assert second != first
        done = cli(control_plane, "reconcile", "source", "oci", "apps", "-n", namespace)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == f"✔ fetched revision {second}"

        make_source(admin_api, OCI_REPOSITORY, namespace, "missing", REAL, {**spec, "ref": {"tag": "v9"}})
        until(lambda: cli(control_plane, "get", "sources", "oci", "-n", namespace).stdout,
              lambda out: any(r[0].strip() == "missing" and r[3].strip() == "False" for r in lines(out)[1:]),
              timeout=60, what="the OCIRepository of a missing tag not Ready")  # fmt: skip
        refused = cli(control_plane, "reconcile", "source", "oci", "missing", "-n", namespace)
        assert refused.returncode == 1 and refused.stderr.startswith(f"✗ OCIRepository {namespace}/missing: ")
