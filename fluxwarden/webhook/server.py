"""Run the webhook: uvicorn over TLS, certificate reloading, and Prometheus on a plain-HTTP port.

SIGTERM is uvicorn's graceful shutdown: stop accepting, let in-flight requests finish, close idle
keep-alive connections, then stop the metrics server. A closing TLS connection is cut
``CLOSE_GRACE`` seconds after its close_notify, so a client that never answers it (one that does
not read its idle connection, or a peer that is gone) cannot hold the shutdown for ``shutdown_grace``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from prometheus_client import start_http_server

from fluxwarden.logs import log_fields
from fluxwarden.webhook.app import WebhookConfig, create_app
from fluxwarden.webhook.metrics import WebhookMetrics
from fluxwarden.webhook.tls import CertificateReloader, harden

logger = logging.getLogger("fluxwarden.webhook")

CLOSE_GRACE = 0.5  # seconds a closing connection may wait for the client's close_notify at shutdown
_REAP_INTERVAL = 0.05


@dataclass(frozen=True)
class ServeOptions:
    """Where and how the webhook listens."""

    cert_file: Path
    key_file: Path
    webhook: WebhookConfig
    host: str = "0.0.0.0"
    port: int = 8443
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 8080  # 0 turns the metrics listener off
    reload_interval: float = 5.0
    shutdown_grace: float = 20.0
    keep_alive: float = 30.0  # longer than the API server's idle connection reuse


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, except that SIGTERM/SIGINT end ``serve()`` normally instead of re-raising,
    and that connections it closes while draining do not outlive ``CLOSE_GRACE``.

    uvicorn drains (stop accepting, finish in-flight requests, close idle keep-alive connections)
    and then re-raises the signal, which would skip our own clean-up; here the process exits 0.
    Closing a TLS connection sends close_notify and then waits for the client's (asyncio's
    ``ssl_shutdown_timeout``, 30 s); uvicorn waits for every connection to be gone, so one idle
    client that does not answer kept the process up for the whole ``timeout_graceful_shutdown``
    (Go's client, the API server's, answers at once; Python's http.client does not).
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        reaper = asyncio.create_task(self._cut_closing_connections())
        try:
            await super().shutdown(sockets)
        finally:
            reaper.cancel()

    async def _cut_closing_connections(self) -> None:
        """Abort each connection uvicorn has closed, once it has had ``CLOSE_GRACE`` to say goodbye."""
        loop = asyncio.get_running_loop()
        closing_since: dict[int, float] = {}
        while True:
            now = loop.time()
            for connection in list(self.server_state.connections):
                transport: asyncio.Transport | None = getattr(connection, "transport", None)
                if transport is None or not transport.is_closing():
                    continue  # idle ones are closed at once; busy ones once their response is sent
                if now - closing_since.setdefault(id(connection), now) >= CLOSE_GRACE:
                    transport.abort()
            await asyncio.sleep(_REAP_INTERVAL)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


class WebhookServer:
    """One webhook process: build with options, then ``await serve()`` (or ``run()``)."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.metrics = WebhookMetrics()
        self.reloader: CertificateReloader | None = None
        self.app = create_app(options.webhook, self.metrics, ready=self._ready)
        self.server: uvicorn.Server | None = None

    def _ready(self) -> bool:
        return self.reloader is not None and self.reloader.loaded

    def _uvicorn_config(self) -> uvicorn.Config:
        config = uvicorn.Config(
            self.app,
            host=self.options.host,
            port=self.options.port,
            ssl_certfile=str(self.options.cert_file),
            ssl_keyfile=str(self.options.key_file),
            access_log=False,
            log_config=None,
            timeout_keep_alive=int(self.options.keep_alive),
            timeout_graceful_shutdown=int(self.options.shutdown_grace),
            server_header=False,
        )
        config.load()
        assert config.ssl is not None
        harden(config.ssl)
        return config

    async def serve(self) -> None:
        config = self._uvicorn_config()
        assert config.ssl is not None
        self.reloader = CertificateReloader(config.ssl, self.options.cert_file, self.options.key_file)
        metrics_server = None
        if self.options.metrics_port:
            metrics_server, _ = start_http_server(
                self.options.metrics_port, self.options.metrics_host, registry=self.metrics.registry
            )
        self.server = _DrainingServer(config)
        reload_task = asyncio.create_task(self.reloader.run(self.options.reload_interval))
        log_fields(
            logger,
            "serving",
            address=f"https://{self.options.host}:{self.options.port}",
            metrics=self.options.metrics_port,
            enforce=self.options.webhook.settings.enforce,
            mode=self.options.webhook.settings.mode,
        )
        try:
            await self.server.serve()
        finally:
            reload_task.cancel()
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
            log_fields(logger, "stopped")

    def run(self) -> None:
        asyncio.run(self.serve())
