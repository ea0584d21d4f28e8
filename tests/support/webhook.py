"""A real ``fluxwarden serve`` process on loopback, for integration and end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# A request the server failed leaves one of these in its JSON log: uvicorn's record of an exception
# that escaped the app (its msg ends in a newline, so it is matched unquoted) and the app's own record
# of a bug met while judging (answered 500).
FAILURE_MARKERS = ("Exception in ASGI application", '"review failed"')


def failures_logged(log: str) -> int:
    """How many requests the server's log says it failed."""
    return sum(log.count(marker) for marker in FAILURE_MARKERS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class WebhookProcess:
    """``fluxwarden serve`` in a subprocess; its JSON log goes to ``log_file``."""

    cert_dir: Path
    log_file: Path
    args: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def ca_file(self) -> Path:
        return self.cert_dir / "ca.crt"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=10, **kwargs)  # type: ignore[arg-type]

    def start(self, timeout: float = 20) -> WebhookProcess:
        command = [
            sys.executable, "-m", "fluxwarden.cli.main", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--metrics-port", str(self.metrics_port),
            "--cert-dir", str(self.cert_dir), *self.args,
        ]  # fmt: skip
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fluxwarden serve exited {self.process.returncode}:\n{self.log_tail()}")
            try:
                with self.client() as client:
                    if client.get("/readyz").status_code == 200:
                        return self
            except (httpx.TransportError, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"fluxwarden serve not ready in {timeout}s:\n{self.log_tail()}")

    def failures_logged(self) -> int:
        """How many requests this server's log says it failed (see :data:`FAILURE_MARKERS`)."""
        return failures_logged(self.log_file.read_text(errors="replace"))

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30) -> int:
        if self.process is None:
            return 0
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
