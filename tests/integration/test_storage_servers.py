"""The loopback storage servers of the Bucket and OCI source tests answer the real clients, over TLS.

versitygw (S3) is driven with boto3, Azurite with azure-storage-blob, the distribution registry with
``helm push``/``helm pull oci://`` and httpx. Each also refuses wrong credentials, so a source test
that expects a refusal meets a server that really checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from botocore.exceptions import ClientError, SSLError

from tests.support.azurite import WELL_KNOWN_ACCOUNT, Azurite, listed_as
from tests.support.helm_cli import helm_env
from tests.support.helm_repo import helm_binary, write_chart
from tests.support.oci_registry import OciRegistry
from tests.support.processes import descendant_pids, descendants
from tests.support.s3_server import S3Server
from tests.support.server_process import ServerProcess, ServerStartError, client_context
from tests.support.storage_binaries import storage_binary
from tests.support.tls import PrivateCA

HELM_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


@pytest.fixture(scope="module")
def ca() -> PrivateCA:
    return PrivateCA()


# ---- S3: versitygw ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(ca: PrivateCA) -> Iterator[S3Server]:
    with S3Server(tls=ca) as server:
        yield server


def test_s3_put_list_get_over_https(s3: S3Server) -> None:
    assert s3.url.startswith("https://127.0.0.1:")
    client = s3.client()
    client.create_bucket(Bucket="configs")
    objects = {"app/deploy.yaml": b"kind: ConfigMap\n", "app/nested/x.txt": b"x" * 5000, "top.txt": b""}
    for key, body in objects.items():
        client.put_object(Bucket="configs", Key=key, Body=body)

    listed = client.list_objects_v2(Bucket="configs")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(objects)
    etags = {o["Key"]: o["ETag"].strip('"') for o in listed}
    assert etags == {key: hashlib.md5(body).hexdigest() for key, body in objects.items()}  # real single-part ETags
    prefixed = client.list_objects_v2(Bucket="configs", Prefix="app/nested/")["Contents"]
    assert [o["Key"] for o in prefixed] == ["app/nested/x.txt"]
    assert client.get_object(Bucket="configs", Key="app/nested/x.txt")["Body"].read() == objects["app/nested/x.txt"]
    assert (s3.root / "configs" / "app" / "deploy.yaml").read_bytes() == objects["app/deploy.yaml"]


def test_s3_paginates_listings(s3: S3Server) -> None:
    client = s3.client()
    client.create_bucket(Bucket="many")
    for i in range(7):
        client.put_object(Bucket="many", Key=f"k{i}", Body=str(i).encode())
    first = client.list_objects_v2(Bucket="many", MaxKeys=3)
    assert first["IsTruncated"] is True and len(first["Contents"]) == 3
    pages = client.get_paginator("list_objects_v2").paginate(Bucket="many", PaginationConfig={"PageSize": 3})
    assert [o["Key"] for page in pages for o in page["Contents"]] == [f"k{i}" for i in range(7)]


def test_s3_refuses_wrong_credentials(s3: S3Server) -> None:
    s3.client().create_bucket(Bucket="guarded")
    with pytest.raises(ClientError) as wrong_secret:
        s3.client(secret_key="not-the-secret").list_objects_v2(Bucket="guarded")
    assert wrong_secret.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert wrong_secret.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as unknown_key:
        s3.client(access_key="nobody").list_objects_v2(Bucket="guarded")
    assert unknown_key.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert unknown_key.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    anonymous = httpx.get(f"{s3.url}/guarded?list-type=2", verify=client_context(s3.tls))
    assert anonymous.status_code == 403 and "<Code>AccessDenied</Code>" in anonymous.text, anonymous.text
    with pytest.raises(ClientError) as missing:
        s3.client().list_objects_v2(Bucket="no-such-bucket")
    assert missing.value.response["Error"]["Code"] == "NoSuchBucket"


def test_s3_certificate_is_checked(s3: S3Server) -> None:
    other = PrivateCA()
    with tempfile.NamedTemporaryFile(suffix=".crt") as ca_file:
        ca_file.write(other.ca_pem)
        ca_file.flush()
        untrusting = boto3.client(
            "s3",
            endpoint_url=s3.url,
            region_name=s3.region,
            aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key,
            verify=ca_file.name,
        )
        with pytest.raises(SSLError):
            untrusting.list_buckets()


def test_s3_over_plain_http_and_stopped_for_good(tmp_path: Path) -> None:
    versitygw = str(storage_binary("versitygw"))
    with S3Server(tmp_path / "root") as server:
        pid = server.pid
        assert pid in descendants(os.getpid(), versitygw)
        assert server.insecure and server.url.startswith("http://")
        client = server.client()
        client.create_bucket(Bucket="plain")
        client.put_object(Bucket="plain", Key="a", Body=b"alpha")
        assert client.get_object(Bucket="plain", Key="a")["Body"].read() == b"alpha"
        assert server.secret_data() == {"accesskey": server.access_key, "secretkey": server.secret_key}
    assert (tmp_path / "root" / "plain" / "a").read_bytes() == b"alpha"  # a given root outlives the server
    assert not server.running
    assert pid not in descendants(os.getpid(), versitygw)
    assert not server.state_dir.exists()


def test_s3_keeps_connections_open_only_when_asked(ca: PrivateCA) -> None:
    """versitygw's own default closes the connection after each answer; ``keep_alive`` keeps it, as AWS does."""
    for keep_alive in (False, True):
        with S3Server(tls=ca, keep_alive=keep_alive) as server:
            client = server.client()
            client.create_bucket(Bucket="conns")
            headers = client.list_objects_v2(Bucket="conns")["ResponseMetadata"]["HTTPHeaders"]
            assert (headers.get("connection") == "close") is not keep_alive, headers


