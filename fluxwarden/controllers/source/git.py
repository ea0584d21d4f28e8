"""Git through the ``git`` CLI: resolve a ref with ``ls-remote``, check it out shallowly, with auth.

Credentials never reach a command line or a message: HTTPS basic auth travels in an
``http.extraHeader`` set through ``GIT_CONFIG_*`` variables, SSH keys and known_hosts in 0600
files of a temporary directory. Every failure is a :class:`GitError` with a one-line, scrubbed
message and whether it was about authentication.

Bounds: a fetch runs in its own process group while its object store is measured every few
milliseconds; past ``max_size`` bytes the whole group is killed, so an oversize repository is
stopped while it downloads. Before checkout, the blob sizes of the fetched tree are summed from the
object store (``ls-tree -l``), so nothing over the limit is ever written out. Only the http, https
and ssh transports are allowed (git's ``protocol.allow``), TLS is 1.2 or later, and every value
from the spec comes after ``--``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fluxwarden.controllers.artifacts.http import private_file, shown_origin
from fluxwarden.controllers.artifacts.scrub import scrub

POLL_SECONDS = 0.005  # how often a running fetch's object store is measured
_TLS_FAILURES = ("ssl certificate problem", "server certificate verification failed", "certificate verify failed")
_AUTH_HINTS = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "permission denied (publickey",
    "the requested url returned error: 401",
    "the requested url returned error: 403",
    "invalid username or password",
)


class GitError(Exception):
    def __init__(self, message: str, authentication: bool = False, size_limit: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.authentication = authentication
        self.size_limit = size_limit


@dataclass(frozen=True)
class Credentials:
    """From a GitRepository's ``secretRef``; empty when the repository is public."""

    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    identity: bytes | None = None
    known_hosts: bytes | None = None
    ca_file: bytes | None = None
    tls_cert: bytes | None = None
    tls_key: bytes | None = None

    @classmethod
    def from_secret(cls, data: dict[str, bytes]) -> Credentials:
        def text(key: str) -> str | None:
            return data[key].decode() if key in data else None

        return cls(
            username=text("username"),
            password=text("password"),
            bearer_token=text("bearerToken"),
            identity=data.get("identity"),
            known_hosts=data.get("known_hosts"),
            ca_file=data.get("ca.crt") or data.get("caFile"),
            tls_cert=data.get("tls.crt"),
            tls_key=data.get("tls.key"),
        )


def is_ssh(url: str) -> bool:
    return url.startswith("ssh://") or bool(re.match(r"^[\w.-]+@[\w.-]+:", url))


@contextlib.contextmanager
def git_environment(url: str, credentials: Credentials) -> Iterator[dict[str, str]]:
    """Environment for one git invocation; key files live only inside the ``with`` block."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": tempfile.gettempdir(),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "LC_ALL": "C",
    }
    # Only the network transports: no file://, ext::, fd:: or other helper, also not via submodules.
    config: list[tuple[str, str]] = [
        ("protocol.allow", "never"),
        ("protocol.http.allow", "always"),
        ("protocol.https.allow", "always"),
        ("protocol.ssh.allow", "always"),
        ("http.sslVersion", "tlsv1.2"),  # curl: TLS 1.2 or later
    ]
    with tempfile.TemporaryDirectory(prefix="fluxwarden-git-auth-") as secrets_dir:
        directory = Path(secrets_dir)
        if is_ssh(url):
            ssh = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]
            if credentials.identity:
                identity = private_file(directory / "identity", credentials.identity)
                ssh += ["-i", str(identity)]
            known = private_file(directory / "known_hosts", credentials.known_hosts or b"")
            ssh += ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
            env["GIT_SSH_COMMAND"] = " ".join(ssh)
        else:
            if credentials.bearer_token:
                config.append(("http.extraHeader", f"Authorization: Bearer {credentials.bearer_token}"))
            elif credentials.username or credentials.password:
                pair = f"{credentials.username or ''}:{credentials.password or ''}".encode()
                config.append(("http.extraHeader", f"Authorization: Basic {base64.b64encode(pair).decode()}"))
            if credentials.bearer_token or credentials.username or credentials.password or credentials.tls_cert:
                # git sends extraHeader and the client certificate to wherever a redirect leads
                config.append(("http.followRedirects", "false"))
            if credentials.ca_file:
                env["GIT_SSL_CAINFO"] = str(private_file(directory / "ca.crt", credentials.ca_file))
            if credentials.tls_cert and credentials.tls_key:
                env["GIT_SSL_CERT"] = str(private_file(directory / "tls.crt", credentials.tls_cert))
                env["GIT_SSL_KEY"] = str(private_file(directory / "tls.key", credentials.tls_key))
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        yield env


class Git:
    """Runs git with a deadline shared by all the commands of one reconcile."""

    def __init__(self, url: str, credentials: Credentials, timeout: float) -> None:
        self.url = url
        self.credentials = credentials
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout

    def run(self, *args: str, cwd: Path | None = None, bound: tuple[Path, int] | None = None) -> str:
        """Run git; with ``bound=(directory, limit)``, kill it once ``directory`` holds over ``limit`` bytes."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise GitError(f"timeout after {self.timeout:g}s")
        with git_environment(self.url, self.credentials) as env:
            if bound is None:
                returncode, stdout, stderr = _run(["git", *args], cwd, env, left)
            else:
                returncode, stdout, stderr = _run_bounded(["git", *args], cwd, env, self.deadline, bound)
        if returncode is None:
            raise GitError(f"timeout after {self.timeout:g}s while running git {args[0]}")
        if returncode != 0:
            raise _classify(stderr, args[0], self.url)
        return stdout

    def ls_remote(self, *patterns: str) -> dict[str, str]:
        """``{ref name: sha}`` of the remote refs matching ``patterns`` (all refs when none)."""
        refs: dict[str, str] = {}
        for line in self.run("ls-remote", "--", self.url, *patterns).splitlines():
            sha, _, name = line.partition("\t")
            if name:
                refs[name] = sha
        return refs

    def checkout(
        self, ref: str, commit: str | None, workdir: Path, shallow: bool = True, max_size: int | None = None
    ) -> str:
        """Fetch ``ref`` into ``workdir`` and check out ``commit`` (or what ``ref`` points to); returns HEAD.

        With ``max_size``, the fetch is stopped once the object store passes it, and the checkout is
        refused before it starts if the files of the commit add up to more.
        """
        self.run("init", "--quiet", "--", str(workdir))
        depth = ["--depth", "1"] if shallow else []
        bound = (workdir / ".git" / "objects", max_size) if max_size is not None else None
        # unpackLimit=1: always keep the pack, which index-pack writes to disk as it arrives, so its
        # size can be watched (unpack-objects would hold a large blob in memory until it is whole).
        self.run(
            "-c", "fetch.unpackLimit=1", "fetch", "--quiet", "--no-tags", *depth, "--", self.url, ref,
            cwd=workdir, bound=bound,
        )  # fmt: skip
        target = commit or "FETCH_HEAD"
        try:
            resolved = self.run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{target}^{{commit}}",
                                cwd=workdir).strip()  # fmt: skip
        except GitError as exc:
            if commit:
                raise GitError(f"commit '{commit}' not found in '{ref}'") from exc
            raise
        if max_size is not None:
            size = self.tree_size(resolved, workdir, max_size)
            if size > max_size:
                raise GitError(
                    f"repository is larger than the {max_size} byte limit: the files of {resolved[:12]} "
                    f"add up to more than that", size_limit=True,
                )  # fmt: skip
        self.run("-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", resolved, "--", cwd=workdir)
        return self.run("rev-parse", "HEAD", cwd=workdir).strip()

    def tree_size(self, commit: str, workdir: Path, limit: int) -> int:
        """Bytes of the blobs of ``commit``'s tree, read from the object store (nothing checked out)."""
        total = 0
        for line in self.run("ls-tree", "-r", "-l", "--full-tree", commit, cwd=workdir).splitlines():
            fields = line.split(None, 4)
            if len(fields) >= 4 and fields[1] == "blob" and fields[3].isdigit():
                total += int(fields[3])
                if total > limit:
                    break
        return total


