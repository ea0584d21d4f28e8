"""HTTP(S) servers on loopback for integration tests: a threaded base with optional auth, and static files.

Real servers, not mocks (DESIGN.md, "Real components in tests"): the controllers' HTTP clients meet real
sockets, real status codes, real ``WWW-Authenticate`` challenges and, with ``tls=``, a real TLS handshake
(``tests.support.tls``). Every request is recorded with its headers and the client certificate it
presented. The git and Helm repository servers build on the base here.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hmac
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

HOST = "127.0.0.1"
REALM = "fluxwarden-test"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, so tests can assert what a client really sent."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    user: str | None = None  # the authenticated user; None when anonymous or refused
    refused: bool = False  # answered 401
    client_cert: str | None = None  # common name of the TLS client certificate presented, if any


def credentials_match(header: str | None, username: str, password: str) -> bool:
    """Check an ``Authorization: Basic`` header in constant time, so the test server is no timing oracle."""
    if not header:
        return False
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, separator, secret = decoded.partition(b":")
    user_ok = hmac.compare_digest(user, username.encode())
    secret_ok = hmac.compare_digest(secret, password.encode())
    return bool(separator) and user_ok and secret_ok


class _OwnedServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its owner (for credentials and the request log)."""

    daemon_threads = True  # server_close() still joins them: block_on_close stays True

    def __init__(self, handler: Callable[..., BaseHTTPRequestHandler], owner: LoopbackHttpServer) -> None:
        self.owner = owner
        super().__init__((HOST, 0), handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the request's own thread, so a slow client blocks no other.
        context = self.owner.tls_context
        if context is None:
            super().finish_request(request, client_address)
            return
        try:
            request.settimeout(AuthenticatingHandler.timeout)
            secure = context.wrap_socket(request, server_side=True)  # detaches ``request``
        except (ssl.SSLError, OSError) as exc:
            self.owner.tls_errors.append(str(exc))
            return
        try:
            super().finish_request(secure, client_address)
        finally:
            # close_notify before closing: a body that ends with the connection (git's) must end cleanly
            with contextlib.suppress(ssl.SSLError, OSError, ValueError):
                secure.unwrap()
            secure.close()

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall without DNS; loopback needs none.
        socketserver.TCPServer.server_bind(self)
        self.server_name = HOST
        self.server_port = self.server_address[1]


class AuthenticatingHandler(BaseHTTPRequestHandler):
    """Request handler base: basic auth against the owner's credentials, and a request log instead of stderr."""

    server: _OwnedServer
    timeout = 60  # a stalled client must not pin a handler thread (stop() joins them)
    remote_user: str | None = None

    def authenticate(self) -> bool:
        """True when the request may proceed; otherwise a 401 challenge has been sent."""
        owner = self.server.owner
        headers = {name.lower(): value for name, value in self.headers.items()}
        header = self.headers.get("Authorization")
        if owner.token is not None:
            allowed = hmac.compare_digest((header or "").encode(), f"Bearer {owner.token}".encode())
            user = "token" if allowed else None
        else:
            allowed = owner.username is None or credentials_match(header, owner.username, owner.password or "")
            user = owner.username if allowed else None
        self.remote_user = user
        peer = _peer_name(self.connection)
        owner.requests.append(RecordedRequest(self.command, self.path, headers, user, not allowed, peer))
        if not allowed:
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'{"Bearer" if owner.token else "Basic"} realm="{REALM}"')
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")  # the request body, if any, is left unread
            self.end_headers()
            self.close_connection = True
        return allowed

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: ``requests`` on the server records what tests need, stderr stays clean."""


def _peer_name(connection: socket.socket) -> str | None:
    if not isinstance(connection, ssl.SSLSocket):
        return None
    subject: Any = (connection.getpeercert() or {}).get("subject", ())
    names = {key: value for rdn in subject for key, value in rdn}
    return str(names["commonName"]) if "commonName" in names else None


class LoopbackHttpServer:
    """A threaded HTTP(S) server on 127.0.0.1 and a port the kernel picks, with start()/stop() and ``with``.

    Auth: basic (``username``/``password``) or bearer (``token``). ``tls``: serve HTTPS with this context.
    """

    handler_class: ClassVar[type[AuthenticatingHandler]] = AuthenticatingHandler

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if password is not None and username is None:
            raise ValueError("a password needs a username")
        self.username = username
        self.password = password
        self.token = token
        self.tls_context = tls
        self.tls_errors: list[str] = []  # failed handshakes, e.g. a client that did not trust the CA
        self.requests: list[RecordedRequest] = []
        self._httpd: _OwnedServer | None = None
        self._thread: threading.Thread | None = None

    def _handler_factory(self) -> Callable[..., BaseHTTPRequestHandler]:
        return self.handler_class

    def start(self) -> Self:
        """Bind and serve in a daemon thread; binding port 0 avoids a free-port race."""
        if self._httpd is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        httpd = _OwnedServer(self._handler_factory(), self)
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        thread.start()
        self._httpd, self._thread = httpd, thread
        return self

    def stop(self) -> None:
        """Stop serving, wait for in-flight handlers and close the socket; safe to call twice."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        if thread is not None:
            thread.join()
        httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._httpd.server_port

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:<port>``, without a trailing slash."""
        scheme = "https" if self.tls_context is not None else "http"
        return f"{scheme}://{HOST}:{self.port}"


class _StaticHandler(AuthenticatingHandler, SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.authenticate():
            super().do_GET()

    def do_HEAD(self) -> None:
        if self.authenticate():
            super().do_HEAD()


class StaticFileServer(LoopbackHttpServer):
    """Serves the files under ``root`` (GET/HEAD), optionally behind basic auth."""

    handler_class = _StaticHandler

    def __init__(
        self,
        root: Path,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(username=username, password=password, tls=tls)
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _handler_factory(self) -> Callable[..., BaseHTTPRequestHandler]:
        return functools.partial(self.handler_class, directory=str(self.root))
