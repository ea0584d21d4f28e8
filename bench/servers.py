"""The two servers under test as subprocesses pinned to one core: ``fluxwarden serve`` and the bare endpoint.

Both are started the same way (``taskset``, same certificate, stdout and stderr to a log file) and
checked ready the same way, so nothing but the application differs between them.
"""

from __future__ import annotations

import http.client
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fluxwarden.certs.files import ServingFiles
from tests.support.webhook import free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parents[1]  # so ``-m bench.…`` and ``-m fluxwarden.…`` import from here


@dataclass
class ServerProcess:
    """One server command on loopback, pinned to a core; ``start()`` returns once ``/readyz`` answers 200."""

    name: str
    command: list[str]
    port: int
    certs: ServingFiles
    log_file: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certs.ca_cert))

    def start(self, core: int, timeout: float = 30) -> ServerProcess:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                ["taskset", "-c", str(core), *self.command],
                stdout=log,
                stderr=log,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}; see {self.log_file}")
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready in {timeout}s; see {self.log_file}")

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """One request on a fresh connection: for readiness and for checking answers, not for load."""
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ssl_context(), timeout=10)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def cpu_seconds(self) -> float:
        """User plus system CPU of the process (all its threads) so far."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def send_signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (uvicorn drains), then SIGKILL if it has not exited within ``timeout``."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def fluxwarden_command(port: int, cert_dir: Path, profile_to: Path | None = None) -> list[str]:
    """``fluxwarden serve`` as ``tests.support.webhook.WebhookProcess`` runs it, metrics port on.

    With ``profile_to``, the same under :mod:`bench.profiled_serve` (cProfile between SIGUSR1 and SIGUSR2).
    """
    main: Sequence[str] = (
        ("bench.profiled_serve", "--profile-out", str(profile_to)) if profile_to else ("fluxwarden.cli.main",)
    )
    return [
        sys.executable, "-m", *main, "serve",
        "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(free_port()), "--cert-dir", str(cert_dir),
    ]  # fmt: skip


def fluxwarden(certs: ServingFiles, log_file: Path, profile_to: Path | None = None) -> ServerProcess:
    port = free_port()
    return ServerProcess("fluxwarden", fluxwarden_command(port, certs.directory, profile_to), port, certs, log_file)


def bare(certs: ServingFiles, log_file: Path) -> ServerProcess:
    port = free_port()
    command = [
        sys.executable, "-m", "bench.bare_endpoint", "--host", "127.0.0.1", "--port", str(port),
        "--cert-file", str(certs.tls_cert), "--key-file", str(certs.tls_key),
    ]  # fmt: skip
    return ServerProcess("bare", command, port, certs, log_file)
