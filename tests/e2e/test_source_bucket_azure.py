"""Bucket sources of provider azure against Azurite over HTTPS, with a shared key and with SAS tokens.

Flux records, for each blob, the ETag its download returns (the quoted header value); the revision
is recomputed here from the ETags Azurite gives the test's own downloads.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import ContainerClient
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.source.api import BUCKET
from tests.e2e.test_source_bucket import Buckets
from tests.e2e.test_source_controller import condition, fetch_artifact
from tests.support.azurite import Azurite, listed_as
from tests.support.buckets import LoggedAzurite, azure_requests, flux_revision
from tests.support.tls import PrivateCA
from tests.support.wait import until

SHARD = "sharding.fluxcd.io/key"


@pytest.fixture(scope="module")
def azure_source(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source",), label_selector=f"{SHARD}=bucket-azure")


@pytest.fixture(scope="module")
def azure_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("azurite-log") / "debug.log"


@pytest.fixture(scope="module")
def azurite(azure_log: Path) -> Iterator[Azurite]:
    with LoggedAzurite(PrivateCA(), azure_log) as server:
        yield server


class AzureBuckets(Buckets):
    def azure_bucket(self, server: Azurite, name: str, container: str, data: dict[str, bytes], **spec: Any) -> None:
        """A Bucket of provider azure with ``data`` as its Secret and Azurite's CA as certSecretRef."""
        self.secret(f"{name}-creds", data)
        self.secret(f"{name}-ca", {"ca.crt": server.ca_pem})
        self.create(BUCKET, name, {
            "provider": "azure", "bucketName": container, "endpoint": server.account_url, "interval": "1m",
            "secretRef": {"name": f"{name}-creds"}, "certSecretRef": {"name": f"{name}-ca"}, **spec,
        })  # fmt: skip


@pytest.fixture
def kube(admin_api: client.ApiClient, namespace: str, azure_source: Reconcilers) -> AzureBuckets:
    return AzureBuckets(admin_api, namespace, shard="bucket-azure")


def new_container(server: Azurite, blobs: dict[str, bytes]) -> tuple[str, ContainerClient]:
    name = f"c-{uuid.uuid4().hex[:12]}"
    container = server.service_client().create_container(name)
    for blob, data in blobs.items():
        container.upload_blob(listed_as(blob), data, overwrite=True)
    return name, container


def index_of(container: ContainerClient) -> dict[str, str]:
    """key -> the ETag a download of it returns, for every blob but the root .sourceignore."""
    return {
        b.name: str(container.download_blob(b.name).properties.etag)
        for b in container.list_blobs()
        if b.name != ".sourceignore"
    }


def shared_key(server: Azurite) -> dict[str, bytes]:
    return {"accountKey": server.account_key.encode()}


def test_shared_key_and_sas_give_fluxs_revision(azurite: Azurite, kube: AzureBuckets) -> None:
    blobs = {"app/deploy.yaml": b"kind: ConfigMap\n", "app/values.yaml": b"a: 1\n", "top": b"t"}
    name, container = new_container(azurite, blobs)
    kube.azure_bucket(azurite, "key", name, shared_key(azurite))
    kube.azure_bucket(azurite, "account-sas", name, {"sasKey": ("?" + azurite.account_sas()).encode()})
    kube.azure_bucket(azurite, "container-sas", name, {"sasKey": azurite.container_sas(name).encode()})
    expected = flux_revision(index_of(container))
    assert all(etag.startswith('"0x') for etag in index_of(container).values())

    ready = {n: kube.wait_ready(BUCKET, n) for n in ("key", "account-sas", "container-sas")}
    for obj in ready.values():
        assert obj["status"]["artifact"]["revision"] == expected
        assert condition(obj, "Ready")["message"] == f"stored artifact: revision '{expected}'"
    assert len({obj["status"]["artifact"]["digest"] for obj in ready.values()}) == 1  # the same content, twice
    assert fetch_artifact(ready["key"])[1] == blobs
    for obj in ready.values():
        text = str(obj["status"])
        assert azurite.account_key not in text and "sig=" not in text


