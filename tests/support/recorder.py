"""A recording HTTP(S) endpoint on loopback: what a notification provider really sent, and what it got back.

Real sockets and a real TLS handshake (``tests.support.tls.PrivateCA``, TLS 1.2+, an optional client
certificate request for mTLS checks), never a mock of the client (DESIGN.md, "Real components in tests").
Every request is recorded whole (method, path, query, headers, body bytes, the client certificate's
subject, when it arrived) before it is answered. Answers are configurable: a default status, a scripted
run of failures (``fail(3, 500)``) to exercise retries, a delay or a gate that holds every answer back
(a slow provider), or a ``responder`` callable for APIs that must answer with a body (GitHub's statuses).

    with Recorder(tls=PrivateCA(), client_certs=True) as recorder:
        ... point a Provider at recorder.url + "/hook" ...
        (sent,) = recorder.wait_for(1)
        assert sent.json()["involvedObject"]["name"] == "app"
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.http_files import AuthenticatingHandler, LoopbackHttpServer
from tests.support.tls import PrivateCA

MAX_BODY = 16 << 20  # larger bodies are refused (413): a runaway client must not fill the test's memory


@dataclass(frozen=True)
class Received:
    """One request as the endpoint saw it."""

    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    client_cert: str | None  # common name of the client certificate presented, if any
    client_subject: tuple[tuple[str, str], ...]  # its whole subject, e.g. (("commonName", "x"),)
    received_at: float  # time.time() when the request was read, before any delay
    monotonic: float  # time.monotonic() at the same moment, for latencies
    status: int  # what the endpoint answered
    target: str = ""  # the raw request target, path and query as sent

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode()

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass(frozen=True)
class Reply:
    """One answer: status, body, headers, and how long to wait before sending it."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Responder = Callable[[Received], Reply | None]  # None: fall back to the scripted or default reply


