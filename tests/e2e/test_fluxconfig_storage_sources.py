"""FluxConfigs of ``sourceKind`` AzureBlob, Bucket and OCIRepository reconciled end to end: a real Azurite
(shared key and SAS over HTTPS), a real S3 server (versitygw) and a real registry (an artifact pushed
with ``fluxwarden push artifact``), the manifests applied, the config Compliant.

The expected revision is Flux's Bucket revision computed here from the server's own answers (sha256 of
the sorted ``<key> <etag>`` lines; for Azure the quoted ETag header a download returns, for S3 the
listing's ETag without quotes, as minio gives it), never read from the controller first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest

from fluxwarden.controllers.runtime.kube import Resource
from tests.support.azurite import Azurite
from tests.support.fluxconfig import FluxConfigs, Stages, controllers, entry, stages
from tests.support.oci_charts import manifest_digest, push_artifact
from tests.support.oci_registry import OciRegistry
from tests.support.s3_server import S3Server
from tests.support.tenants import configmap
from tests.support.tls import PrivateCA
from tests.support.wait import until

__all__ = ["controllers", "stages"]  # fixtures

BUCKET = Resource("source.toolkit.fluxcd.io", "v1", "buckets", "Bucket")
CONTAINER = "configs"


def flux_revision(listing: dict[str, str]) -> str:
    """Flux's Bucket revision of ``{key: etag}``: the sha256 of ``"<key> <etag>\\n"`` in key order."""
    lines = "".join(f"{key} {listing[key]}\n" for key in sorted(listing))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


@pytest.fixture(scope="module")
def azurite(authority: PrivateCA) -> Iterator[Azurite]:
    with Azurite(authority) as server:
        server.service_client().create_container(CONTAINER)
        yield server