def _start(argv: list[str], cwd: Path | None, env: dict[str, str], out: Any, err: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
        start_new_session=True,  # its own process group: remote helpers and index-pack die with it
    )  # fmt: skip


def _run(argv: list[str], cwd: Path | None, env: dict[str, str], timeout: float) -> tuple[int | None, str, str]:
    """Run to completion or ``timeout``; (return code or None on timeout, stdout, stderr)."""
    process = _start(argv, cwd, env, subprocess.PIPE, subprocess.PIPE)
    try:
        stdout, stderr = process.communicate(timeout=timeout)  # returns at EOF, no polling
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.communicate()
        return None, "", ""
    _kill_group(process)  # anything it left behind in its group
    return process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")


def _run_bounded(
    argv: list[str], cwd: Path | None, env: dict[str, str], deadline: float, bound: tuple[Path, int]
) -> tuple[int | None, str, str]:
    """Like ``_run``, measuring ``bound``'s directory every few ms; past its limit, GitError (size_limit)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = _start(argv, cwd, env, out, err)
        over = None
        try:
            while (left := deadline - time.monotonic()) > 0:
                try:
                    process.wait(timeout=min(left, POLL_SECONDS))
                    break
                except subprocess.TimeoutExpired:
                    pass
                size = _disk_usage(bound[0], bound[1])
                if size > bound[1]:
                    over = size
                    break
        finally:
            _kill_group(process)
        if over is not None:
            raise GitError(
                f"repository is larger than the {bound[1]} byte limit: download stopped at {over} bytes",
                size_limit=True,
            )
        if left <= 0:
            return None, "", ""
        out.seek(0)
        err.seek(0)
        return process.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace")


def _disk_usage(root: Path, limit: int) -> int:
    """Bytes of the files under ``root``, stopping once past ``limit``; files may vanish meanwhile."""
    total = 0
    stack = [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
            if total > limit:
                return total
    return total


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill what is left of the process group this one leads (it was started with a new session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _classify(stderr: str, command: str, url: str) -> GitError:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    text = scrub(lines[-1] if lines else f"git {command} failed")
    lower = stderr.lower()
    if "host key verification failed" in lower:
        return GitError("host key verification failed: the host's key is not in known_hosts")
    if any(hint in lower for hint in _TLS_FAILURES):
        detail = next((scrub(line) for line in lines if any(h in line.lower() for h in _TLS_FAILURES)), text)
        return GitError(
            f"TLS certificate of {shown_origin(url)} is not trusted ({detail.removeprefix('fatal: ')}): "
            "put the CA that signed it as ca.crt in the Secret named by spec.secretRef"
        )
    if any(hint in lower for hint in _AUTH_HINTS):
        return GitError(f"authentication failed: {text}", authentication=True)
    return GitError(text.removeprefix("fatal: "))