class _RecordingHandler(AuthenticatingHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real provider: pooled clients reuse connections
    timeout = 30
    server: Any

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()
        self.server.owner._track(self.connection, add=False)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        owner: Recorder = self.server.owner
        owner._busy(self.connection, busy=True)
        try:
            self._serve_one(owner)
        finally:
            owner._busy(self.connection, busy=False)

    def _serve_one(self, owner: Recorder) -> None:
        body = self._read_body()
        if body is None:
            self._answer(Reply(413, b"body too large\n"))
            return
        split = urlsplit(self.path)
        subject = _peer_subject(self.connection)
        names = dict(subject)
        now, mono = time.time(), time.monotonic()
        headers = {name.lower(): value for name, value in self.headers.items()}
        draft = Received(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=headers,
            body=body,
            client_cert=names.get("commonName"),
            client_subject=subject,
            received_at=now,
            monotonic=mono,
            status=0,
            target=self.path,
        )
        reply = owner._reply_for(draft)
        owner._record(dataclasses.replace(draft, status=reply.status))
        owner._pause(reply.delay)
        self._answer(reply)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes | None:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                self.close_connection = True
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _answer(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if not any(name.lower() == "content-type" for name in reply.headers) and reply.body:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD" and reply.body:
            self.wfile.write(reply.body)


def _peer_subject(connection: socket.socket) -> tuple[tuple[str, str], ...]:
    if not isinstance(connection, ssl.SSLSocket):
        return ()
    subject: Any = (connection.getpeercert() or {}).get("subject", ())
    return tuple((str(key), str(value)) for rdn in subject for key, value in rdn)


class Recorder(LoopbackHttpServer):
    """A threaded HTTP(S) endpoint on 127.0.0.1 that records every request and answers as configured.

    ``tls``: serve HTTPS with this CA's certificate for 127.0.0.1 (clients trust ``tls.ca_pem``);
    ``client_certs``: ask for a client certificate of that CA (optional, so its absence is recorded too).
    ``status``/``body``/``delay``: the default answer. Thread-safe: handlers run in their own threads.
    """

    handler_class = _RecordingHandler

    def __init__(
        self,
        *,
        tls: PrivateCA | None = None,
        client_certs: bool = False,
        status: int = 200,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        responder: Responder | None = None,
    ) -> None:
        super().__init__(tls=tls.server_context(client_certs=client_certs) if tls is not None else None)
        self.ca = tls
        self.default = Reply(status, body, dict(headers or {}), delay)
        self.responder = responder
        self._lock = threading.Condition()
        self._received: list[Received] = []
        self._script: deque[Reply] = deque()
        self._open = threading.Event()
        self._open.set()
        self._connections: set[socket.socket] = set()
        self._answering: set[socket.socket] = set()  # connections with a request being answered
        self._stopping = threading.Event()

    # -- configuration, safe to change while serving --------------------------------------------------

    def answer(self, status: int = 200, body: bytes = b"", *, delay: float = 0.0, **headers: str) -> None:
        """Set the default answer for requests from now on."""
        with self._lock:
            self.default = Reply(status, body, headers, delay)

    def fail(self, times: int, status: int = 500, body: bytes = b"failing on purpose\n") -> None:
        """Answer the next ``times`` requests with ``status``, then the default again (retries recover)."""
        self.script(*([Reply(status, body)] * times))

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order, then the default."""
        with self._lock:
            self._script.extend(replies)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Within the block, every answer waits (requests are still read and recorded): a stalled provider."""
        self._open.clear()
        try:
            yield
        finally:
            self._open.set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    # -- what was received -------------------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        """A snapshot of every request so far, in arrival order."""
        with self._lock:
            return list(self._received)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._received)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def wait_for(
        self, count: int = 1, timeout: float = 10.0, *, where: Callable[[Received], bool] | None = None
    ) -> list[Received]:
        """The first ``count`` requests (those ``where`` accepts, if given); fails naming what did arrive."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                matched = [r for r in self._received if where is None or where(r)]
                if len(matched) >= count:
                    return matched[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [f"{r.method} {r.target} -> {r.status}" for r in self._received[-10:]]
                    raise AssertionError(
                        f"{type(self).__name__} at {self.url}: {len(matched)} of {count} expected requests "
                        f"after {timeout}s; last received: {seen}"
                    )
                self._lock.wait(left)

    def bodies(self) -> list[Any]:
        """The JSON body of every request so far."""
        return [r.json() for r in self.received]

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> Recorder:
        self._stopping.clear()
        super().start()
        return self

    def stop(self) -> None:
        """Release held answers, stop serving, drop idle keep-alive connections, join the handlers."""
        self._stopping.set()
        self._open.set()
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        if thread is not None:
            thread.join()
        with self._lock:  # released answers go out first; only idle keep-alive connections are cut
            deadline = time.monotonic() + 10
            while self._answering and time.monotonic() < deadline:
                self._lock.wait(0.05)
            connections = list(self._connections - self._answering)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        httpd.server_close()

    def __enter__(self) -> Recorder:
        return self.start()

    @property
    def ca_pem(self) -> bytes:
        if self.ca is None:
            raise RuntimeError("this Recorder serves plain HTTP; pass tls=PrivateCA() for HTTPS")
        return self.ca.ca_pem

    # -- for the handler ---------------------------------------------------------------------------------

    def _reply_for(self, draft: Received) -> Reply:
        if self.responder is not None and (custom := self.responder(draft)) is not None:
            return custom
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def _record(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)
            self._lock.notify_all()

    def _pause(self, delay: float) -> None:
        self._open.wait()
        if delay > 0:
            self._stopping.wait(delay)

    def _busy(self, connection: socket.socket, *, busy: bool) -> None:
        with self._lock:
            if busy:
                self._answering.add(connection)
            else:
                self._answering.discard(connection)
                self._lock.notify_all()

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)
