"""A real server program on a free loopback port: started in its own process group, awaited, stopped.

The storage servers of issue 12 (versitygw, Azurite, the distribution registry) are separate programs
that bind a port they are told. ``ServerProcess`` picks a free port, starts the program, polls until it
answers over HTTP(S), and retries on another port when another process wins the race for it. A server
that exits or never answers raises ``ServerStartError`` with the tail of its log: the test that needs
it fails, it is never skipped. stop() ends the whole process group (node and Go servers may fork).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from tests.support.tls import PrivateCA

HOST = "127.0.0.1"
PORT_RACE_MARKERS = ("address already in use", "eaddrinuse")


class ServerStartError(RuntimeError):
    """The server exited or did not answer in time; the message carries its log tail."""


def free_port() -> int:
    """A port free right now; the server binds it itself, so ServerProcess retries if it is taken meanwhile."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class TlsFiles:
    """The serving pair and the CA of a PrivateCA as files, for servers and clients that read paths."""

    cert: Path
    key: Path
    ca: Path


def write_tls_files(ca: PrivateCA, directory: Path) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "tls.crt", directory / "tls.key", directory / "ca.crt")
    files.cert.write_bytes(ca.server.cert_pem)
    files.key.write_bytes(ca.server.key_pem)
    files.key.chmod(0o600)
    files.ca.write_bytes(ca.ca_pem)
    return files


def client_context(ca: PrivateCA | None) -> ssl.SSLContext | bool:
    """What httpx should verify a server with: ``ca`` when it serves TLS (plain HTTP needs nothing)."""
    if ca is None:
        return True
    context = ssl.create_default_context(cadata=ca.ca_pem.decode())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def answers_http(url: str, verify: ssl.SSLContext | bool) -> bool:
    """Any HTTP response at all (401 and 403 included) means the server is up."""
    try:
        httpx.get(url, verify=verify, timeout=2)
    except httpx.HTTPError:
        return False
    return True


class ServerProcess:
    """One run of ``command(port)``; its stdout and stderr go to ``log_path``."""

    def __init__(
        self,
        name: str,
        command: Callable[[int], Sequence[str]],
        ready: Callable[[int], bool],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.port = 0
        self.log_path = log_path
        self._command = command
        self._ready = ready
        self._env = {**os.environ, **(env or {})}
        self._cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60, attempts: int = 3) -> None:
        for attempt in range(attempts):
            self.port = free_port()
            try:
                self._launch(timeout)
                return
            except _PortLost:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def stop(self, grace: float = 10) -> None:
        process, self._process = self._process, None
        if process is not None:
            _end_group(process, grace)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _launch(self, timeout: float) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        command = list(self._command(self.port))
        with self.log_path.open("ab") as log:
            try:
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self._env, cwd=self._cwd,
                    start_new_session=True,
                )  # fmt: skip
            except OSError as error:
                raise ServerStartError(f"{self.name}: cannot run {command[0]}: {error}") from error
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = self.log_path.read_bytes()[offset:].decode(errors="replace")
                if any(marker in output.lower() for marker in PORT_RACE_MARKERS):
                    raise _PortLost(output)
                raise ServerStartError(f"{self.name} exited {process.returncode} on start:\n{output[-4000:]}")
            if self._ready(self.port):
                self._process = process
                return
            time.sleep(0.1)
        _end_group(process, 5)
        raise ServerStartError(f"{self.name} did not answer on {HOST}:{self.port} in {timeout}s:\n{self.log_tail()}")


class _PortLost(ServerStartError):
    """The server lost the race for the port free_port() chose."""


def _end_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group, SIGKILL it if the leader outlives ``grace``; reap the leader."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers of the group, and a leader that ignored SIGTERM
    process.wait()


class ManagedServer:
    """What every storage-server fixture shares: start/stop around a :class:`ServerProcess`, as a
    context manager that also removes its state directory. Subclasses set ``_process`` and ``state_dir``."""

    _process: ServerProcess
    state_dir: Path

    def start(self, timeout: float = 60) -> Self:
        self._process.start(timeout)
        return self

    def stop(self) -> None:
        self._process.stop()

    @property
    def running(self) -> bool:
        return self._process.running

    @property
    def pid(self) -> int | None:
        """The server's pid (the leader of its own process group) while it runs."""
        return self._process.pid

    def log_tail(self, lines: int = 40) -> str:
        return self._process.log_tail(lines)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)
