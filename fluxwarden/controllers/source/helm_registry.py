"""Registry credentials for ``helm pull oci://`` (an OCI HelmRepository), as Flux reads them.

``secretRef`` holds ``username``/``password``, or is a ``kubernetes.io/dockerconfigjson`` Secret whose
entry for the registry's host is used; ``certSecretRef`` holds ``ca.crt``, ``tls.crt``, ``tls.key``
(or, deprecated, ``secretRef`` does). :class:`RegistrySession` hands them to the real helm CLI: a
private (0700) directory per pull with helm's own homes, the TLS files (0600) and a
``HELM_REGISTRY_CONFIG`` that ``helm registry login --password-stdin`` fills. No credential is ever on
a command line, and the directory is removed when the pull is done.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import urllib3
from kubernetes.client.exceptions import ApiException

from fluxwarden.controllers.artifacts.http import HttpCredentials, private_file
from fluxwarden.controllers.runtime.errors import Failure
from fluxwarden.controllers.runtime.kube import Kube, NotFound, translate
from fluxwarden.controllers.source.api import HelmRepositorySpec

DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
AUTHENTICATION_FAILED = "AuthenticationFailed"
# Flux's test for an authentication error in a chart build's error text (basic auth, then TLS). 401 is a
# status only where no digit, dot or colon touches it: "127.0.0.1:40103" in a URL is a port, not a refusal.
AUTH_MARKERS = re.compile(
    r"(?<![\d.:])401(?![\d.])|unauthorized|authentication required|\btls\b|unknown certificate authority|x509",
    re.IGNORECASE,
)


def helm_failure(error: str, otherwise: str) -> Failure:
    """Flux's reason for helm's ``error``: AuthenticationFailed when the registry refused the credentials
    or its certificate did not verify, else ChartPullError with ``otherwise`` before the error."""
    if AUTH_MARKERS.search(error):
        return Failure(AUTHENTICATION_FAILED, f"failed to authenticate with the Helm repository: {error}")
    return Failure("ChartPullError", f"{otherwise}: {error}")


@dataclass(frozen=True, repr=False)
class RegistryCredentials:
    """Basic auth and TLS material for one registry host; all optional (anonymous, system trust)."""

    username: str | None = None
    password: str | None = None
    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None

    def __repr__(self) -> str:  # never a password in a log or traceback
        return f"RegistryCredentials(username={self.username!r}, tls={self.ca_pem is not None})"


def registry_host(url: str) -> str:
    """``host[:port]`` of ``oci://host[:port]/path``."""
    return urlsplit(url).netloc


def _hostname(server: str) -> str:
    """docker's ``ConvertToHostname``: a config key may be a URL (``https://host/v1/``) or a bare host."""
    if "://" in server:
        server = server.split("://", 1)[1]
    return server.split("/", 1)[0]


def docker_config_auth(config: bytes, host: str, secret: str) -> tuple[str, str]:
    """The username and password a ``.dockerconfigjson`` holds for ``host``; a Failure when none."""
    try:
        auths = json.loads(config or b"{}").get("auths") or {}
    except (ValueError, AttributeError):
        raise Failure(AUTHENTICATION_FAILED, f"unable to load Docker config from Secret '{secret}'") from None
    for server, entry in auths.items() if isinstance(auths, dict) else ():
        if _hostname(str(server)) != host or not isinstance(entry, dict):
            continue
        username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
        if entry.get("auth") and not (username or password):
            try:
                username, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise Failure(
                    AUTHENTICATION_FAILED, f"Secret '{secret}': the 'auth' of '{host}' is not base64 'user:password'"
                ) from None
        return username, password
    raise Failure(
        AUTHENTICATION_FAILED,
        f"failed to configure OCI registry authentication: no auth config for '{host}' "
        f"in the docker-registry Secret '{secret}'",
    )


