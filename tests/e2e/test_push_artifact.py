"""``fluxwarden push artifact`` against the real distribution registry (htpasswd + TLS), read back by hand.

Every expectation is Flux's format as fluxcd/pkg/oci ``Client.Push`` writes it (an OCI image manifest,
config ``application/vnd.cncf.flux.config.v1+json``, one ``application/vnd.cncf.flux.content.v1.tar+gzip``
layer, the created/source/revision annotations, go-containerregistry's config of an empty image with
one layer), checked on what the registry itself serves (``tests.support.oci_artifacts``, plain httpx).
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.oci_artifacts import (
    FLUX_CONFIG,
    FLUX_CONTENT,
    OCI_MANIFEST,
    RegistryReader,
    fluxwarden_push,
    members,
    sha256,
    write_tree,
)
from tests.support.oci_registry import OciRegistry
from tests.support.tls import PrivateCA

FILES: dict[str, str | bytes] = {
    "deploy/app.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n",
    "deploy/nested/more.yaml": "kind: Namespace\n",
    "run.sh": "#!/bin/sh\necho hi\n",
    "logo.png": b"\x89PNG not really",
    "bundle.tar.gz": b"not a tarball",
    ".git/config": "[core]\n",
    ".gitignore": "*.tmp\n",
}
KEPT = {"deploy/app.yaml", "deploy/nested/more.yaml", "run.sh"}  # flux's default --ignore-paths drop the rest


def test_pushed_artifact_has_flux_format(registry: OciRegistry, reader: RegistryReader, tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", FILES)
    (source / "run.sh").chmod(0o755)
    before = datetime.now(UTC).replace(microsecond=0)
    pushed = fluxwarden_push(
        registry, registry.oci_url("apps/web") + ":v1", source, "--source", "https://git.example/web.git",
        "--revision", "main@sha1:0123456789abcdef0123456789abcdef01234567", "-a", "team=web", "-o", "json",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    digest = reader.digest("apps/web", "v1")
    assert json.loads(pushed.stdout) == {
        "url": f"oci://{registry.host}/apps/web@{digest}", "repository": f"{registry.host}/apps/web",
        "tag": "v1", "digest": digest,
    }  # fmt: skip
    assert registry.password not in pushed.stdout + pushed.stderr

    body, manifest = reader.manifest("apps/web", digest)
    assert sha256(body) == digest
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == OCI_MANIFEST
    assert manifest["config"]["mediaType"] == FLUX_CONFIG
    [layer] = manifest["layers"]
    assert layer["mediaType"] == FLUX_CONTENT
    annotations = manifest["annotations"]
    assert {k: v for k, v in annotations.items() if k != "org.opencontainers.image.created"} == {
        "org.opencontainers.image.source": "https://git.example/web.git",
        "org.opencontainers.image.revision": "main@sha1:0123456789abcdef0123456789abcdef01234567",
        "team": "web",
    }
    created = datetime.strptime(annotations["org.opencontainers.image.created"], "%Y-%m-%dT%H:%M:%SZ")
    assert before - timedelta(seconds=1) <= created.replace(tzinfo=UTC) <= datetime.now(UTC)

    blob = reader.blob("apps/web", layer["digest"])
    assert (sha256(blob), len(blob)) == (layer["digest"], layer["size"])
    config = reader.blob("apps/web", manifest["config"]["digest"])
    assert (sha256(config), len(config)) == (manifest["config"]["digest"], manifest["config"]["size"])
    # go-containerregistry's config for empty.Image + created + one appended layer, Go's compact JSON.
    assert json.loads(config) == {
        "architecture": "", "created": annotations["org.opencontainers.image.created"],
        "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
        "rootfs": {"type": "layers", "diff_ids": [sha256(gzip.decompress(blob))]}, "config": {},
    }  # fmt: skip
    assert b" " not in config, "Go's encoding/json writes no spaces"

    contents = members(blob)
    assert set(contents) == KEPT
    assert contents["deploy/app.yaml"] == str(FILES["deploy/app.yaml"]).encode()


def test_reproducible_pushes_give_one_digest(registry: OciRegistry, reader: RegistryReader, tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"a.yaml": "kind: A\n"})
    for tag in ("one", "two"):
        done = fluxwarden_push(registry, registry.oci_url("repro") + f":{tag}", source, "--reproducible")
        assert done.returncode == 0, done.stderr
    assert reader.digest("repro", "one") == reader.digest("repro", "two")
    _, manifest = reader.manifest("repro", "one")
    assert manifest["annotations"] == {"org.opencontainers.image.created": "1970-01-01T00:00:00Z"}

    (source / "a.yaml").write_text("kind: B\n")
    changed = fluxwarden_push(registry, registry.oci_url("repro") + ":three", source, "--reproducible")
    assert changed.returncode == 0, changed.stderr
    assert reader.digest("repro", "three") != reader.digest("repro", "one")


def test_single_file_and_own_ignore_paths(registry: OciRegistry, reader: RegistryReader, tmp_path: Path) -> None:
    single = write_tree(tmp_path / "one", {"only.yaml": "kind: Only\n"}) / "only.yaml"
    assert fluxwarden_push(registry, registry.oci_url("single") + ":v1", single).returncode == 0
    _, manifest = reader.manifest("single", "v1")
    assert set(members(reader.blob("single", manifest["layers"][0]["digest"]))) == {"only.yaml"}

    # --ignore-paths replaces flux's defaults: the .png is kept, the yaml dropped.
    source = write_tree(tmp_path / "src", {"a.yaml": "kind: A\n", "logo.png": b"png", "notes/x.md": "x"})
    done = fluxwarden_push(registry, registry.oci_url("ignored") + ":v1", source, "--ignore-paths", "*.yaml,notes/")
    assert done.returncode == 0, done.stderr
    _, manifest = reader.manifest("ignored", "v1")
    assert set(members(reader.blob("ignored", manifest["layers"][0]["digest"]))) == {"logo.png"}


def test_password_never_from_argv_but_from_stdin(registry: OciRegistry, reader: RegistryReader, tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"a.yaml": "kind: A\n"})
    url = registry.oci_url("creds") + ":v1"
    refused = fluxwarden_push(
        registry, url, source, "--creds", f"{registry.username}:{registry.password}", stdin="", password=""
    )
    assert refused.returncode == 2
    assert "--password-stdin" in refused.stderr and registry.password not in refused.stderr
    piped = fluxwarden_push(
        registry, url, source, "--creds", registry.username, "--password-stdin", stdin=registry.password + "\n"
    )
    assert piped.returncode == 0, piped.stderr
    assert reader.tags("creds") == ["v1"]


def test_wrong_password_and_untrusted_registry_fail_in_one_line(registry: OciRegistry, tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"a.yaml": "kind: A\n"})
    wrong = fluxwarden_push(registry, registry.oci_url("nope") + ":v1", source, password="not-the-password")
    assert wrong.returncode == 1
    [line] = wrong.stderr.strip().splitlines()[-1:]
    assert "401" in line and "--creds" in line and "not-the-password" not in wrong.stderr

    with OciRegistry(PrivateCA()) as stranger:
        stranger.ca_file = None  # the client is not told about this registry's CA
        untrusted = fluxwarden_push(stranger, stranger.oci_url("x") + ":v1", source)
        assert untrusted.returncode == 1
        assert "not trusted" in untrusted.stderr and "--ca-file" in untrusted.stderr
        assert stranger.password not in untrusted.stderr


def test_plain_http_registry_with_insecure_flag(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"a.yaml": "kind: A\n"})
    with OciRegistry(auth=False) as plain:
        done = fluxwarden_push(plain, plain.oci_url("plain") + ":v1", source)
        assert done.returncode == 0, done.stderr
        reader = RegistryReader(plain)
        try:
            _, manifest = reader.manifest("plain", "v1")
            assert manifest["layers"][0]["mediaType"] == FLUX_CONTENT
        finally:
            reader.close()