def test_a_changed_blob_gives_a_new_revision_and_the_same_bytes_the_same_digest(
    azurite: Azurite, kube: AzureBuckets
) -> None:
    name, container = new_container(azurite, {"a.yaml": b"a: 1\n", "b.yaml": b"b: 1\n"})
    kube.azure_bucket(azurite, "changing", name, shared_key(azurite))
    first = kube.wait_ready(BUCKET, "changing")

    container.upload_blob("b.yaml", b"b: 2\n", overwrite=True)
    stamp = kube.request_reconcile(BUCKET, "changing")
    changed = kube.reconciled(BUCKET, "changing", stamp)
    assert changed["status"]["artifact"]["revision"] == flux_revision(index_of(container))
    assert changed["status"]["artifact"]["revision"] != first["status"]["artifact"]["revision"]
    assert fetch_artifact(changed)[1] == {"a.yaml": b"a: 1\n", "b.yaml": b"b: 2\n"}

    container.upload_blob("b.yaml", b"b: 1\n", overwrite=True)  # the old bytes under a new ETag
    stamp = kube.request_reconcile(BUCKET, "changing")
    back = kube.reconciled(BUCKET, "changing", stamp)
    assert back["status"]["artifact"]["revision"] == flux_revision(index_of(container))
    assert back["status"]["artifact"]["revision"] != first["status"]["artifact"]["revision"]
    assert back["status"]["artifact"]["digest"] == first["status"]["artifact"]["digest"]


def test_ignore_rules_change_the_digest(azurite: Azurite, kube: AzureBuckets) -> None:
    name, container = new_container(
        azurite, {".sourceignore": b"docs/\n", "apps/a.yaml": b"a\n", "apps/x.env": b"x\n", "docs/r.md": b"r\n"}
    )
    kube.azure_bucket(azurite, "plain", name, shared_key(azurite))
    kube.azure_bucket(azurite, "ignoring", name, shared_key(azurite), ignore="*.env\n")
    plain, ignoring = kube.wait_ready(BUCKET, "plain"), kube.wait_ready(BUCKET, "ignoring")
    index = index_of(container)
    kept = {k: v for k, v in index.items() if not k.startswith("docs/")}
    assert plain["status"]["artifact"]["revision"] == flux_revision(kept)
    assert ignoring["status"]["artifact"]["revision"] == flux_revision({"apps/a.yaml": index["apps/a.yaml"]})
    assert ignoring["status"]["artifact"]["digest"] != plain["status"]["artifact"]["digest"]
    assert set(fetch_artifact(ignoring)[1]) == {"apps/a.yaml", ".sourceignore"}


def test_an_unchanged_container_is_listed_once_per_reconcile_and_nothing_is_downloaded_or_written(
    azurite: Azurite, azure_log: Path, kube: AzureBuckets
) -> None:
    name, _ = new_container(azurite, {".sourceignore": b"*.md\n", "a.yaml": b"a\n", "b/notes.md": b"n\n"})
    kube.azure_bucket(azurite, "quiet", name, shared_key(azurite), interval="1s")
    first = kube.wait_ready(BUCKET, "quiet")
    gets = sorted(p.split("?")[0] for m, p in azure_requests(azure_log, name) if m == "GET" and "comp=list" not in p)
    assert gets == [f"{azurite.account_name}/{name}/.sourceignore", f"{azurite.account_name}/{name}/a.yaml"]

    stamp = kube.request_reconcile(BUCKET, "quiet")
    handled = kube.reconciled(BUCKET, "quiet", stamp)  # a reconcile ran and wrote only lastHandledReconcileAt
    assert handled["status"]["artifact"] == first["status"]["artifact"]
    seen = len(azure_requests(azure_log, name))
    until(
        lambda: [p for m, p in azure_requests(azure_log, name)[seen:] if "comp=list" in p],
        lambda listings: len(listings) >= 3,
        what="three more reconciles at a 1s interval",
    )
    later = azure_requests(azure_log, name)[seen:]
    assert all(method == "GET" and "comp=list" in path for method, path in later), later  # listings only
    after = kube.get(BUCKET, "quiet")
    assert after["metadata"]["resourceVersion"] == handled["metadata"]["resourceVersion"]
    assert after["status"] == handled["status"]


