"""Plain HTTP servers on loopback for integration tests: a threaded base with optional basic auth, and static files.

Real servers, not mocks (DESIGN.md, "Real components in tests"): the controllers' HTTP clients meet real
sockets, real status codes and real ``WWW-Authenticate`` challenges. The git and Helm repository servers
build on the base here.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import socketserver
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
        allowed = owner.username is None or credentials_match(
            self.headers.get("Authorization"), owner.username, owner.password or ""
        )
        self.remote_user = owner.username if allowed else None
        owner.requests.append(RecordedRequest(self.command, self.path, headers, self.remote_user, not allowed))
        if not allowed:
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Basic realm="{REALM}"')
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")  # the request body, if any, is left unread
            self.end_headers()
            self.close_connection = True
        return allowed

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: ``requests`` on the server records what tests need, stderr stays clean."""


class LoopbackHttpServer:
    """A threaded HTTP server on 127.0.0.1 and a port the kernel picks, with start()/stop() and ``with``."""

    handler_class: ClassVar[type[AuthenticatingHandler]] = AuthenticatingHandler

    def __init__(self, *, username: str | None = None, password: str | None = None) -> None:
        if password is not None and username is None:
            raise ValueError("a password needs a username")
        self.username = username
        self.password = password
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
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        return f"http://{HOST}:{self.port}"


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

    def __init__(self, root: Path, *, username: str | None = None, password: str | None = None) -> None:
        super().__init__(username=username, password=password)
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _handler_factory(self) -> Callable[..., BaseHTTPRequestHandler]:
        return functools.partial(self.handler_class, directory=str(self.root))
