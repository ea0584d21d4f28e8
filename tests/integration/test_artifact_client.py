"""The shared artifact client against real HTTP(S) servers on loopback: where credentials go, size
limits, digests computed while streaming, and the message for an untrusted certificate."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import ssl
from pathlib import Path

import pytest

from fluxwarden.controllers.artifacts import http
from fluxwarden.controllers.artifacts.errors import DownloadError
from fluxwarden.controllers.artifacts.http import HttpCredentials, download, same_origin
from tests.support.http_files import AuthenticatingHandler, LoopbackHttpServer, StaticFileServer
from tests.support.tls import PrivateCA

USER, PASSWORD = "flux", "s3cret"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
CREDENTIALS = HttpCredentials(username=USER, password=PASSWORD)


class _Redirect(AuthenticatingHandler):
    def do_GET(self) -> None:
        self.authenticate()
        owner = self.server.owner
        assert isinstance(owner, RedirectServer)
        self.send_response(302)
        self.send_header("Location", owner.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()


class RedirectServer(LoopbackHttpServer):
    """Answers every GET with a redirect to the same path on ``target``, recording what it got."""

    handler_class = _Redirect

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "files"
    root.mkdir()
    (root / "chart.tgz").write_bytes(os.urandom(200_000))
    return root


def test_origins_compare_scheme_host_and_port() -> None:
    assert same_origin("https://Charts.example.com/a", "https://charts.example.com:443/b")
    assert not same_origin("https://charts.example.com/a", "http://charts.example.com/a")
    assert not same_origin("https://charts.example.com/a", "https://charts.example.com:8443/a")
    assert not same_origin("https://charts.example.com/a", "https://cdn.example.com/a")


def test_credentials_go_only_to_their_origin_unless_passed(files: Path) -> None:
    with StaticFileServer(files) as repository, StaticFileServer(files) as elsewhere:
        out = io.BytesIO()
        download(f"{repository.url}/chart.tgz", out, timeout=10, max_size=1 << 20, credentials=CREDENTIALS,
                 origin=f"{repository.url}/charts/")  # fmt: skip
        assert repository.requests[-1].headers.get("authorization") == BASIC
        download(f"{elsewhere.url}/chart.tgz", io.BytesIO(), timeout=10, max_size=1 << 20, credentials=CREDENTIALS,
                 origin=repository.url)  # fmt: skip
        assert "authorization" not in elsewhere.requests[-1].headers
        download(f"{elsewhere.url}/chart.tgz", io.BytesIO(), timeout=10, max_size=1 << 20, credentials=CREDENTIALS,
                 origin=repository.url, pass_credentials=True)  # fmt: skip
        assert elsewhere.requests[-1].headers.get("authorization") == BASIC
        assert out.getvalue() == (files / "chart.tgz").read_bytes()


def test_a_redirect_elsewhere_loses_the_credentials(files: Path) -> None:
    with StaticFileServer(files) as target, RedirectServer(target.url) as redirector:
        got = download(f"{redirector.url}/chart.tgz", io.BytesIO(), timeout=10, max_size=1 << 20,
                       credentials=CREDENTIALS)  # fmt: skip
        assert redirector.requests[-1].headers.get("authorization") == BASIC
        assert "authorization" not in target.requests[-1].headers
        assert got.digest == "sha256:" + hashlib.sha256((files / "chart.tgz").read_bytes()).hexdigest()


def test_size_limit_stops_the_download(files: Path, tmp_path: Path) -> None:
    with StaticFileServer(files) as server, (tmp_path / "out").open("wb") as out:
        with pytest.raises(DownloadError) as caught:
            download(f"{server.url}/chart.tgz", out, timeout=10, max_size=65_536)
        assert "is larger than the 65536 byte limit" in caught.value.message
        out.flush()
        assert (tmp_path / "out").stat().st_size <= 65_536


def test_digest_and_size_are_computed_while_streaming(files: Path, tmp_path: Path) -> None:
    data = (files / "chart.tgz").read_bytes()
    with StaticFileServer(files) as server, (tmp_path / "out").open("wb") as out:
        got = download(f"{server.url}/chart.tgz", out, timeout=10, max_size=len(data))
    assert (got.size, got.digest) == (len(data), "sha256:" + hashlib.sha256(data).hexdigest())
    assert (tmp_path / "out").read_bytes() == data


def test_untrusted_certificate_names_the_origin_and_the_fix(files: Path) -> None:
    authority, stranger = PrivateCA(), PrivateCA()
    with StaticFileServer(files, tls=authority.server_context()) as server:
        with pytest.raises(DownloadError) as caught:
            download(f"{server.url}/chart.tgz", io.BytesIO(), timeout=10, max_size=1 << 20,
                     credentials=HttpCredentials(ca_pem=stranger.ca_pem))  # fmt: skip
        assert caught.value.untrusted
        message = caught.value.message
        assert message.startswith(f"TLS certificate of https://127.0.0.1:{server.port} is not trusted (")
        assert "ca.crt" in message and "spec.certSecretRef" in message
        got = download(f"{server.url}/chart.tgz", io.BytesIO(), timeout=10, max_size=1 << 20,
                       credentials=HttpCredentials(ca_pem=authority.ca_pem))  # fmt: skip
        assert got.size == (files / "chart.tgz").stat().st_size


def test_client_speaks_tls_1_2_or_later_only(files: Path, tmp_path: Path) -> None:
    authority = PrivateCA()
    server_side = authority.server_context()
    server_side.maximum_version = ssl.TLSVersion.TLSv1_2  # the oldest a client may still accept
    with StaticFileServer(files, tls=server_side) as server:
        download(f"{server.url}/chart.tgz", io.BytesIO(), timeout=10, max_size=1 << 20,
                 credentials=HttpCredentials(ca_pem=authority.ca_pem))  # fmt: skip
    with_ca = http._context(HttpCredentials(ca_pem=authority.ca_pem), False, tmp_path)
    for context in (http._system_trust(), with_ca):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