# ---- Azure Blob: Azurite ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def azure(ca: PrivateCA) -> Iterator[Azurite]:
    with Azurite(ca) as server:
        yield server


def test_azurite_shared_key_upload_list_download(azure: Azurite) -> None:
    assert azure.account_url.startswith("https://127.0.0.1:")
    container = azure.service_client().create_container("configs")
    blobs = {"app/deploy.yaml": b"kind: ConfigMap\n", "app/values.yaml": b"replicas: 2\n", "readme": b"hi"}
    for name, data in blobs.items():
        container.upload_blob(name, data)
    listed = {b.name: b for b in container.list_blobs()}
    assert sorted(listed) == sorted(blobs)
    assert all(b.etag for b in listed.values())
    assert [b.name for b in container.list_blobs(name_starts_with="app/")] == ["app/deploy.yaml", "app/values.yaml"]
    assert container.download_blob("app/values.yaml").readall() == blobs["app/values.yaml"]


def test_azurite_sas_tokens(azure: Azurite) -> None:
    azure.service_client().create_container("shared").upload_blob("obj", b"through a SAS")

    account_sas = azure.service_client(azure.account_sas())  # a SAS string is the credential
    assert [b.name for b in account_sas.get_container_client("shared").list_blobs()] == ["obj"]

    container_sas = azure.container_sas("shared")
    via_container = azure.service_client(container_sas).get_container_client("shared")
    assert via_container.download_blob("obj").readall() == b"through a SAS"
    # the token as a query string on a plain HTTPS GET, as a client without the SDK would use it
    response = httpx.get(f"{azure.account_url}/shared/obj?{container_sas}", verify=client_context(azure.tls))
    assert response.status_code == 200 and response.content == b"through a SAS"

    with pytest.raises(HttpResponseError) as read_only:
        via_container.upload_blob("new", b"x")
    assert read_only.value.status_code == 403  # the SAS grants read and list only