@pytest.fixture
def trusted_azurite(azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Azurite:
    """The source controller trusts Azurite's CA through its system trust store, as a cluster mounts a
    private CA into the controller (ARM's azureBlob has no CA field): the bundle requests reads."""
    bundle = tmp_path / "system-ca.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + azurite.ca_pem)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    return azurite


def blob_listing(azure: Azurite, prefix: str) -> dict[str, str]:
    """Key -> the ETag header a download of it returns (quoted): what Flux's index holds once fetched."""
    container = azure.service_client().get_container_client(CONTAINER)
    return {
        b.name: str(container.get_blob_client(b.name).get_blob_properties().etag)
        for b in container.list_blobs(name_starts_with=prefix)
    }


def upload(azure: Azurite, files: dict[str, str]) -> None:
    container = azure.service_client().get_container_client(CONTAINER)
    for name, text in files.items():
        container.upload_blob(name, text.encode(), overwrite=True)


def applied(configs: FluxConfigs, name: str, value: str) -> None:
    until(
        configs.configmaps, lambda found: found.get(name, {}).get("value") == value,
        timeout=60, what=f"ConfigMap {name} with value {value!r} applied",
    )  # fmt: skip


def test_azure_blob_config_with_an_account_key_is_applied_and_follows_changes(
    stages: Stages, namespace: str, trusted_azurite: Azurite
) -> None:
    stage = stages(namespace)
    configs, azure = stage.configs, trusted_azurite
    prefix = f"{namespace}/"  # one module-wide container: each test under its own prefix
    upload(azure, {f"{prefix}app/cm.yaml": configmap("blob-app", "1", namespace)})
    configs.protected_settings("blob-protected", {"accountKey": azure.account_key})
    configs.create(
        "blob",
        {
            "scope": "namespace",
            "sourceKind": "AzureBlob",
            "azureBlob": {"url": azure.account_url, "containerName": CONTAINER, "syncIntervalInSeconds": 2},
            "configurationProtectedSettingsRef": {"name": "blob-protected"},
            "kustomizations": {"app": entry(f"./{prefix}app")},
        },
    )
    revision = flux_revision(blob_listing(azure, ""))
    done = configs.wait(
        "blob",
        lambda o: (
            (o.get("status") or {}).get("complianceState") == "Compliant"
            and o["status"].get("sourceSyncedCommitId") == revision
        ),
        f"Compliant at {revision}",
    )
    applied(configs, "blob-app", "1")
    bucket = configs.object(BUCKET, "blob")
    assert bucket is not None
    assert (bucket["spec"]["provider"], bucket["spec"]["endpoint"]) == ("azure", azure.account_url)
    assert bucket["status"]["artifact"]["revision"] == revision
    assert azure.account_key not in str(done) and azure.account_key not in str(bucket)
    assert configs.secret_data("blob-auth") == {"accountKey": azure.account_key.encode()}

    upload(azure, {f"{prefix}app/cm.yaml": configmap("blob-app", "2", namespace)})
    changed = flux_revision(blob_listing(azure, ""))
    assert changed != revision
    configs.wait(
        "blob",
        lambda o: (
            (o.get("status") or {}).get("sourceSyncedCommitId") == changed
            and o["status"].get("complianceState") == "Compliant"
        ),
        f"Compliant at {changed}",
    )
    applied(configs, "blob-app", "2")


def test_azure_blob_config_with_a_sas_token(stages: Stages, namespace: str, trusted_azurite: Azurite) -> None:
    stage = stages(namespace)
    configs, azure = stage.configs, trusted_azurite
    prefix = f"{namespace}/"
    upload(azure, {f"{prefix}app/cm.yaml": configmap("sas-app", "sas", namespace)})
    sas = azure.container_sas(CONTAINER)
    configs.protected_settings("sas-protected", {"sasToken": sas})
    configs.create(
        "sas",
        {
            "scope": "namespace",
            "sourceKind": "AzureBlob",
            "azureBlob": {"url": azure.account_url, "containerName": CONTAINER, "syncIntervalInSeconds": 2},
            "configurationProtectedSettingsRef": {"name": "sas-protected"},
            "kustomizations": {"app": entry(f"./{prefix}app")},
        },
    )
    configs.state("sas", "Compliant")
    applied(configs, "sas-app", "sas")
    assert configs.secret_data("sas-auth") == {"sasKey": sas.encode()}
    assert sas not in str(configs.get("sas"))


def test_azure_blob_config_with_a_wrong_key_is_not_compliant(
    stages: Stages, namespace: str, trusted_azurite: Azurite
) -> None:
    stage = stages(namespace)
    configs, azure = stage.configs, trusted_azurite
    wrong = azure.account_key[::-1]
    configs.protected_settings("bad-protected", {"accountKey": wrong})
    configs.create(
        "bad",
        {
            "scope": "namespace",
            "sourceKind": "AzureBlob",
            "azureBlob": {"url": azure.account_url, "containerName": CONTAINER, "syncIntervalInSeconds": 2},
            "configurationProtectedSettingsRef": {"name": "bad-protected"},
            "kustomizations": {"app": entry("./app")},
        },
    )
    failed = configs.state("bad", "Non-Compliant")
    assert wrong not in str(failed) and azure.account_key not in str(failed)


def test_bucket_config_against_an_s3_server(stages: Stages, namespace: str, tmp_path: Path) -> None:
    stage = stages(namespace)
    configs = stage.configs
    with S3Server(tmp_path / "s3") as s3:
        s3_client = s3.client()
        s3_client.create_bucket(Bucket=CONTAINER)
        s3_client.put_object(Bucket=CONTAINER, Key="app/cm.yaml", Body=configmap("s3-app", "1", namespace).encode())
        configs.protected_settings("s3-protected", {"bucketSecretKey": s3.secret_key})
        configs.create(
            "s3",
            {
                "scope": "namespace",
                "sourceKind": "Bucket",
                "bucket": {"url": s3.url, "bucketName": CONTAINER, "accessKey": s3.access_key,
                           "syncIntervalInSeconds": 2},
                "configurationProtectedSettingsRef": {"name": "s3-protected"},
                "kustomizations": {"app": entry("./app")},
            },
        )  # fmt: skip

        def listing() -> dict[str, str]:
            found = s3_client.list_objects_v2(Bucket=CONTAINER).get("Contents") or []
            return {o["Key"]: str(o["ETag"]).strip('"') for o in found}

        revision = flux_revision(listing())
        done = configs.wait(
            "s3",
            lambda o: (
                (o.get("status") or {}).get("complianceState") == "Compliant"
                and o["status"].get("sourceSyncedCommitId") == revision
            ),
            f"Compliant at {revision}",
        )
        applied(configs, "s3-app", "1")
        bucket = configs.object(BUCKET, "s3")
        assert bucket is not None
        assert {k: bucket["spec"].get(k) for k in ("provider", "endpoint", "insecure")} == {
            "provider": "generic", "endpoint": s3.endpoint, "insecure": True,
        }  # fmt: skip
        assert s3.secret_key not in str(done) and s3.secret_key not in str(bucket)

        s3_client.put_object(Bucket=CONTAINER, Key="app/cm.yaml", Body=configmap("s3-app", "2", namespace).encode())
        changed = flux_revision(listing())
        assert changed != revision
        configs.wait(
            "s3",
            lambda o: (
                (o.get("status") or {}).get("sourceSyncedCommitId") == changed
                and o["status"].get("complianceState") == "Compliant"
            ),
            f"Compliant at {changed}",
        )
        applied(configs, "s3-app", "2")


def test_oci_repository_config_pushed_with_fluxwarden_push_artifact(
    stages: Stages, namespace: str, tmp_path: Path
) -> None:
    stage = stages(namespace)
    configs = stage.configs
    with OciRegistry(auth=False) as registry:
        (tmp_path / "app").mkdir()
        (tmp_path / "app" / "cm.yaml").write_text(configmap("oci-app", "1", namespace))
        push_artifact(registry, "configs:v1", tmp_path)
        configs.create(
            "oci",
            {
                "scope": "namespace",
                "sourceKind": "OCIRepository",
                "ociRepository": {"url": registry.oci_url("configs"), "repositoryRef": {"tag": "v1"},
                                  "insecure": True, "syncIntervalInSeconds": 2},
                "kustomizations": {"app": entry("./app")},
            },
        )  # fmt: skip
        revision = f"v1@{manifest_digest(registry, 'configs', 'v1')}"
        configs.wait(
            "oci",
            lambda o: (
                (o.get("status") or {}).get("complianceState") == "Compliant"
                and o["status"].get("sourceSyncedCommitId") == revision
            ),
            f"Compliant at {revision}",
        )
        applied(configs, "oci-app", "1")

        (tmp_path / "app" / "cm.yaml").write_text(configmap("oci-app", "2", namespace))
        push_artifact(registry, "configs:v1", tmp_path)
        changed = f"v1@{manifest_digest(registry, 'configs', 'v1')}"
        assert changed != revision
        configs.wait(
            "oci",
            lambda o: (
                (o.get("status") or {}).get("sourceSyncedCommitId") == changed
                and o["status"].get("complianceState") == "Compliant"
            ),
            f"Compliant at {changed}",
        )
        applied(configs, "oci-app", "2")
