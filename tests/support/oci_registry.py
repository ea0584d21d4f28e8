"""A real OCI registry on loopback: the CNCF distribution registry (tests/storage/go.mod), htpasswd + TLS.

OCIRepository sources and ``type: oci`` HelmRepositories must meet a real registry: real token-less
basic auth (htpasswd, bcrypt), real manifest digests, real ``helm push``. The user and password are
random per registry; the bcrypt line comes from tests/storage's ``htpasswd`` (password on stdin).
``tls=None`` serves plain HTTP (``insecure: true``); ``auth=False`` serves anonymous pulls and pushes.

    with OciRegistry(PrivateCA()) as registry:
        run_helm("push", chart_tgz, registry.oci_url("charts"), "--ca-file", str(registry.ca_file), ...)
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tests.support.server_process import (
    HOST,
    ManagedServer,
    ServerProcess,
    answers_http,
    client_context,
    write_tls_files,
)
from tests.support.storage_binaries import storage_binary
from tests.support.tls import PrivateCA


def htpasswd_line(user: str, password: str) -> str:
    """``user:<bcrypt hash>``, made by the Go bcrypt the registry verifies with."""
    result = subprocess.run(
        [str(storage_binary("htpasswd")), user], input=password + "\n", capture_output=True, text=True, timeout=30
    )
    if result.returncode != 0:
        raise RuntimeError(f"htpasswd failed (exit {result.returncode}): {result.stderr.strip()}")
    return result.stdout.strip()


class OciRegistry(ManagedServer):
    """``registry serve`` on ``127.0.0.1:<port>``; ``host`` is what ``oci://`` URLs and docker configs name."""

    def __init__(self, tls: PrivateCA | None = None, *, auth: bool = True) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="fluxwarden-registry-"))
        self.tls = tls
        self.auth = auth
        self.username = "fw" + secrets.token_hex(4)
        self.password = secrets.token_urlsafe(24)
        self._files = write_tls_files(tls, self.state_dir / "tls") if tls else None
        self.ca_file = self._files.ca if self._files else None
        (self.state_dir / "data").mkdir()
        if auth:
            (self.state_dir / "htpasswd").write_text(htpasswd_line(self.username, self.password) + "\n")
        self._process = ServerProcess(
            "registry",
            self._command,
            lambda port: answers_http(f"{self._scheme}://{HOST}:{port}/v2/", client_context(tls)),
            self.state_dir / "registry.log",
            env={"OTEL_TRACES_EXPORTER": "none"},  # else it sends traces to localhost:4318
            cwd=self.state_dir,
        )

    @property
    def _scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"{HOST}:{self._process.port}"

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:<port>``: the registry API's base (``/v2/...`` below it)."""
        return f"{self._scheme}://{self.host}"

    def oci_url(self, repository: str = "") -> str:
        """``oci://127.0.0.1:<port>/<repository>``."""
        return f"oci://{self.host}/{repository}".rstrip("/")

    @property
    def ca_pem(self) -> bytes | None:
        """The CA that signed the serving certificate (a ``certSecretRef``'s ``ca.crt``); None over HTTP."""
        return self.tls.ca_pem if self.tls else None

    @property
    def insecure(self) -> bool:
        return self.tls is None

    def dockerconfigjson(self, *, username: str | None = None, password: str | None = None) -> str:
        """A ``kubernetes.io/dockerconfigjson`` Secret's ``.dockerconfigjson`` for this registry."""
        user, secret = username or self.username, password or self.password
        encoded = base64.b64encode(f"{user}:{secret}".encode()).decode()
        return json.dumps({"auths": {self.host: {"username": user, "password": secret, "auth": encoded}}})

    def _command(self, port: int) -> list[str]:
        config = self.state_dir / "config.yml"
        config.write_text(yaml.safe_dump(self._config(port), sort_keys=False))
        return [str(storage_binary("registry")), "serve", str(config)]

    def _config(self, port: int) -> dict[str, Any]:
        http: dict[str, Any] = {"addr": f"{HOST}:{port}", "secret": secrets.token_hex(16), "draintimeout": "1s"}
        if self._files:
            http["tls"] = {"certificate": str(self._files.cert), "key": str(self._files.key), "minimumtls": "tls1.2"}
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(self.state_dir / "data")}, "delete": {"enabled": True}},
            "http": http,
        }
        if self.auth:
            config["auth"] = {"htpasswd": {"realm": "fluxwarden-test", "path": str(self.state_dir / "htpasswd")}}
        return config
