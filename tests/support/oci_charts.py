"""Publish to a real OCI registry as users do: charts with the real ``helm package``/``helm push``, Flux
artifacts with ``fluxwarden push artifact``; what was pushed (the ``.tgz`` bytes, the manifest's
digests, as the registry reports them) is the tests' witness.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.helm_cli import helm_env
from tests.support.helm_repo import helm_binary, write_chart
from tests.support.oci_registry import OciRegistry
from tests.support.server_process import client_context

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class ChartPublisher:
    """One helm home logged in to ``registry`` (when it has auth); charts go to ``oci://<host>/<path>``."""

    def __init__(self, registry: OciRegistry, work: Path, path: str = "charts") -> None:
        self.registry = registry
        self.work = work
        self.path = path
        self.home = work / "helm-home"
        self.flags = ["--plain-http"] if registry.insecure else ["--ca-file", str(registry.ca_file)]
        if registry.auth:
            self._helm("registry", "login", registry.host, "--username", registry.username, "--password-stdin",
                       *self.flags, stdin=registry.password)  # fmt: skip

    def _helm(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [helm_binary(), *args], env=helm_env(str(self.home)), input=stdin, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"helm {args[0]} failed: {done.stderr.strip()}")
        return done.stdout + done.stderr

    def push(self, name: str, version: str, values: dict[str, Any] | None = None) -> bytes:
        """Package and push chart ``name`` at ``version``; the pushed archive's bytes."""
        source = write_chart(self.work / f"src-{name}-{version}", name, version, values or {"version": version})
        out = self.work / f"pkg-{name}-{version}"
        self._helm("package", str(source), "-d", str(out))
        tgz = out / f"{name}-{version}.tgz"
        self._helm("push", str(tgz), self.registry.oci_url(self.path), *self.flags)
        return tgz.read_bytes()

    def layer_digest(self, name: str, version: str) -> str:
        """The chart layer's digest in the registry's manifest of ``name:version`` (read over the API)."""
        auth = (self.registry.username, self.registry.password) if self.registry.auth else None
        response = httpx.get(
            f"{self.registry.url}/v2/{self.path}/{name}/manifests/{version}",
            headers={"Accept": OCI_MANIFEST}, auth=auth, verify=client_context(self.registry.tls), timeout=10,
        )  # fmt: skip
        response.raise_for_status()
        [layer] = response.json()["layers"]
        return str(layer["digest"])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_digest(registry: OciRegistry, repository: str, tag: str) -> str:
    """The digest the registry gives the manifest of ``repository:tag`` (its own answer)."""
    response = httpx.head(f"{registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": OCI_MANIFEST},
                          timeout=10)  # fmt: skip
    response.raise_for_status()
    return str(response.headers["Docker-Content-Digest"])


def push_artifact(registry: OciRegistry, reference: str, directory: Path) -> None:
    """``fluxwarden push artifact`` (as ``flux push artifact``) of ``directory`` to a plain-HTTP registry."""
    done = subprocess.run(
        [sys.executable, "-m", "fluxwarden.cli.main", "push", "artifact", f"oci://{registry.host}/{reference}",
         "--path", str(directory), "--source", "https://example.com/apps.git", "--revision", "main@sha1:" + "a" * 40,
         "--insecure-registry"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
