"""A real Kubernetes control plane for tests: etcd plus kube-apiserver on loopback, RBAC on.

No controller-manager or scheduler runs (see DESIGN.md, "Real components in tests"). The flags are
the ones envtest uses. Credentials come from ``fluxwarden.certs``: a client CA that the apiserver
trusts, an admin client certificate in ``system:masters``, and a service-account signing key. The
apiserver makes its own self-signed serving certificate in ``--cert-dir``; the kubeconfig trusts it.

The apiserver can be stopped and started again on the same port, certificates and etcd data
(``restart_apiserver``), so tests can exercise what clients do while the API goes away.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fluxwarden.certs.authority import generate_ca, issue, write_pair

LOOPBACK = "127.0.0.1"
ADMIN_USER = "admin"
ADMIN_GROUP = "system:masters"
_LOG_TAIL_LINES = 40
# Long enough for a clean stop without open watches (about 1 s); with watches still open (controllers
# under test) the apiserver would linger for its shutdown timeout, so it is killed after this.
_STOP_GRACE_SECONDS = 3.0
_PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    """A component did not start or become ready; the message carries the tail of its log."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """Runs in the child before exec: if pytest is killed outright, the kernel kills this child too."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


class _Component:
    """One child process in its own process group, its output appended to a log file."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, argv: list[str]) -> None:
        if self._process is not None:
            raise ControlPlaneError(f"{self.name} is already started")
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start: {' '.join(argv)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() kills anything it forked too
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    def check_alive(self) -> None:
        """Raise with the log tail if the process has exited (it should never exit on its own)."""
        if self._process is not None and self._process.poll() is not None:
            code = self._process.returncode
            raise ControlPlaneError(f"{self.name} exited with code {code}; log tail:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after a grace period; idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_STOP_GRACE_SECONDS)
        # Kill the group even when the leader exited by itself, so that no descendant lingers.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def fail(self, reason: str) -> ControlPlaneError:
        return ControlPlaneError(f"{self.name} {reason}; log tail:\n{_tail(self.log_path)}")


class ControlPlane:
    """etcd + kube-apiserver in ``workdir`` (a fresh temp dir by default), on free loopback ports."""

    def __init__(self, bin_dir: Path, workdir: Path | None = None, *, ready_timeout: float = 60.0) -> None:
        self.bin_dir = bin_dir
        self._own_workdir = tempfile.TemporaryDirectory(prefix="fluxwarden-cp-") if workdir is None else None
        self.workdir = Path(self._own_workdir.name) if self._own_workdir else workdir
        assert self.workdir is not None
        self.ready_timeout = ready_timeout
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.port = free_port()
        self.pki_dir = self.workdir / "pki"
        self.cert_dir = self.workdir / "apiserver-certs"
        self.etcd_data_dir = self.workdir / "etcd-data"
        self.kubeconfig = self.workdir / "kubeconfig"
        self.etcd = _Component("etcd", self.workdir / "etcd.log")
        self.apiserver = _Component("kube-apiserver", self.workdir / "apiserver.log")
        self.startup_seconds: float | None = None  # etcd + apiserver to /readyz, measured by start()
        self.apiserver_start_seconds: float | None = None  # the last apiserver-only start

    # -- addresses and credentials ---------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def etcd_url(self) -> str:
        return f"http://{LOOPBACK}:{self.etcd_port}"

    @property
    def ca_file(self) -> Path:
        """The apiserver's self-signed serving certificate (with its CA), written on first start."""
        return self.cert_dir / "apiserver.crt"

    @property
    def admin_cert(self) -> Path:
        return self.pki_dir / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.pki_dir / "admin.key"

    def _write_credentials(self) -> None:
        """Client CA, admin client cert, service-account key pair; once per work dir."""
        if self.admin_cert.exists():
            return
        ca = generate_ca("fluxwarden-e2e-client-ca")
        write_pair(ca, self.pki_dir / "client-ca.crt", self.pki_dir / "client-ca.key")
        admin = issue(ca, ADMIN_USER, organizations=(ADMIN_GROUP,), client=True)
        write_pair(admin, self.admin_cert, self.admin_key)
        sa_key = ec.generate_private_key(ec.SECP256R1())
        (self.pki_dir / "sa.key").write_bytes(
            sa_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (self.pki_dir / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def _write_kubeconfig(self) -> None:
        cluster, context = "fluxwarden-e2e", f"{ADMIN_USER}@fluxwarden-e2e"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster,
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [
                {
                    "name": ADMIN_USER,
                    "user": {"client-certificate": str(self.admin_cert), "client-key": str(self.admin_key)},
                }
            ],
            "contexts": [{"name": context, "context": {"cluster": cluster, "user": ADMIN_USER}}],
            "current-context": context,
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start etcd and the apiserver and wait until both are ready; on failure leave nothing running."""
        began = time.monotonic()
        try:
            self._write_credentials()
            self._write_kubeconfig()
            self.start_etcd()
            self.start_apiserver()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop both processes; the work dir (etcd data, certificates) stays for a later start()."""
        self.stop_apiserver()
        self.etcd.stop()

    def close(self) -> None:
        """Stop everything and remove the work dir if this object made it."""
        self.stop()
        if self._own_workdir is not None:
            self._own_workdir.cleanup()
            self._own_workdir = None

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start_etcd(self) -> None:
        peer = f"http://{LOOPBACK}:{self.etcd_peer_port}"
        self.etcd.start(
            [
                str(self.bin_dir / "etcd"),
                "--name=default",
                f"--data-dir={self.etcd_data_dir}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ]
        )
        self._wait(self.etcd, self._etcd_healthy)

    def start_apiserver(self) -> None:
        began = time.monotonic()
        self.apiserver.start(
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                f"--cert-dir={self.cert_dir}",
                f"--secure-port={self.port}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                f"--service-account-issuer={self.server}",
                f"--service-account-key-file={self.pki_dir / 'sa.pub'}",
                f"--service-account-signing-key-file={self.pki_dir / 'sa.key'}",
                f"--client-ca-file={self.pki_dir / 'client-ca.crt'}",
            ]
        )
        self._wait(self.apiserver, self._apiserver_ready)
        self.apiserver_start_seconds = time.monotonic() - began

    def stop_apiserver(self) -> None:
        self.apiserver.stop()

    def restart_apiserver(self) -> None:
        """Stop the apiserver process and start a new one on the same port, certificates and etcd."""
        self.stop_apiserver()
        self.start_apiserver()

    # -- readiness -------------------------------------------------------------------------------

    def _wait(self, component: _Component, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            component.check_alive()
            if ready():
                return
            if time.monotonic() > deadline:
                raise component.fail(f"not ready after {self.ready_timeout:.0f}s")
            time.sleep(0.1)

    def _etcd_healthy(self) -> bool:
        connection = http.client.HTTPConnection(LOOPBACK, self.etcd_port, timeout=2)
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            return response.status == 200 and b'"health":"true"' in response.read()
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def _apiserver_ready(self) -> bool:
        if not self.ca_file.exists():
            return False  # the apiserver writes its self-signed certificate early in its start
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.admin_cert), str(self.admin_key))
        connection = http.client.HTTPSConnection(LOOPBACK, self.port, timeout=2, context=context)
        try:
            connection.request("GET", "/readyz")
            response = connection.getresponse()
            response.read()
            return response.status == 200
        except (OSError, http.client.HTTPException):  # refused while starting, or a half-written cert
            return False
        finally:
            connection.close()
