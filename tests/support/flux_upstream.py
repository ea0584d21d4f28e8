"""Upstream Flux's own binaries beside fluxwarden: the real ``flux`` CLI and Flux's controllers.

``tests/flux/controllers.sh`` builds them from the Go modules of the pinned release (Flux 2.9.5) into a
cache; ``make test`` passes that directory in ``FLUXWARDEN_FLUX_CONTROLLERS``. Without it a fixture
builds only the binary it needs. A build or start failure is an error, never a skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Self

from tests.support import processes
from tests.support.wait import until

ENV_VAR = "FLUXWARDEN_FLUX_CONTROLLERS"
SCRIPT = Path(__file__).resolve().parents[1] / "flux" / "controllers.sh"
# Flux's multi-tenancy lockdown (its docs: "Multi-tenancy lockdown"), as Azure's microsoft.flux runs it.
LOCKDOWN = ("--no-cross-namespace-refs=true", "--default-service-account=flux-applier")


def upstream_binary(name: str) -> Path:
    """The path of Flux's ``name`` (flux, kustomize-controller, helm-controller, source-controller)."""
    configured = os.environ.get(ENV_VAR)
    if configured and os.access(Path(configured) / name, os.X_OK):
        return Path(configured) / name
    # stderr is left alone: a cold build takes minutes and its progress should be visible.
    result = subprocess.run([str(SCRIPT), name], stdout=subprocess.PIPE, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{SCRIPT} {name} failed (exit {result.returncode}); run it to see why")
    return Path(lines[-1]) / name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def flux_version() -> str:
    """The Flux release tests/flux/go.mod pins, e.g. ``v2.9.5``."""
    for line in (SCRIPT.parent / "go.mod").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "github.com/fluxcd/flux2/v2":
            return fields[1]
    raise RuntimeError(f"github.com/fluxcd/flux2/v2 is not required in {SCRIPT.parent / 'go.mod'}")


class FluxController:
    """One upstream Flux controller in its own process, on the test's control plane.

    ``args`` are added to the lockdown flags, no leader election and loopback metrics/health ports;
    pass ``--watch-label-selector=...`` or ``--watch-all-namespaces=false`` (with ``namespace``) to
    keep it off fluxwarden's objects. ``start()`` waits for ``/readyz``.
    """

    def __init__(
        self,
        name: str,
        kubeconfig: Path,
        work: Path,
        args: tuple[str, ...] = (),
        namespace: str | None = None,
        lockdown: bool = True,
    ) -> None:
        self.name = name
        self.binary = upstream_binary(name)
        self.work = work
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.log_path = work / f"{name}.log"
        self.argv = [
            str(self.binary),
            *(LOCKDOWN if lockdown else ()),
            "--enable-leader-election=false",
            f"--metrics-addr=127.0.0.1:{self.metrics_port}",
            f"--health-addr=127.0.0.1:{self.health_port}",
            "--log-level=debug",
            *args,
        ]
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "TMPDIR": str(work)}
        if namespace is not None:
            self.env["RUNTIME_NAMESPACE"] = namespace  # where --watch-all-namespaces=false watches
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Self:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        until(self._ready, bool, timeout=timeout, what=f"Flux's {self.name} to be ready (log: {self.log_path})")
        return self

    def _ready(self) -> bool:
        self.assert_running()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def assert_running(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise AssertionError(f"Flux's {self.name} exited with {self.process.returncode}:\n{tail}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            processes.end(self.process, grace=20)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FluxCli:
    """The real ``flux`` CLI of the pinned release, pointed at the test's control plane."""

    def __init__(self, kubeconfig: Path) -> None:
        self.binary = upstream_binary("flux")
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``flux <args>``; with ``check``, a non-zero exit fails with flux's own output."""
        done = subprocess.run(
            [str(self.binary), *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"flux {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done
