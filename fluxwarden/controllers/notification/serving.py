"""Serve one ASGI app on uvicorn in a daemon thread with its own event loop (event and receiver servers).

The socket is bound in ``start()``, so a port in use fails the process at once instead of a thread
dying quietly. uvicorn installs no signal handlers off the main thread: the manager's SIGTERM
handling calls ``stop()``, which drains in-flight requests for up to ``grace`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import uvicorn
from starlette.types import ASGIApp

logger = logging.getLogger("fluxwarden.controllers.notification")

MAX_CONNECTIONS = 1024
MAX_HEADER_BYTES = 256 << 10  # Flux's servers' MaxHeaderBytes


class ThreadedServer:
    def __init__(self, app: ASGIApp, host: str, port: int, name: str, grace: float = 5.0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self.grace = grace
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(self.host)
        host = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"{self.name}: cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        sock.listen(1024)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            access_log=False,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=int(self.grace),
            server_header=False,
            date_header=False,
            limit_concurrency=MAX_CONNECTIONS,  # beyond, uvicorn answers 503 rather than hold more bodies
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        )
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), name=self.name, daemon=True
        )
        self._thread.start()
        logger.info("%s listening on %s:%d", self.name, self.host, self.port)

    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(self.grace + 2)
            self._thread = None