def test_azurite_refuses_wrong_credentials(azure: Azurite) -> None:
    azure.service_client().create_container("guarded")
    wrong_key = azure.service_client({"account_name": azure.account_name, "account_key": "d3Jvbmc=" * 11})
    with pytest.raises(HttpResponseError) as refused:
        list(wrong_key.get_container_client("guarded").list_blobs())
    assert (refused.value.status_code, getattr(refused.value, "error_code", None)) == (403, "AuthorizationFailure")
    expired = azure.service_client(azure.container_sas("guarded", hours=-1)).get_container_client("guarded")
    with pytest.raises(HttpResponseError) as stale:
        list(expired.list_blobs())
    assert (stale.value.status_code, getattr(stale.value, "error_code", None)) == (403, "AuthorizationFailure")
    anonymous = httpx.get(f"{azure.account_url}/guarded?restype=container&comp=list", verify=client_context(azure.tls))
    assert anonymous.status_code == 403 and "<Code>AuthorizationFailure</Code>" in anonymous.text  # no public access
    # the emulator's documented account is not served when our own account is
    assert azure.account_name != WELL_KNOWN_ACCOUNT


def test_azurite_lists_a_key_that_escapes_the_directory(azure: Azurite) -> None:
    container = azure.service_client().create_container("escape")
    with pytest.raises(HttpResponseError):
        container.upload_blob("a/../../evil", b"x")  # refused as written
    container.upload_blob(listed_as("a/../../evil"), b"x")
    assert [b.name for b in container.list_blobs()] == ["a/../../evil"]


def test_azurite_well_known_account(ca: PrivateCA) -> None:
    with Azurite(ca, well_known_account=True) as server:
        assert server.account_name == WELL_KNOWN_ACCOUNT
        client = server.service_client()
        client.create_container("devstore").upload_blob("b", b"devstore")
        assert client.get_container_client("devstore").download_blob("b").readall() == b"devstore"


# ---- OCI: the distribution registry --------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(ca: PrivateCA) -> Iterator[OciRegistry]:
    with OciRegistry(ca) as server:
        yield server


