"""The OCIRepository reconciler against the real API server and the real distribution registry (htpasswd + TLS).

Revisions are computed here from what the registry itself answers (``tests.support.oci_artifacts``,
plain httpx): ``<tag>@<Docker-Content-Digest>``, or the digest alone for a digest ref, as Flux writes
them. Artifacts are downloaded from ``status.artifact.url`` and unpacked here.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from tests.support.oci_artifacts import (
    FLUX_CONTENT,
    OCI_MANIFEST,
    RegistryReader,
    fluxwarden_push,
    members,
    sha256,
    tar_gz,
    write_tree,
)
from tests.support.oci_registry import OciRegistry
from tests.support.oci_sources import Oci, artifact, condition, download, one_line_without, status
from tests.support.server_process import HOST, ServerProcess, answers_http, client_context
from tests.support.tls import PrivateCA
from tests.support.wait import until

SHARD = "sharding.fluxcd.io/key"
SHARD_VALUE = "oci"
PULL_FAILED = "OCIArtifactPullFailed"
LAYER_FAILED = "OCIArtifactLayerOperationFailed"


@pytest.fixture(scope="module")
def source(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source",), label_selector=f"{SHARD}={SHARD_VALUE}")


@pytest.fixture
def oci(admin_api: client.ApiClient, namespace: str, registry: OciRegistry, source: Reconcilers) -> Oci:
    return Oci(admin_api, namespace, registry, SHARD_VALUE)


def repo_name() -> str:
    return f"apps/{uuid.uuid4().hex[:8]}"


def push(registry: OciRegistry, repo: str, tag: str, root: Path, files: dict[str, str | bytes], *args: str) -> None:
    done = fluxwarden_push(registry, registry.oci_url(repo) + f":{tag}", write_tree(root, files), *args)
    assert done.returncode == 0, done.stderr


def test_tag_ready_with_flux_revision_and_artifact(
    oci: Oci, registry: OciRegistry, reader: RegistryReader, tmp_path: Path
) -> None:
    repo = repo_name()
    files: dict[str, str | bytes] = {"app/cm.yaml": "kind: ConfigMap\n", "app/extra.txt": "x", "top.yaml": "a: 1\n"}
    push(registry, repo, "v1", tmp_path / "src", files, "--source", "https://git.example/app",
         "--revision", "main@sha1:" + "a" * 40)  # fmt: skip
    oci.create("app", repo, ref={"tag": "v1"})
    expected = f"v1@{reader.digest(repo, 'v1')}"
    done = oci.ready("app", expected)

    assert condition(done)["message"] == f"stored artifact for digest '{expected}'"
    assert condition(done, "ArtifactInStorage")["reason"] == "Succeeded"
    assert members(download(done)) == {k: str(v).encode() for k, v in files.items()}
    metadata = artifact(done)["metadata"]
    assert metadata["org.opencontainers.image.source"] == "https://git.example/app"
    assert metadata["org.opencontainers.image.revision"] == "main@sha1:" + "a" * 40
    assert artifact(done)["path"].startswith(f"ocirepository/{oci.namespace}/app/")
    assert status(done)["url"] == artifact(done)["url"]


def test_default_latest_new_push_new_revision_and_noop_writes_nothing(
    oci: Oci, registry: OciRegistry, reader: RegistryReader, tmp_path: Path
) -> None:
    repo = repo_name()
    push(registry, repo, "latest", tmp_path / "one", {"a.yaml": "v: 1\n"})
    oci.create("app", repo)  # no ref: tag 'latest'
    first = oci.ready("app", f"latest@{reader.digest(repo, 'latest')}")

    before = reader.requests_by_fluxwarden(repo)
    again = oci.reconcile("app")
    assert artifact(again) == artifact(first), "same digest: no new artifact, lastUpdateTime kept"
    logged = until(lambda: reader.requests_by_fluxwarden(repo), lambda r: len(r) > len(before), what="access log")
    asked = logged[len(before) :]
    assert set(asked) == {f"HEAD /v2/{repo}/manifests/latest"}, "a no-op reconcile reads no blob"
    unchanged = {k: v for k, v in status(again).items() if k != "lastHandledReconcileAt"}
    assert unchanged == {k: v for k, v in status(first).items() if k != "lastHandledReconcileAt"}

    push(registry, repo, "latest", tmp_path / "two", {"a.yaml": "v: 2\n"})
    second_revision = f"latest@{reader.digest(repo, 'latest')}"
    assert second_revision != artifact(first)["revision"]
    oci.reconcile("app")
    second = oci.ready("app", second_revision)
    assert artifact(second)["digest"] != artifact(first)["digest"]
    assert members(download(second)) == {"a.yaml": b"v: 2\n"}


def test_semver_filter_and_digest_refs(oci: Oci, registry: OciRegistry, reader: RegistryReader, tmp_path: Path) -> None:
    repo = repo_name()
    for tag in ("1.0.0", "1.2.0", "1.3.0-rc.1", "2.0.0", "1.1.0-beta"):
        push(registry, repo, tag, tmp_path / tag, {"version.txt": tag})
    oci.create("range", repo, ref={"semver": ">=1.0.0 <2.0.0"})
    oci.create("filtered", repo, ref={"semver": ">=1.0.0-0", "semverFilter": ".*-beta$"})
    chosen = oci.ready("range", f"1.2.0@{reader.digest(repo, '1.2.0')}")
    assert members(download(chosen)) == {"version.txt": b"1.2.0"}
    oci.ready("filtered", f"1.1.0-beta@{reader.digest(repo, '1.1.0-beta')}")

    pinned = reader.digest(repo, "1.0.0")
    oci.create("pinned", repo, ref={"digest": pinned, "semver": ">=2.0.0", "tag": "2.0.0"})  # digest wins
    done = oci.ready("pinned", pinned)
    assert members(download(done)) == {"version.txt": b"1.0.0"}

    oci.create("nomatch", repo, ref={"semver": ">=5.0.0"})
    failed = oci.failed("nomatch", "ReadOperationFailed")
    assert "no tag matches spec.ref.semver '>=5.0.0'" in condition(failed)["message"]


def test_layer_selector_copy_extract_and_ignore(
    oci: Oci, registry: OciRegistry, reader: RegistryReader, tmp_path: Path
) -> None:
    repo = repo_name()
    content = tar_gz({"keep.yaml": b"k: 1\n", "drop.txt": b"drop", "sub/also.txt": b"also"})
    notes = b"plain notes, not a tarball"
    digest = reader.push_image(repo, "v1", [("text/plain", notes), (FLUX_CONTENT, content)])
    revision = f"v1@{digest}"

    oci.create("copy", repo, ref={"tag": "v1"}, layerSelector={"mediaType": FLUX_CONTENT, "operation": "copy"})
    copied = oci.ready("copy", revision)
    assert download(copied) == content, "copy stores the layer as it is"
    assert status(copied)["observedLayerSelector"] == {"mediaType": FLUX_CONTENT, "operation": "copy"}

    oci.create("extract", repo, ref={"tag": "v1"}, layerSelector={"mediaType": FLUX_CONTENT})
    extracted = oci.ready("extract", revision)
    assert members(download(extracted)) == {"keep.yaml": b"k: 1\n", "drop.txt": b"drop", "sub/also.txt": b"also"}

    oci.create("ignored", repo, ref={"tag": "v1"}, layerSelector={"mediaType": FLUX_CONTENT}, ignore="*.txt\n")
    ignored = oci.ready("ignored", revision)
    assert members(download(ignored)) == {"keep.yaml": b"k: 1\n"}
    assert artifact(ignored)["digest"] != artifact(extracted)["digest"]
    assert status(ignored)["observedIgnore"] == "*.txt\n"

    # A changed ignore on the same digest makes a new artifact (Flux's content-config drift).
    oci.patch("ignored", {"spec": {"ignore": "sub/\n"}})
    until(lambda: oci.get("ignored"), lambda o: status(o).get("observedIgnore") == "sub/\n", timeout=30,
          what="the new ignore observed")  # fmt: skip
    assert members(download(oci.ready("ignored", revision))) == {"keep.yaml": b"k: 1\n", "drop.txt": b"drop"}

    oci.create("first", repo, ref={"tag": "v1"})  # no selector: the first layer, which is no tarball
    failed = oci.failed("first", LAYER_FAILED)
    assert "failed to extract layer contents" in condition(failed)["message"]

    oci.create("missing", repo, ref={"tag": "v1"}, layerSelector={"mediaType": "application/x-nothing"})
    missing = oci.failed("missing", LAYER_FAILED)
    assert "media type 'application/x-nothing'" in condition(missing)["message"]
    assert "spec.layerSelector.mediaType" in condition(missing)["message"]


def test_an_index_resolves_to_its_linux_amd64_manifest(oci: Oci, reader: RegistryReader) -> None:
    repo = repo_name()
    arm = reader.push_image(repo, "arm", [(FLUX_CONTENT, tar_gz({"arch.txt": b"arm64"}))])
    amd = reader.push_image(repo, "amd", [(FLUX_CONTENT, tar_gz({"arch.txt": b"amd64"}))])
    index = reader.push_index(repo, "multi", [(arm, {"os": "linux", "architecture": "arm64"}),
                                              (amd, {"os": "linux", "architecture": "amd64"})])  # fmt: skip
    oci.create("multi", repo, ref={"tag": "multi"})
    done = oci.ready("multi", f"multi@{index}")  # the revision names the index, as Flux's HEAD of the tag
    assert members(download(done)) == {"arch.txt": b"amd64"}

    only_arm = reader.push_index(repo, "arm-only", [(arm, {"os": "linux", "architecture": "arm64"})])
    oci.create("arm-only", repo, ref={"tag": "arm-only"})
    msg = condition(oci.failed("arm-only", PULL_FAILED))["message"]
    assert f"image index {only_arm[:19]}... has no linux/amd64 manifest" in msg


def test_bad_inputs_fail_with_flux_reasons_in_one_line(
    oci: Oci, registry: OciRegistry, reader: RegistryReader, tmp_path: Path
) -> None:
    repo = repo_name()
    push(registry, repo, "v1", tmp_path / "src", {"a.yaml": "a: 1\n"})

    oci.create("no-tag", repo, ref={"tag": "v404"})
    msg = condition(oci.failed("no-tag", PULL_FAILED))["message"]
    assert "tag 'v404' not found" in msg and "spec.ref.tag" in msg and one_line_without(msg)

    oci.secret("wrong", {".dockerconfigjson": registry.dockerconfigjson(password="wrong-Pa55").encode()},
               "kubernetes.io/dockerconfigjson")  # fmt: skip
    oci.create("wrong", repo, ref={"tag": "v1"}, secretRef={"name": "wrong"})
    msg = condition(oci.failed("wrong", PULL_FAILED))["message"]
    assert "401" in msg and "spec.secretRef" in msg and one_line_without(msg, "wrong-Pa55", registry.password)

    oci.create("untrusted", repo, ref={"tag": "v1"}, certSecretRef=None)
    msg = condition(oci.failed("untrusted", PULL_FAILED))["message"]
    assert "not trusted" in msg and "spec.certSecretRef" in msg and one_line_without(msg, registry.password)

    # A login kept for another host is never sent to this one: anonymous, refused.
    elsewhere = registry.dockerconfigjson().replace(registry.host, "registry.example:5000")
    oci.secret("elsewhere", {".dockerconfigjson": elsewhere.encode()}, "kubernetes.io/dockerconfigjson")
    oci.create("elsewhere", repo, ref={"tag": "v1"}, secretRef={"name": "elsewhere"})
    msg = condition(oci.failed("elsewhere", PULL_FAILED))["message"]
    assert "401" in msg and one_line_without(msg, registry.password)

    oci.create("no-secret", repo, ref={"tag": "v1"}, secretRef={"name": "absent"})
    msg = condition(oci.failed("no-secret", "AuthenticationFailed"))["message"]
    assert "secret" in msg and "absent" in msg and "spec.secretRef" in msg


def test_tampered_manifest_and_layer_are_refused(
    oci: Oci, registry: OciRegistry, reader: RegistryReader, tmp_path: Path
) -> None:
    repo = repo_name()
    push(registry, repo, "manifest", tmp_path / "m", {"m.yaml": "m: 1\n"})
    push(registry, repo, "layer", tmp_path / "l", {"l.yaml": "l: 1\n"})
    manifest_digest = reader.digest(repo, "manifest")
    reader.tamper_blob(manifest_digest, change=b"yes")
    oci.create("manifest", repo, ref={"digest": manifest_digest})
    msg = condition(oci.failed("manifest", PULL_FAILED))["message"]
    assert "manifest digest mismatch" in msg and manifest_digest[:19] in msg and one_line_without(msg)

    _, layered = reader.manifest(repo, "layer")
    reader.tamper_blob(layered["layers"][0]["digest"])
    oci.create("layer", repo, ref={"tag": "layer"})
    failed = oci.failed("layer", LAYER_FAILED)
    assert "blob digest mismatch" in condition(failed)["message"] and one_line_without(condition(failed)["message"])
    assert "artifact" not in status(failed), "nothing unchecked was stored"


def test_unsupported_and_invalid_fields_stall(oci: Oci) -> None:
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "verify": ({"verify": {"provider": "cosign"}}, "spec.verify"),
        "provider": ({"provider": "aws"}, "spec.provider 'aws'"),
        "account": ({"serviceAccountName": "puller"}, "spec.serviceAccountName"),
        "proxy": ({"proxySecretRef": {"name": "proxy"}}, "spec.proxySecretRef"),
    }
    for name, (spec, _) in cases.items():
        oci.create(name, "apps/any", **spec)
    for name, (_, field) in cases.items():
        stalled = oci.stalled(name)
        assert condition(stalled, "Stalled")["reason"] == "UnsupportedField"
        assert condition(stalled, "Stalled")["message"].startswith(f"{field} is not supported by fluxwarden yet")
        assert condition(stalled)["status"] == "False"

    oci.create("tagged", "apps/any:v1")
    stalled = oci.stalled("tagged")
    assert condition(stalled)["reason"] == "URLInvalid"
    assert "must not contain a tag; remove ':v1'" in condition(stalled)["message"]


def test_plain_http_registry_with_insecure(
    admin_api: client.ApiClient, namespace: str, source: Reconcilers, tmp_path: Path
) -> None:
    with OciRegistry(auth=False) as plain:
        push(plain, "plain", "v1", tmp_path / "src", {"p.yaml": "p: 1\n"})
        oci = Oci(admin_api, namespace, plain, SHARD_VALUE)
        oci.create("plain", "plain", ref={"tag": "v1"}, insecure=True, secretRef=None, certSecretRef=None)
        reader = RegistryReader(plain)
        try:
            done = oci.ready("plain", f"v1@{reader.digest('plain', 'v1')}")
        finally:
            reader.close()
        assert members(download(done)) == {"p.yaml": b"p: 1\n"}


class MutualTlsRegistry(OciRegistry):
    """The same registry asking every client for a certificate of ``ca`` (distribution's ``http.tls.clientcas``)."""

    def __init__(self, ca: PrivateCA) -> None:
        super().__init__(ca, auth=False)
        self.client_files = self.state_dir / "client"
        self.client_files.mkdir()
        (self.client_files / "tls.crt").write_bytes(ca.client.cert_pem)
        (self.client_files / "tls.key").write_bytes(ca.client.key_pem)
        with_cert = ssl.create_default_context(cadata=ca.ca_pem.decode())
        with_cert.load_cert_chain(self.client_files / "tls.crt", self.client_files / "tls.key")
        self.with_cert = with_cert
        self._process = ServerProcess(
            "registry", self._command, lambda port: answers_http(f"https://{HOST}:{port}/v2/", with_cert),
            self.state_dir / "registry.log", env={"OTEL_TRACES_EXPORTER": "none"}, cwd=self.state_dir,
        )  # fmt: skip

    def _config(self, port: int) -> dict[str, Any]:
        config = super()._config(port)
        config["http"]["tls"]["clientcas"] = [str(self.ca_file)]
        return config


def test_client_certificate_from_cert_secret_ref(
    admin_api: client.ApiClient, namespace: str, source: Reconcilers, tmp_path: Path
) -> None:
    ca = PrivateCA()
    with MutualTlsRegistry(ca) as mtls:
        anonymous = httpx.Client(verify=client_context(ca))
        with pytest.raises(httpx.HTTPError):
            anonymous.get(f"{mtls.url}/v2/")  # the registry really refuses a client without a certificate
        anonymous.close()
        with httpx.Client(base_url=mtls.url, verify=mtls.with_cert) as http:
            content = tar_gz({"m.yaml": b"m: 1\n"})
            started = http.post("/v2/mtls/blobs/uploads/")
            location = started.headers["location"]
            http.put(location + f"&digest={sha256(content)}", content=content).raise_for_status()
            config = b"{}"
            location = http.post("/v2/mtls/blobs/uploads/").headers["location"]
            http.put(location + f"&digest={sha256(config)}", content=config).raise_for_status()
            manifest = (
                '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":'
                f'{{"mediaType":"application/vnd.cncf.flux.config.v1+json","size":2,"digest":"{sha256(config)}"}},'
                f'"layers":[{{"mediaType":"{FLUX_CONTENT}","size":{len(content)},"digest":"{sha256(content)}"}}]}}'
            ).encode()
            put = http.put("/v2/mtls/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST})
            put.raise_for_status()
        oci = Oci(admin_api, namespace, mtls, SHARD_VALUE)
        oci.secret("client-tls", {"ca.crt": ca.ca_pem, "tls.crt": ca.client.cert_pem, "tls.key": ca.client.key_pem})
        oci.create("mtls", "mtls", ref={"tag": "v1"}, secretRef=None, certSecretRef={"name": "client-tls"})
        done = oci.ready("mtls", f"v1@{sha256(manifest)}")
        assert members(download(done)) == {"m.yaml": b"m: 1\n"}

        oci.create("ca-only", "mtls", ref={"tag": "v1"}, secretRef=None)  # registry-ca: no client certificate
        msg = condition(oci.failed("ca-only", PULL_FAILED))["message"]
        assert "asks for a client certificate" in msg and "tls.crt and tls.key" in msg
        assert one_line_without(msg, ca.client.key_pem.decode().splitlines()[1])
