"""Bucket sources of provider generic against a real S3 server (versitygw) over HTTP and HTTPS.

Revisions are recomputed here from what the test uploaded (MD5 ETags) with Flux's digest formula;
downloads and listings are counted in versitygw's own access log.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.source.api import BUCKET
from tests.e2e.test_source_controller import Api, condition, fetch_artifact, ready_reason
from tests.support.buckets import controller_requests, flux_revision, logged_s3, md5
from tests.support.s3_server import S3Server
from tests.support.tls import PrivateCA
from tests.support.wait import until

SHARD = "sharding.fluxcd.io/key"
EMPTY = flux_revision({})


@pytest.fixture(scope="module")
def bucket_source(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source",), label_selector=f"{SHARD}=bucket")


@pytest.fixture(scope="module")
def small_bucket_source(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    """A 4 KiB ``--max-source-size``, for objects in shard ``bucket-small``."""
    return start_reconcilers(("source",), label_selector=f"{SHARD}=bucket-small", max_source_size=4096)


@pytest.fixture(scope="module")
def ca() -> PrivateCA:
    return PrivateCA()


@pytest.fixture(scope="module")
def s3_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("s3-log") / "access.log"


@pytest.fixture(scope="module")
def plain_s3(s3_log: Path) -> Iterator[S3Server]:
    with logged_s3(s3_log) as server:
        yield server


@pytest.fixture(scope="module")
def tls_s3(ca: PrivateCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with logged_s3(tmp_path_factory.mktemp("s3-tls-log") / "access.log", ca) as server:
        yield server


@pytest.fixture(params=["http", "https"])
def s3(request: pytest.FixtureRequest) -> S3Server:
    server: S3Server = request.getfixturevalue("plain_s3" if request.param == "http" else "tls_s3")
    return server


class Buckets(Api):
    """The test namespace's Flux objects, all in one shard, and a bucket of its own per test."""

    def __init__(self, api: client.ApiClient, namespace: str, shard: str = "bucket") -> None:
        super().__init__(api, namespace)
        self.shard = shard

    def create(self, res: Any, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> None:
        super().create(res, name, spec, {SHARD: self.shard, **(labels or {})})

    def s3_bucket(self, server: S3Server, name: str, bucket: str, **spec: Any) -> None:
        """A Bucket of ``server``'s bucket, with its keys in a Secret and its CA in another over HTTPS."""
        secret = f"{name}-keys"
        self.secret(secret, {k: v.encode() for k, v in server.secret_data().items()})
        base: dict[str, Any] = {"bucketName": bucket, "endpoint": server.endpoint, "interval": "1m",
                                "secretRef": {"name": secret}}  # fmt: skip
        if server.insecure:
            base["insecure"] = True
        else:
            assert server.ca_pem is not None
            self.secret(f"{name}-ca", {"ca.crt": server.ca_pem})
            base["certSecretRef"] = {"name": f"{name}-ca"}
        self.create(BUCKET, name, {**base, **spec})


@pytest.fixture
def kube(admin_api: client.ApiClient, namespace: str, bucket_source: Reconcilers) -> Buckets:
    return Buckets(admin_api, namespace)


def new_bucket(server: S3Server, objects: dict[str, bytes]) -> str:
    name = f"b-{uuid.uuid4().hex[:10]}"
    s3 = server.client()
    s3.create_bucket(Bucket=name)
    for key, body in objects.items():
        s3.put_object(Bucket=name, Key=key, Body=body)
    return name


def index_of(objects: dict[str, bytes]) -> dict[str, str]:
    return {key: md5(body) for key, body in objects.items() if key != ".sourceignore"}


# -- revisions and artifacts -------------------------------------------------------------------------


def test_ready_with_fluxs_revision_and_the_objects_as_artifact(s3: S3Server, kube: Buckets) -> None:
    objects = {"app/deploy.yaml": b"kind: ConfigMap\n", "app/nested/values.yaml": b"a: 1\n", "top.txt": b"top"}
    bucket = new_bucket(s3, objects)
    kube.s3_bucket(s3, "configs", bucket)
    ready = kube.wait_ready(BUCKET, "configs")

    expected = flux_revision(index_of(objects))
    artifact = ready["status"]["artifact"]
    assert artifact["revision"] == expected
    assert artifact["path"] == f"bucket/{kube.namespace}/configs/{expected.removeprefix('sha256:')}.tar.gz"
    assert condition(ready, "Ready")["reason"] == "Succeeded"
    assert condition(ready, "Ready")["message"] == f"stored artifact: revision '{expected}'"
    assert condition(ready, "ArtifactInStorage")["status"] == "True"
    _, files = fetch_artifact(ready)
    assert files == objects


def test_a_changed_object_gives_a_new_revision_and_the_same_content_the_same_digest(
    s3: S3Server, kube: Buckets
) -> None:
    objects = {"a.yaml": b"a: 1\n", "b.yaml": b"b: 1\n"}
    bucket = new_bucket(s3, objects)
    kube.s3_bucket(s3, "one", bucket)
    kube.s3_bucket(s3, "two", bucket)
    one, two = kube.wait_ready(BUCKET, "one"), kube.wait_ready(BUCKET, "two")
    assert one["status"]["artifact"]["revision"] == two["status"]["artifact"]["revision"]
    assert one["status"]["artifact"]["digest"] == two["status"]["artifact"]["digest"]  # same bytes twice

    s3.client().put_object(Bucket=bucket, Key="b.yaml", Body=b"b: 2\n")
    stamp = kube.request_reconcile(BUCKET, "one")
    changed = kube.reconciled(BUCKET, "one", stamp)
    expected = flux_revision(index_of({**objects, "b.yaml": b"b: 2\n"}))
    assert changed["status"]["artifact"]["revision"] == expected != one["status"]["artifact"]["revision"]
    assert fetch_artifact(changed)[1] == {"a.yaml": b"a: 1\n", "b.yaml": b"b: 2\n"}

    s3.client().put_object(Bucket=bucket, Key="b.yaml", Body=b"b: 1\n")  # back: the same content, the same digest
    stamp = kube.request_reconcile(BUCKET, "one")
    back = kube.reconciled(BUCKET, "one", stamp)
    assert back["status"]["artifact"]["revision"] == one["status"]["artifact"]["revision"]
    assert back["status"]["artifact"]["digest"] == one["status"]["artifact"]["digest"]


def test_sourceignore_and_spec_ignore_change_the_digest(plain_s3: S3Server, kube: Buckets) -> None:
    objects = {
        ".sourceignore": b"docs/\n",
        "apps/a.yaml": b"a\n",
        "apps/secret.env": b"x\n",
        "docs/readme.md": b"d\n",
        "logo.png": b"\x89PNG",  # Flux's bucket index has no default exclusions
    }
    bucket = new_bucket(plain_s3, objects)
    kube.s3_bucket(plain_s3, "plain", bucket)
    kube.s3_bucket(plain_s3, "ignoring", bucket, ignore="*.env\n")
    plain, ignoring = kube.wait_ready(BUCKET, "plain"), kube.wait_ready(BUCKET, "ignoring")

    kept = {k: v for k, v in objects.items() if not k.startswith("docs/")}
    assert plain["status"]["artifact"]["revision"] == flux_revision(index_of(kept))
    without_env = {k: v for k, v in kept.items() if not k.endswith(".env")}
    assert ignoring["status"]["artifact"]["revision"] == flux_revision(index_of(without_env))
    assert ignoring["status"]["artifact"]["digest"] != plain["status"]["artifact"]["digest"]
    assert ignoring["status"]["observedIgnore"] == "*.env\n"
    # As Flux, the root .sourceignore is fetched into the directory that is archived.
    assert fetch_artifact(plain)[1] == kept
    assert fetch_artifact(ignoring)[1] == without_env

    plain_s3.client().put_object(Bucket=bucket, Key=".sourceignore", Body=b"docs/\n*.png\n")
    stamp = kube.request_reconcile(BUCKET, "plain")
    reread = kube.reconciled(BUCKET, "plain", stamp)
    no_png = {k: v for k, v in kept.items() if k != "logo.png"}
    assert reread["status"]["artifact"]["revision"] == flux_revision(index_of(no_png))


def test_prefix_selects_objects_and_an_empty_prefix_gives_an_empty_artifact(plain_s3: S3Server, kube: Buckets) -> None:
    objects = {".sourceignore": b"*.md\n", "app/a.yaml": b"a\n", "app/README.md": b"r\n", "other/b.yaml": b"b\n"}
    bucket = new_bucket(plain_s3, objects)
    kube.s3_bucket(plain_s3, "app", bucket, prefix="app/")
    kube.s3_bucket(plain_s3, "none", bucket, prefix="nothing-here/")
    app, none = kube.wait_ready(BUCKET, "app"), kube.wait_ready(BUCKET, "none")
    # The root .sourceignore applies under a prefix too (read with a HEAD and a GET, not listed).
    assert app["status"]["artifact"]["revision"] == flux_revision({"app/a.yaml": md5(b"a\n")})
    assert fetch_artifact(app)[1] == {"app/a.yaml": b"a\n", ".sourceignore": b"*.md\n"}
    assert none["status"]["artifact"]["revision"] == EMPTY
    assert condition(none, "Ready")["reason"] == "Succeeded"
    assert set(fetch_artifact(none)[1]) == {".sourceignore"}


def test_an_unchanged_bucket_is_listed_once_per_reconcile_and_nothing_is_downloaded_or_written(
    plain_s3: S3Server, s3_log: Path, kube: Buckets
) -> None:
    objects = {".sourceignore": b"*.md\n", "a.yaml": b"a\n", "b/c.yaml": b"c\n", "b/notes.md": b"n\n"}
    bucket = new_bucket(plain_s3, objects)
    kube.s3_bucket(plain_s3, "quiet", bucket, interval="1s")
    first = kube.wait_ready(BUCKET, "quiet")
    fetched = controller_requests(s3_log, bucket)
    assert sorted(r.key for r in fetched if r.action == "s3_GetObject") == [".sourceignore", "a.yaml", "b/c.yaml"]

    stamp = kube.request_reconcile(BUCKET, "quiet")
    handled = kube.reconciled(BUCKET, "quiet", stamp)  # a reconcile ran and wrote only lastHandledReconcileAt
    assert handled["status"]["artifact"] == first["status"]["artifact"]
    seen = len(controller_requests(s3_log, bucket))
    until(
        lambda: [r for r in controller_requests(s3_log, bucket)[seen:] if r.action == "s3_ListObjectsV2"],
        lambda listings: len(listings) >= 3,
        what="three more reconciles at a 1s interval",
    )
    later = controller_requests(s3_log, bucket)[seen:]
    assert {r.action for r in later} == {"s3_ListObjectsV2"}, later  # no GET, no HEAD: one listing each
    after = kube.get(BUCKET, "quiet")
    assert after["metadata"]["resourceVersion"] == handled["metadata"]["resourceVersion"]
    assert after["status"] == handled["status"]


# -- bad input -----------------------------------------------------------------------------------------


def test_wrong_credentials_and_a_missing_bucket_fail_without_leaking_the_keys(s3: S3Server, kube: Buckets) -> None:
    bucket = new_bucket(s3, {"a": b"a"})
    kube.s3_bucket(s3, "good", bucket)
    kube.secret("wrong", {"accesskey": s3.access_key.encode(), "secretkey": b"not-the-secret-key"})
    kube.s3_bucket(s3, "wrong", bucket)
    kube.patch(BUCKET, "wrong", {"spec": {"secretRef": {"name": "wrong"}}})
    kube.s3_bucket(s3, "missing", "no-such-bucket")

    wrong = kube.wait_failed(BUCKET, "wrong", "BucketOperationFailed")
    message = condition(wrong, "Ready")["message"]
    assert f"bucket '{bucket}'" in message and "access denied (SignatureDoesNotMatch)" in message, message
    assert f"secret '{kube.namespace}/wrong' (spec.secretRef)" in message
    assert condition(wrong, "FetchFailed")["reason"] == "BucketOperationFailed"
    missing = kube.wait_failed(BUCKET, "missing", "BucketOperationFailed")
    assert condition(missing, "Ready")["message"] == (
        f"bucket 'no-such-bucket' not found at {s3.url}; check spec.bucketName"
    )
    for obj in (wrong, missing):
        text = str(obj["status"]) + "\n".join(kube.events(obj["metadata"]["name"]))
        assert s3.secret_key not in text and "not-the-secret-key" not in text
        assert "\n" not in condition(obj, "Ready")["message"]
    assert kube.wait_ready(BUCKET, "good")["status"]["artifact"]["revision"] == flux_revision({"a": md5(b"a")})


def test_secrets_missing_or_incomplete_fail_authentication(plain_s3: S3Server, kube: Buckets) -> None:
    bucket = new_bucket(plain_s3, {"a": b"a"})
    kube.create(BUCKET, "nosecret", {"bucketName": bucket, "endpoint": plain_s3.endpoint, "insecure": True,
                                     "interval": "1m", "secretRef": {"name": "absent"}})  # fmt: skip
    kube.secret("half", {"accesskey": plain_s3.access_key.encode()})
    kube.create(BUCKET, "half", {"bucketName": bucket, "endpoint": plain_s3.endpoint, "insecure": True,
                                 "interval": "1m", "secretRef": {"name": "half"}})  # fmt: skip
    kube.create(BUCKET, "anonymous", {"bucketName": bucket, "endpoint": plain_s3.endpoint, "insecure": True,
                                      "interval": "1m"})  # fmt: skip
    absent = kube.wait_failed(BUCKET, "nosecret", "AuthenticationFailed")
    assert condition(absent, "Ready")["message"] == (
        f"secret '{kube.namespace}/absent' not found; create it or fix spec.secretRef"
    )
    half = kube.wait_failed(BUCKET, "half", "AuthenticationFailed")
    assert "required fields 'accesskey' and 'secretkey'" in condition(half, "Ready")["message"]
    anonymous = kube.wait_failed(BUCKET, "anonymous", "BucketOperationFailed")
    assert "access denied (AccessDenied)" in condition(anonymous, "Ready")["message"]
    assert "anonymous access: set spec.secretRef" in condition(anonymous, "Ready")["message"]


def test_an_untrusted_certificate_is_refused(tls_s3: S3Server, kube: Buckets) -> None:
    bucket = new_bucket(tls_s3, {"a": b"a"})
    kube.secret("keys", {k: v.encode() for k, v in tls_s3.secret_data().items()})
    kube.secret("other-ca", {"ca.crt": PrivateCA().ca_pem})
    spec = {"bucketName": bucket, "endpoint": tls_s3.endpoint, "interval": "1m", "secretRef": {"name": "keys"}}
    kube.create(BUCKET, "system-cas", spec)
    kube.create(BUCKET, "other-ca", {**spec, "certSecretRef": {"name": "other-ca"}})
    for name in ("system-cas", "other-ca"):
        failed = kube.wait_failed(BUCKET, name, "BucketOperationFailed")
        assert "TLS verification failed; add the CA" in condition(failed, "Ready")["message"]


def test_objects_over_the_size_limit_are_refused(
    plain_s3: S3Server, s3_log: Path, admin_api: client.ApiClient, namespace: str, small_bucket_source: Reconcilers
) -> None:
    small = Buckets(admin_api, namespace, shard="bucket-small")
    big = new_bucket(plain_s3, {"small.yaml": b"s\n", "big.bin": b"x" * 5000})
    many = new_bucket(plain_s3, {f"part-{i}.yaml": b"y" * 1500 for i in range(3)})
    small.s3_bucket(plain_s3, "big", big)
    small.s3_bucket(plain_s3, "many", many)
    small.s3_bucket(plain_s3, "ignored", big, ignore="*.bin\n")
    message = condition(small.wait_failed(BUCKET, "big", "BucketOperationFailed"), "Ready")["message"]
    assert message == (
        f"object 'big.bin' of bucket '{big}' is 5000 bytes, over the source size limit of 4096 bytes "
        "(--max-source-size); exclude it with spec.prefix or spec.ignore, or raise the limit"
    )
    message = condition(small.wait_failed(BUCKET, "many", "BucketOperationFailed"), "Ready")["message"]
    assert f"the objects of bucket '{many}' total 4500 bytes, over the source size limit" in message
    ignored = small.wait_ready(BUCKET, "ignored")
    assert ignored["status"]["artifact"]["revision"] == flux_revision({"small.yaml": md5(b"s\n")})
    downloads = [r.key for r in controller_requests(s3_log, big) if r.action == "s3_GetObject"]
    assert "big.bin" not in downloads and "small.yaml" in downloads  # refused from the listing, never fetched


def test_fields_that_need_a_token_service_stall(plain_s3: S3Server, kube: Buckets) -> None:
    base = {"bucketName": "b", "endpoint": plain_s3.endpoint, "insecure": True, "interval": "1m"}
    kube.create(BUCKET, "sts", {**base, "sts": {"provider": "ldap", "endpoint": "https://sts.example.com"}})
    kube.create(BUCKET, "aws-identity", {**base, "provider": "aws"})
    kube.create(BUCKET, "proxy", {**base, "proxySecretRef": {"name": "proxy"}})
    kube.create(BUCKET, "scheme", {**base, "endpoint": f"http://{plain_s3.endpoint}"})
    messages = {}
    for name in ("sts", "aws-identity", "proxy", "scheme"):
        stalled = kube.stalled(BUCKET, name)
        assert condition(stalled, "Ready")["status"] == "False"
        messages[name] = (condition(stalled, "Stalled")["reason"], condition(stalled, "Ready")["message"])
    assert messages["sts"][0] == messages["aws-identity"][0] == messages["proxy"][0] == "UnsupportedField"
    assert messages["sts"][1].startswith("spec.sts is not supported by fluxwarden yet")
    assert messages["aws-identity"][1].startswith(
        "provider 'aws' without spec.secretRef (cloud identity) is not supported by fluxwarden yet"
    )
    assert messages["proxy"][1].startswith("spec.proxySecretRef is not supported by fluxwarden yet")
    assert messages["scheme"][0] == "URLInvalid" and "without scheme or path" in messages["scheme"][1]


def test_aws_and_gcp_with_static_keys_take_the_s3_path(plain_s3: S3Server, kube: Buckets) -> None:
    bucket = new_bucket(plain_s3, {"k.yaml": b"k\n"})
    kube.s3_bucket(plain_s3, "aws", bucket, provider="aws", region="us-east-1")
    kube.s3_bucket(plain_s3, "gcp", bucket, provider="gcp")
    expected = flux_revision({"k.yaml": md5(b"k\n")})
    for name in ("aws", "gcp"):
        assert kube.wait_ready(BUCKET, name)["status"]["artifact"]["revision"] == expected


def test_timeout_bounds_a_server_that_never_answers(kube: Buckets) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # accepted, never answered
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        kube.secret("keys", {"accesskey": b"AKIAEXAMPLE", "secretkey": b"example-secret-key"})
        endpoint = f"127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        kube.create(BUCKET, "silent", {"bucketName": "b", "endpoint": endpoint, "insecure": True,
                                       "interval": "1m", "timeout": "1s", "secretRef": {"name": "keys"}})  # fmt: skip
        failed = kube.wait_failed(BUCKET, "silent", "BucketOperationFailed", timeout=30)
        assert time.monotonic() - started < 20
        assert "timed out; check spec.endpoint or raise spec.timeout" in condition(failed, "Ready")["message"]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_deletion_removes_the_artifacts(plain_s3: S3Server, kube: Buckets, bucket_source: Reconcilers) -> None:
    bucket = new_bucket(plain_s3, {"a": b"a"})
    kube.s3_bucket(plain_s3, "gone", bucket)
    ready = kube.wait_ready(BUCKET, "gone")
    path = bucket_source.storage.local_path(ready["status"]["artifact"]["path"])
    assert path.is_file()
    kube.custom.delete_namespaced_custom_object(BUCKET.group, BUCKET.version, kube.namespace, BUCKET.plural, "gone")
    until(lambda: path.parent.exists(), lambda exists: not exists, what="artifacts removed")
    assert ready_reason(ready) is None


def test_many_objects_are_fetched_concurrently_each_once(plain_s3: S3Server, s3_log: Path, kube: Buckets) -> None:
    objects = {f"dir-{i % 7}/obj-{i:03}.yaml": f"n: {i}\n".encode() for i in range(120)}
    bucket = new_bucket(plain_s3, objects)
    kube.s3_bucket(plain_s3, "many", bucket)
    ready = kube.wait_ready(BUCKET, "many", timeout=60)
    assert ready["status"]["artifact"]["revision"] == flux_revision(index_of(objects))
    assert fetch_artifact(ready)[1] == objects
    requests = controller_requests(s3_log, bucket)
    gets = [r.key for r in requests if r.action == "s3_GetObject"]
    assert sorted(gets) == sorted(objects)  # each object once (and no .sourceignore: none was listed)
    assert [r.action for r in requests].count("s3_ListObjectsV2") == 1