def _secret(kube: Kube, namespace: str, name: str, what: str) -> tuple[str, dict[str, bytes]]:
    """The Secret's type and decoded data (the type tells a docker config from basic auth, as in Flux)."""
    try:
        found = kube.core.read_namespaced_secret(name, namespace)
    except (ApiException, urllib3.exceptions.HTTPError) as exc:
        error = translate(exc, f"get Secret {namespace}/{name}")
        if isinstance(error, NotFound):
            raise Failure(
                AUTHENTICATION_FAILED, f"failed to get {what} secret '{namespace}/{name}': not found"
            ) from None
        raise error from None
    data = {k: base64.b64decode(v) for k, v in (found.data or {}).items()}
    return str(found.type or ""), data


def registry_credentials(kube: Kube, namespace: str, spec: HelmRepositorySpec) -> RegistryCredentials:
    """What ``spec``'s Secrets give for its registry (Flux's ``KeychainFromSecret`` and TLS rules)."""
    host = registry_host(spec.url)
    tls = _secret(kube, namespace, spec.cert_secret_name, "TLS authentication")[1] if spec.cert_secret_name else None
    username = password = ""
    auth: dict[str, bytes] = {}
    if spec.secret_name:
        kind, auth = _secret(kube, namespace, spec.secret_name, "authentication")
        if kind == DOCKER_CONFIG_JSON:
            username, password = docker_config_auth(auth.get(".dockerconfigjson", b""), host, spec.secret_name)
        else:
            username, password = auth.get("username", b"").decode(), auth.get("password", b"").decode()
        if bool(username) != bool(password):
            raise Failure(
                AUTHENTICATION_FAILED,
                f"invalid '{spec.secret_name}' secret data: required fields 'username' and 'password'",
            )
    material = HttpCredentials.from_secrets(auth, tls)
    if bool(material.cert_pem) != bool(material.key_pem):
        raise Failure(
            AUTHENTICATION_FAILED,
            f"failed to construct Helm client's TLS config: Secret '{spec.cert_secret_name or spec.secret_name}' "
            "needs both 'tls.crt' and 'tls.key' for a client certificate",
        )
    return RegistryCredentials(username or None, password or None, material.ca_pem, material.cert_pem, material.key_pem)


class RegistrySession:
    """A private helm home for one registry: TLS files, a logged-in registry config, removed on exit."""

    def __init__(
        self, host: str, credentials: RegistryCredentials, *, plain_http: bool, timeout: float, helm: str = "helm"
    ) -> None:
        self.host = host
        self.credentials = credentials
        self.plain_http = plain_http
        self.timeout = timeout
        self.helm = helm
        self.home = Path(tempfile.mkdtemp(prefix="fluxwarden-helm-login-"))  # 0700
        self.registry_config = self.home / "registry.json"
        self.flags: list[str] = ["--plain-http"] if plain_http else []
        for flag, data, name in (
            ("--ca-file", credentials.ca_pem, "ca.crt"),
            ("--cert-file", credentials.cert_pem, "tls.crt"),
            ("--key-file", credentials.key_pem, "tls.key"),
        ):
            if data:
                self.flags += [flag, str(private_file(self.home / name, data))]
        private_file(self.registry_config, b"{}")
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            "HELM_REGISTRY_CONFIG": str(self.registry_config),
        }

    def __enter__(self) -> Self:
        try:
            if self.credentials.username:
                self._login()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def _login(self) -> None:
        done = self.run(
            ["registry", "login", self.host, "--username", str(self.credentials.username), "--password-stdin"],
            stdin=str(self.credentials.password),
        )
        if done.returncode != 0:
            raise helm_failure(self.error(done), f"chart pull error: failed to login to the registry {self.host}")

    def run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``helm <args> <TLS and plain-http flags>`` in this home; a timeout is a Failure."""
        try:
            return subprocess.run(
                [self.helm, *args, *self.flags], input=stdin, capture_output=True, text=True, env=self.env,
                timeout=self.timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise Failure("ChartPullError", f"helm {args[0]} timed out after {self.timeout:g}s") from None

    def error(self, done: subprocess.CompletedProcess[str]) -> str:
        """helm's last error line, one line, with any credential replaced."""
        lines = [line for line in (done.stderr or "").splitlines() if line.strip()]
        line = (lines[-1] if lines else f"helm exited with {done.returncode}").removeprefix("Error: ")
        if self.credentials.password:
            line = line.replace(self.credentials.password, "***")
        return " ".join(line.split())
