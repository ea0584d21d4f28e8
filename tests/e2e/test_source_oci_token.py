"""Bearer token auth (the Docker registry token spec, as GHCR, Docker Hub and Harbor use it), for real.

The distribution registry runs with ``auth: token`` and checks RS256 JWTs against a JWKS; a small token
service here (HTTPS, the test CA) answers ``GET /token?service=&scope=`` with basic auth, as the spec
says, and records what it was asked. The OCIRepository reconciler and ``fluxwarden push artifact``
must follow the ``WWW-Authenticate: Bearer realm=...`` challenge, send the login to the realm only,
and use the token at the registry.
"""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from tests.support.oci_artifacts import fluxwarden_push, members, write_tree
from tests.support.oci_registry import OciRegistry
from tests.support.oci_sources import SHARD, Oci, condition, download
from tests.support.server_process import HOST, client_context
from tests.support.tls import PrivateCA

SHARD_VALUE = "oci-token"
PULL_FAILED = "OCIArtifactPullFailed"
ISSUER, SERVICE = "fluxwarden-test-issuer", "fluxwarden-test-registry"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """``https://127.0.0.1:<port>/token``: RS256 JWTs for one user, every request recorded."""

    def __init__(self, ca: PrivateCA, username: str, password: str) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.username, self.password = username, password
        self.asked: list[dict[str, Any]] = []
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                login = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else None
                service.asked.append({"login": login, "scope": query.get("scope", []), "service": query.get("service")})
                if login != f"{service.username}:{service.password}":
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"token": service.token(query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.server.socket = ca.server_context().wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"https://{HOST}:{self.server.server_address[1]}/token"

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        return {"keys": [{"kty": "RSA", "kid": "test-key", "alg": "RS256", "use": "sig",
                          "n": _b64(n), "e": _b64(numbers.e.to_bytes(3, "big"))}]}  # fmt: skip

    def token(self, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": self.username, "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": secrets.token_hex(8), "access": access}  # fmt: skip
        header = {"alg": "RS256", "typ": "JWT", "kid": "test-key"}
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{_b64(signature)}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TokenRegistry(OciRegistry):
    """The distribution registry with ``auth: token`` against ``service``."""

    def __init__(self, ca: PrivateCA, service: TokenService) -> None:
        self.service = service
        super().__init__(ca, auth=False)
        self.username, self.password = service.username, service.password
        self.auth = True  # clients need a login (for the token service; _config replaces htpasswd)
        (self.state_dir / "jwks.json").write_text(json.dumps(service.jwks()))

    def _config(self, port: int) -> dict[str, Any]:
        config = super()._config(port)
        config["auth"] = {"token": {"realm": self.service.realm, "service": SERVICE, "issuer": ISSUER,
                                    "jwks": str(self.state_dir / "jwks.json")}}  # fmt: skip
        return config


@pytest.fixture(scope="module")
def ca() -> PrivateCA:
    return PrivateCA()


@pytest.fixture(scope="module")
def token_service(ca: PrivateCA) -> Iterator[TokenService]:
    service = TokenService(ca, "robot", secrets.token_urlsafe(16))
    yield service
    service.stop()


@pytest.fixture(scope="module")
def registry(ca: PrivateCA, token_service: TokenService) -> Iterator[TokenRegistry]:
    with TokenRegistry(ca, token_service) as server:
        yield server


@pytest.fixture(scope="module")
def source(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source",), label_selector=f"{SHARD}={SHARD_VALUE}")


def _digest(registry: TokenRegistry, repo: str, tag: str) -> str:
    """The tag's digest as the registry answers a token this test fetched itself."""
    verify = client_context(registry.tls)
    token = httpx.get(registry.service.realm, params={"service": SERVICE, "scope": f"repository:{repo}:pull"},
                      auth=(registry.username, registry.password), verify=verify).json()["token"]  # fmt: skip
    response = httpx.head(f"{registry.url}/v2/{repo}/manifests/{tag}", verify=verify,
                          headers={"Authorization": f"Bearer {token}",
                                   "Accept": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
    response.raise_for_status()
    return str(response.headers["docker-content-digest"])


def _asks_for(asked: dict[str, object], login: str, repo: str, actions: set[str]) -> bool:
    """One realm request for `repo` with these actions in any order (the challenge may say push,pull)."""
    scopes = asked.get("scope")
    if asked.get("login") != login or asked.get("service") != [SERVICE] or not isinstance(scopes, list):
        return False
    return any(scope.rpartition(":")[0] == f"repository:{repo}" and set(scope.rpartition(":")[2].split(",")) == actions
               for scope in scopes)  # fmt: skip


def test_bearer_token_auth_for_pull_and_push(
    admin_api: client.ApiClient, namespace: str, source: Reconcilers, registry: TokenRegistry,
    token_service: TokenService, tmp_path: Path,
) -> None:  # fmt: skip
    assert httpx.get(f"{registry.url}/v2/", verify=client_context(registry.tls)).headers["www-authenticate"] == (
        f'Bearer realm="{token_service.realm}",service="{SERVICE}"'
    ), "the registry really asks for a token"
    pushed = fluxwarden_push(registry, registry.oci_url("team/app") + ":v1", write_tree(tmp_path, {"a.yaml": "a: 1\n"}))
    assert pushed.returncode == 0, pushed.stderr
    login = f"robot:{registry.password}"
    assert any(_asks_for(asked, login, "team/app", {"pull", "push"}) for asked in token_service.asked), (
        "push asked the realm for push scope, with the login"
    )

    oci = Oci(admin_api, namespace, registry, SHARD_VALUE)
    oci.create("app", "team/app", ref={"tag": "v1"})
    before = len(token_service.asked)
    done = oci.ready("app", f"v1@{_digest(registry, 'team/app', 'v1')}")
    assert members(download(done)) == {"a.yaml": b"a: 1\n"}
    pulls = token_service.asked[before:]
    assert {"login": f"robot:{registry.password}", "scope": ["repository:team/app:pull"], "service": [SERVICE]} in pulls

    oci.secret("wrong", {".dockerconfigjson": registry.dockerconfigjson(password="wrong-Pa55").encode()},
               "kubernetes.io/dockerconfigjson")  # fmt: skip
    oci.create("wrong", "team/app", ref={"tag": "v1"}, secretRef={"name": "wrong"})
    msg = condition(oci.failed("wrong", PULL_FAILED))["message"]
    assert f"401 from the token service https://{HOST}:" in msg and "spec.secretRef" in msg
    assert "\n" not in msg and "wrong-Pa55" not in msg and registry.password not in msg
