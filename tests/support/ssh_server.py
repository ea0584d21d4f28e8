"""Debian's real OpenSSH ``sshd`` on a loopback port, serving the bare git repos under a directory.

GitRepository over ssh must be tested against a real host key, a real ``known_hosts`` check and real
public-key auth; nothing short of sshd exercises those. The server runs in the foreground (``-D -e``) as
the current user with its own config, host key and authorized key, and is never a system service.
``make system-deps`` installs openssh-server when ``/usr/sbin/sshd`` is missing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support import processes
from tests.support.git_server import init_bare_repo

SSHD = "/usr/sbin/sshd"  # sshd re-executes itself per connection, so it needs an absolute path
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start as root without it
HOST = "127.0.0.1"


def free_port() -> int:
    """A port free right now; sshd binds it itself, so start() retries if another process wins the race."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def generate_ed25519_key(path: Path, comment: str) -> str:
    """Write an unencrypted OpenSSH ed25519 key pair at ``path`` / ``path.pub``; return the public line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return path.with_name(path.name + ".pub").read_text().strip()


def _openssh_version() -> tuple[int, int]:
    result = subprocess.run([SSHD, "-V"], capture_output=True, text=True, timeout=10)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", result.stdout + result.stderr)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _end(pid: int, grace: float = 5) -> None:
    """SIGTERM one process sshd forked (sessions leave its process group), SIGKILL it if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:  # gone once its parent reaped it
        time.sleep(0.01)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for its parent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


class SshGitServer:
    """sshd on ``127.0.0.1:<port>``: key-only auth for the current user, repos at ``ssh://.../<root>/<name>.git``.

    Generates its own host key and one client key (authorized); ``known_hosts`` holds the host key line a
    client needs for ``StrictHostKeyChecking=yes``. Keys, config, pid file and log live in ``state_dir``
    (a fresh temporary directory, removed on stop, unless given).
    """

    def __init__(self, root: Path, state_dir: Path | None = None) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._own_state = state_dir is None
        self.state_dir = (state_dir or Path(tempfile.mkdtemp(prefix="fluxwarden-sshd-"))).resolve()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.port = 0
        self.host_public_key = ""
        self.client_public_key = ""
        self._process: subprocess.Popen[bytes] | None = None

    # paths inside state_dir
    @property
    def host_key_path(self) -> Path:
        return self.state_dir / "ssh_host_ed25519_key"

    @property
    def client_key_path(self) -> Path:
        """The authorized client's private key file (OpenSSH format, no passphrase)."""
        return self.state_dir / "client_ed25519"

    @property
    def client_private_key(self) -> bytes:
        """The authorized client's private key, as a Flux ``identity`` secret value holds it."""
        return self.client_key_path.read_bytes()

    @property
    def authorized_keys_path(self) -> Path:
        return self.state_dir / "authorized_keys"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "sshd.log"

    @property
    def known_hosts(self) -> str:
        """``[127.0.0.1]:<port> ssh-ed25519 AAAA...`` plus a newline: the content of a ``known_hosts`` file."""
        if not self.port:
            raise RuntimeError("SshGitServer is not started")
        key_type, key = self.host_public_key.split()[:2]
        return f"[{HOST}]:{self.port} {key_type} {key}\n"

    def url(self, name: str) -> str:
        """``ssh://<user>@127.0.0.1:<port>/<abs root>/<name>.git``."""
        if not self.port:
            raise RuntimeError("SshGitServer is not started")
        return f"ssh://{self.user}@{HOST}:{self.port}{self.repo_path(name)}"

    def repo_path(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def create_repo(self, name: str, *, default_branch: str = "main") -> str:
        """Create the bare repo ``<root>/<name>.git`` and return its ssh URL (the server must be started)."""
        url = self.url(name)
        init_bare_repo(self.repo_path(name), default_branch=default_branch)
        return url

    def authorize(self, public_key: str) -> None:
        """Also accept ``public_key`` (an authorized_keys line); sshd reads the file per connection."""
        with self.authorized_keys_path.open("a") as keys:
            keys.write(public_key.strip() + "\n")

    def ssh_command(self, known_hosts_file: Path, identity: Path | None = None) -> str:
        """A ``GIT_SSH_COMMAND`` that ignores every ssh config and known_hosts but the given ones, never prompts."""
        return shlex.join(
            [
                "ssh", "-F", os.devnull,
                "-i", str(identity or self.client_key_path), "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={known_hosts_file}", "-o", f"GlobalKnownHostsFile={os.devnull}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            ]
        )  # fmt: skip

    def start(self, timeout: float = 20) -> Self:
        """Generate keys, then run sshd until its banner answers; retry on a lost port race."""
        if self._process is not None:
            raise RuntimeError("SshGitServer already started")
        if not os.access(SSHD, os.X_OK):
            raise RuntimeError(f"{SSHD} not found: run `make system-deps` (installs Debian's openssh-server)")
        if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.host_key_path.exists():  # a given state_dir from an earlier start: keep its keys
            self.host_public_key = Path(f"{self.host_key_path}.pub").read_text().strip()
            self.client_public_key = Path(f"{self.client_key_path}.pub").read_text().strip()
        else:
            self.host_public_key = generate_ed25519_key(self.host_key_path, "fluxwarden-test-host")
            self.client_public_key = generate_ed25519_key(self.client_key_path, "fluxwarden-test-client")
            self.authorize(self.client_public_key)
        last_error = ""
        for _attempt in range(3):
            self.port = free_port()
            self._write_config()
            try:
                self._launch(timeout)
                return self
            except _PortLost as error:
                last_error = str(error)
        self.port = 0
        raise RuntimeError(f"sshd could not bind a port:\n{last_error}")

    def stop(self) -> None:
        """End sshd and any session it forked, then remove a temporary state dir; safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            # deepest first, listener last: each parent is still alive to reap its child, so nothing is
            # orphaned to a PID 1 that may never reap it
            for pid in reversed(processes.descendant_pids(process.pid)):
                _end(pid)
            processes.end(process, grace=10)
        self.port = 0
        if self._own_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _write_config(self) -> None:
        options = [
            f"ListenAddress {HOST}",
            f"Port {self.port}",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.state_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys_path}",
            f"AllowUsers {self.user}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",  # CI runs as root
            "StrictModes no",  # state_dir may be any temp dir
            "UsePAM no",
            "PermitUserRC no",
            "PermitTTY no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            "AcceptEnv GIT_PROTOCOL",  # lets git speak protocol v2 over ssh
            "LogLevel VERBOSE",
        ]
        if _openssh_version() >= (9, 8):
            # newer sshd penalises clients that fail auth; tests fail auth on purpose, then connect again
            options.append("PerSourcePenalties no")
        (self.state_dir / "sshd_config").write_text("\n".join(options) + "\n")

    def _launch(self, timeout: float) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.state_dir / "sshd_config")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = self.log_path.read_bytes()[offset:].decode(errors="replace")
                if "Address already in use" in output:
                    raise _PortLost(output)
                raise RuntimeError(f"sshd exited {process.returncode}:\n{output}")
            if self._banner_answers():
                self._process = process
                return
            time.sleep(0.05)
        process.kill()
        process.wait()
        raise RuntimeError(f"sshd did not answer on port {self.port} in {timeout}s:\n{self.log_tail()}")

    def _banner_answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=2) as sock:
                sock.sendall(b"SSH-2.0-fluxwarden-probe\r\n")
                return sock.recv(256).startswith(b"SSH-2.0-OpenSSH")
        except OSError:
            return False


class _PortLost(RuntimeError):
    """sshd lost the race for the port free_port() chose."""