def helm(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """helm with one home for a whole sequence (login, push, pull), so the registry login carries over."""
    return subprocess.run(
        [helm_binary(), *args], env=helm_env(str(home)), input=stdin, capture_output=True, text=True, timeout=120
    )


def test_registry_helm_push_pull_and_manifest(registry: OciRegistry, tmp_path: Path) -> None:
    home, ca_file = tmp_path / "helm", str(registry.ca_file)
    chart = write_chart(tmp_path / "src", "podinfo", "1.2.3")
    packaged = helm(home, "package", str(chart), "-d", str(tmp_path / "pkg"))
    assert packaged.returncode == 0, packaged.stderr
    tgz = tmp_path / "pkg" / "podinfo-1.2.3.tgz"

    login = helm(
        home, "registry", "login", registry.host, "--username", registry.username, "--password-stdin",
        "--ca-file", ca_file, stdin=registry.password,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    pushed = helm(home, "push", str(tgz), registry.oci_url("charts"), "--ca-file", ca_file)
    assert pushed.returncode == 0, pushed.stderr
    assert f"{registry.host}/charts/podinfo:1.2.3" in pushed.stdout + pushed.stderr

    (tmp_path / "pulled").mkdir()
    pulled = helm(
        home, "pull", registry.oci_url("charts/podinfo"), "--version", "1.2.3", "--ca-file", ca_file,
        "-d", str(tmp_path / "pulled"),
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "pulled" / "podinfo-1.2.3.tgz").read_bytes() == tgz.read_bytes()

    response = httpx.get(
        f"{registry.url}/v2/charts/podinfo/manifests/1.2.3",
        headers={"Accept": HELM_MANIFEST},
        auth=(registry.username, registry.password),
        verify=client_context(registry.tls),
    )
    assert response.status_code == 200, response.text
    digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
    assert response.headers["Docker-Content-Digest"] == digest
    assert f"Digest: {digest}" in pushed.stdout + pushed.stderr  # the digest helm push reported
    manifest = response.json()
    assert manifest["config"]["mediaType"] == HELM_CONFIG
    [layer] = manifest["layers"]
    assert layer["mediaType"] == HELM_CHART_LAYER
    assert layer["digest"] == "sha256:" + hashlib.sha256(tgz.read_bytes()).hexdigest()


def test_registry_refuses_wrong_credentials(registry: OciRegistry, tmp_path: Path) -> None:
    verify = client_context(registry.tls)
    anonymous = httpx.get(f"{registry.url}/v2/", verify=verify)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
    wrong = httpx.get(f"{registry.url}/v2/", auth=(registry.username, "wrong"), verify=verify)
    assert wrong.status_code == 401
    right = httpx.get(f"{registry.url}/v2/", auth=(registry.username, registry.password), verify=verify)
    assert right.status_code == 200
    login = helm(
        tmp_path / "helm", "registry", "login", registry.host, "--username", registry.username, "--password-stdin",
        "--ca-file", str(registry.ca_file), stdin="wrong",
    )  # fmt: skip
    assert login.returncode != 0
    assert "401" in login.stderr or "unauthorized" in login.stderr.lower()


def test_registry_certificate_is_checked(registry: OciRegistry, tmp_path: Path) -> None:
    stranger = tmp_path / "other-ca.crt"
    stranger.write_bytes(PrivateCA().ca_pem)
    login = helm(
        tmp_path / "helm", "registry", "login", registry.host, "--username", registry.username, "--password-stdin",
        "--ca-file", str(stranger), stdin=registry.password,
    )  # fmt: skip
    assert login.returncode != 0
    assert "certificate" in login.stderr.lower()


def test_registry_plain_http_anonymous(tmp_path: Path) -> None:
    with OciRegistry(auth=False) as server:
        assert server.insecure and server.url.startswith("http://")
        assert httpx.get(f"{server.url}/v2/").status_code == 200
        chart = write_chart(tmp_path / "src", "plain", "0.1.0")
        assert helm(tmp_path / "h", "package", str(chart), "-d", str(tmp_path)).returncode == 0
        pushed = helm(tmp_path / "h", "push", str(tmp_path / "plain-0.1.0.tgz"), server.oci_url("c"), "--plain-http")
        assert pushed.returncode == 0, pushed.stderr
        tags = httpx.get(f"{server.url}/v2/c/plain/tags/list").json()
        assert tags == {"name": "c/plain", "tags": ["0.1.0"]}
    assert not server.running


def test_registry_dockerconfigjson(registry: OciRegistry) -> None:
    auths = json.loads(registry.dockerconfigjson())["auths"]
    assert auths[registry.host]["username"] == registry.username
    assert auths[registry.host]["password"] == registry.password


# ---- start failures fail, never skip -------------------------------------------------------------------


def test_a_server_that_exits_on_start_raises(tmp_path: Path) -> None:
    versitygw = str(storage_binary("versitygw"))
    process = ServerProcess(
        "versitygw", lambda port: [versitygw, "--no-such-flag"], lambda port: False, tmp_path / "log"
    )
    with pytest.raises(ServerStartError, match="versitygw exited") as error:
        process.start(timeout=30)
    assert "no-such-flag" in str(error.value)  # the log tail says why
    assert not process.running


def test_a_server_that_never_answers_raises_and_is_ended(tmp_path: Path) -> None:
    process = ServerProcess("sleeper", lambda port: ["sleep", "60"], lambda port: False, tmp_path / "log")
    started = time.monotonic()
    with pytest.raises(ServerStartError, match="did not answer"):
        process.start(timeout=1)
    assert time.monotonic() - started < 15
    assert not [pid for pid in descendant_pids(os.getpid()) if _runs(pid, "sleep")]


def _runs(pid: int, name: str) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except OSError:
        return False
