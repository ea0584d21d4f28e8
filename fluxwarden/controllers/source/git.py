"""Git through the ``git`` CLI: resolve a ref with ``ls-remote``, check it out shallowly, with auth.

Credentials never reach a command line or a message: HTTPS basic auth travels in an
``http.extraHeader`` set through ``GIT_CONFIG_*`` variables, SSH keys and known_hosts in 0600
files of a temporary directory. Every failure is a :class:`GitError` with a one-line, scrubbed
message and whether it was about authentication.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_CREDENTIALS_IN_URL = re.compile(r"(://)[^/@\s]+@")
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
    def __init__(self, message: str, authentication: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.authentication = authentication


@dataclass(frozen=True)
class Credentials:
    """From a GitRepository's ``secretRef``; empty when the repository is public."""

    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    identity: bytes | None = None
    known_hosts: bytes | None = None
    ca_file: bytes | None = None

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
            ca_file=data.get("caFile") or data.get("ca.crt"),
        )


def scrub(text: str) -> str:
    """One line without credentials embedded in URLs."""
    return " ".join(_CREDENTIALS_IN_URL.sub(r"\1", text).split())


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
    config: list[tuple[str, str]] = [("protocol.file.allow", "never")]
    with tempfile.TemporaryDirectory(prefix="fluxwarden-git-auth-") as secrets_dir:
        directory = Path(secrets_dir)
        if is_ssh(url):
            ssh = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]
            if credentials.identity:
                identity = _private_file(directory / "identity", credentials.identity)
                ssh += ["-i", str(identity)]
            known = _private_file(directory / "known_hosts", credentials.known_hosts or b"")
            ssh += ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
            env["GIT_SSH_COMMAND"] = " ".join(ssh)
        else:
            if credentials.bearer_token:
                config.append(("http.extraHeader", f"Authorization: Bearer {credentials.bearer_token}"))
            elif credentials.username or credentials.password:
                pair = f"{credentials.username or ''}:{credentials.password or ''}".encode()
                config.append(("http.extraHeader", f"Authorization: Basic {base64.b64encode(pair).decode()}"))
            if credentials.ca_file:
                env["GIT_SSL_CAINFO"] = str(_private_file(directory / "ca.crt", credentials.ca_file))
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        yield env


def _private_file(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data if data.endswith(b"\n") or not data else data + b"\n")
    return path


class Git:
    """Runs git with a deadline shared by all the commands of one reconcile."""

    def __init__(self, url: str, credentials: Credentials, timeout: float) -> None:
        self.url = url
        self.credentials = credentials
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout

    def run(self, *args: str, cwd: Path | None = None) -> str:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise GitError(f"timeout after {self.timeout:g}s")
        with git_environment(self.url, self.credentials) as env:
            try:
                done = subprocess.run(
                    ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=left, check=False
                )
            except subprocess.TimeoutExpired:
                raise GitError(f"timeout after {self.timeout:g}s while running git {args[0]}") from None
        if done.returncode != 0:
            raise _classify(done.stderr, args[0])
        return done.stdout

    def ls_remote(self, *patterns: str) -> dict[str, str]:
        """``{ref name: sha}`` of the remote refs matching ``patterns`` (all refs when none)."""
        refs: dict[str, str] = {}
        for line in self.run("ls-remote", "--", self.url, *patterns).splitlines():
            sha, _, name = line.partition("\t")
            if name:
                refs[name] = sha
        return refs

    def checkout(self, ref: str, commit: str | None, workdir: Path, shallow: bool = True) -> str:
        """Fetch ``ref`` into ``workdir`` and check out ``commit`` (or what ``ref`` points to); returns HEAD."""
        self.run("init", "--quiet", str(workdir))
        depth = ["--depth", "1"] if shallow else []
        self.run("fetch", "--quiet", "--no-tags", *depth, "--", self.url, ref, cwd=workdir)
        target = commit or "FETCH_HEAD"
        try:
            self.run("-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", target, cwd=workdir)
        except GitError as exc:
            if commit:
                raise GitError(f"commit '{commit}' not found in '{ref}'") from exc
            raise
        return self.run("rev-parse", "HEAD", cwd=workdir).strip()


def _classify(stderr: str, command: str) -> GitError:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    text = scrub(lines[-1] if lines else f"git {command} failed")
    lower = stderr.lower()
    if "host key verification failed" in lower:
        return GitError("host key verification failed: the host's key is not in known_hosts")
    if any(hint in lower for hint in _AUTH_HINTS):
        return GitError(f"authentication failed: {text}", authentication=True)
    return GitError(text.removeprefix("fatal: "))
