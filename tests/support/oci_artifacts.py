"""Read and write OCI artifacts in a test registry with plain httpx, independently of fluxwarden's client.

The OCIRepository and ``push artifact`` tests derive every expected digest, manifest and layer from
the registry itself through this module (basic auth, the distribution API by hand), never through
``fluxwarden.controllers.source.oci``. ``push_image`` uploads hand-made artifacts (several layers,
other media types) that ``fluxwarden push artifact`` does not make; ``tamper_blob`` changes a stored
blob's bytes on the registry's disk, so a digest check has something real to catch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.support.oci_registry import OciRegistry
from tests.support.server_process import client_context

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
FLUX_CONFIG = "application/vnd.cncf.flux.config.v1+json"
FLUX_CONTENT = "application/vnd.cncf.flux.content.v1.tar+gzip"
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
ACCEPT = f"{OCI_MANIFEST}, {OCI_INDEX}, application/vnd.docker.distribution.manifest.v2+json"
REPO_ROOT = Path(__file__).resolve().parents[2]


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class RegistryReader:
    """The registry's own answers, read as its admin (the htpasswd user)."""

    def __init__(self, registry: OciRegistry) -> None:
        self.registry = registry
        auth = (registry.username, registry.password) if registry.auth else None
        self.http = httpx.Client(base_url=registry.url, auth=auth, verify=client_context(registry.tls), timeout=30)

    def close(self) -> None:
        self.http.close()

    def digest(self, repo: str, tag: str) -> str:
        """What the registry says the tag points to (``Docker-Content-Digest`` of a HEAD)."""
        response = self.http.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
        response.raise_for_status()
        return str(response.headers["docker-content-digest"])

    def manifest(self, repo: str, reference: str) -> tuple[bytes, dict[str, Any]]:
        response = self.http.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT})
        response.raise_for_status()
        return response.content, json.loads(response.content)

    def blob(self, repo: str, digest: str) -> bytes:
        response = self.http.get(f"/v2/{repo}/blobs/{digest}", follow_redirects=True)
        response.raise_for_status()
        return response.content

    def tags(self, repo: str) -> list[str]:
        response = self.http.get(f"/v2/{repo}/tags/list")
        response.raise_for_status()
        return list(response.json().get("tags") or [])

    def upload(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        started = self.http.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        url = location + ("&" if "?" in location else "?") + f"digest={digest}"  # keep the upload's _state
        done = self.http.put(url, content=data, headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
        return digest

    def push_image(
        self,
        repo: str,
        tag: str,
        layers: Sequence[tuple[str, bytes]],
        *,
        config: tuple[str, bytes] = (FLUX_CONFIG, b"{}"),
        annotations: dict[str, str] | None = None,
    ) -> str:
        """Upload ``layers`` (media type, bytes) and a manifest under ``tag``; the manifest's digest."""
        descriptors = [{"mediaType": mt, "size": len(data), "digest": self.upload(repo, data)} for mt, data in layers]
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config[0], "size": len(config[1]), "digest": self.upload(repo, config[1])},
            "layers": descriptors,
        }
        if annotations:
            manifest["annotations"] = annotations
        body = json.dumps(manifest).encode()
        response = self.http.put(f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": OCI_MANIFEST})
        assert response.status_code == 201, response.text
        return sha256(body)

    def push_index(self, repo: str, tag: str, manifests: Sequence[tuple[str, dict[str, str]]]) -> str:
        """An OCI image index under ``tag`` naming ``manifests`` (digest, platform); its digest."""
        entries = []
        for digest, platform in manifests:
            body, _ = self.manifest(repo, digest)
            entries.append({"mediaType": OCI_MANIFEST, "size": len(body), "digest": digest, "platform": platform})
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        response = self.http.put(f"/v2/{repo}/manifests/{tag}", content=index, headers={"Content-Type": OCI_INDEX})
        assert response.status_code == 201, response.text
        return sha256(index)

    def tamper_blob(self, digest: str, change: bytes = b"") -> None:
        """Rewrite the stored bytes of blob ``digest`` on the registry's disk: the same length, other
        bytes (``change`` appended to JSON instead when given, for a manifest that must stay parseable)."""
        path = self.blob_path(digest)
        data = path.read_bytes()
        if change:
            parsed = json.loads(data)
            parsed.setdefault("annotations", {})["tampered"] = change.decode()
            path.write_bytes(json.dumps(parsed).encode())
        else:
            path.write_bytes(bytes(b ^ 0xFF for b in data[:16]) + data[16:])

    def requests_by_fluxwarden(self, repo: str) -> list[str]:
        """``METHOD /v2/<repo>/...`` of every request fluxwarden's client made so far (the access log)."""
        found = []
        for line in (self.registry.state_dir / "registry.log").read_text().splitlines():
            if '"fluxwarden/oci"' in line and f" /v2/{repo}/" in line:
                method, path = line.split('"', 2)[1].split()[:2]
                found.append(f"{method} {path}")
        return found

    def blob_path(self, digest: str) -> Path:
        hexdigest = digest.partition(":")[2]
        root = self.registry.state_dir / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
        return root / hexdigest[:2] / hexdigest / "data"


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A tar.gz of ``files`` (name -> content)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def members(data: bytes) -> dict[str, bytes]:
    """The regular files of a tar.gz, name -> content."""
    found = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                found[member.name.removeprefix("./")] = extracted.read()
    return found


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def fluxwarden_push(
    registry: OciRegistry, url: str, path: Path, *args: str, password: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``fluxwarden push artifact`` as a user runs it: its own process, the password in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXWARDEN_REGISTRY_")}
    env["DOCKER_CONFIG"] = str(registry.state_dir / "no-docker-config")  # never the machine's own logins
    command = [sys.executable, "-m", "fluxwarden.cli.main", "push", "artifact", url, "--path", str(path)]
    if registry.auth and stdin is None:
        command += ["--creds", registry.username]
        env["FLUXWARDEN_REGISTRY_PASSWORD"] = password if password is not None else registry.password
    if registry.ca_file:
        command += ["--ca-file", str(registry.ca_file)]
    if registry.insecure:
        command.append("--insecure-registry")
    return subprocess.run(
        [*command, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
    )