def test_bad_credentials_a_missing_container_and_an_escaping_key(
    azurite: Azurite, kube: AzureBuckets, azure_source: Reconcilers
) -> None:
    name, container = new_container(azurite, {"a.yaml": b"a\n"})
    wrong_key = {"accountKey": b"d3Jvbmc=" * 11}
    kube.azure_bucket(azurite, "wrong-key", name, wrong_key)
    kube.azure_bucket(azurite, "expired", name, {"sasKey": azurite.container_sas(name, hours=-1).encode()})
    kube.azure_bucket(azurite, "missing", "no-such-container", shared_key(azurite))
    escaping, _ = new_container(azurite, {"ok.yaml": b"ok\n", "a/../../evil": b"x"})
    kube.azure_bucket(azurite, "escaping", escaping, shared_key(azurite))

    for bad in ("wrong-key", "expired"):
        message = condition(kube.wait_failed(BUCKET, bad, "BucketOperationFailed"), "Ready")["message"]
        assert f"failed to list container '{name}'" in message and "access denied (AuthorizationFailure)" in message
        assert "(spec.secretRef)" in message and "d3Jvbmc=" not in message and "sig=" not in message, message
    message = condition(kube.wait_failed(BUCKET, "missing", "BucketOperationFailed"), "Ready")["message"]
    assert message == f"bucket 'no-such-container' not found at {azurite.account_url}; check spec.bucketName"
    failed = kube.wait_failed(BUCKET, "escaping", "BucketOperationFailed")
    assert condition(failed, "Ready")["message"] == (
        f"object key 'a/../../evil' of bucket '{escaping}' escapes the artifact directory; nothing was written: "
        "delete or rename the object, or exclude it with spec.ignore"
    )
    assert "artifact" not in failed["status"]
    assert not azure_source.storage.local_path(f"bucket/{kube.namespace}/escaping").exists()

    container.upload_blob("b.yaml", b"b\n")  # the failures do not hold the good ones back
    kube.azure_bucket(azurite, "good", name, shared_key(azurite))
    assert kube.wait_ready(BUCKET, "good")["status"]["artifact"]["revision"] == flux_revision(index_of(container))


def test_identities_stall_and_incomplete_secrets_fail(azurite: Azurite, kube: AzureBuckets) -> None:
    kube.azure_bucket(azurite, "principal", "c", {"tenantId": b"t", "clientId": b"c", "clientSecret": b"s3cr3t"})
    kube.azure_bucket(azurite, "managed", "c", {"clientId": b"c"})
    kube.create(BUCKET, "nosecret", {"provider": "azure", "bucketName": "c", "endpoint": azurite.account_url,
                                     "interval": "1m"})  # fmt: skip
    kube.azure_bucket(azurite, "neither", "c", {"accountkey": b"wrong case"})
    principal = kube.stalled(BUCKET, "principal")
    assert condition(principal, "Stalled")["reason"] == "UnsupportedField"
    assert condition(principal, "Ready")["message"].startswith(
        f"secret '{kube.namespace}/principal-creds' key(s) clientId, tenantId, clientSecret (service principal or "
        "managed identity) is not supported by fluxwarden yet; use accountKey or sasKey in the Secret"
    )
    assert "s3cr3t" not in str(principal["status"])
    assert condition(kube.stalled(BUCKET, "managed"), "Stalled")["reason"] == "UnsupportedField"
    nosecret = condition(kube.stalled(BUCKET, "nosecret"), "Ready")["message"]
    assert nosecret.startswith("provider 'azure' without spec.secretRef (managed or workload identity)")
    neither = condition(kube.wait_failed(BUCKET, "neither", "AuthenticationFailed"), "Ready")["message"]
    assert "requires an 'accountKey' or 'sasKey' field" in neither


def test_an_untrusted_certificate_is_refused(azurite: Azurite, kube: AzureBuckets) -> None:
    name, _ = new_container(azurite, {"a": b"a"})
    kube.secret("key", shared_key(azurite))
    kube.create(BUCKET, "system-cas", {"provider": "azure", "bucketName": name, "endpoint": azurite.account_url,
                                       "interval": "1m", "secretRef": {"name": "key"}})  # fmt: skip
    message = condition(kube.wait_failed(BUCKET, "system-cas", "BucketOperationFailed"), "Ready")["message"]
    assert "TLS verification failed; add the CA" in message, message
