"""A real smart-HTTP git server on loopback (``git http-backend`` as CGI) and a working-copy helper.

The source controller clones with the real ``git`` client, so its tests need a server that speaks the
real protocol (v2, gzip request bodies, chunked pushes, 401 challenges) rather than a canned reply.
Everything runs the git CLI with global and system config ignored and fixed identities and dates, so it
works on a fresh machine with no git identity and gives the same commit SHAs on every run.
"""

from __future__ import annotations

import io
import os
import shutil
import ssl
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from tests.support.http_files import AuthenticatingHandler, LoopbackHttpServer

GIT = shutil.which("git") or "git"
MAX_REQUEST_BODY = 256 * 1024 * 1024  # bounds what one test push can make the server spool to disk
COPY_CHUNK = 64 * 1024
AUTHOR = ("Fluxwarden Test", "test@fluxwarden.invalid")
EPOCH = 1_700_000_000  # fixed clock start: same inputs give the same SHAs on every run


class CommandFailed(subprocess.CalledProcessError):
    """CalledProcessError whose message carries the tool's stderr, so a failing test says why."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr or ''}".rstrip()


def isolated_git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment for git, minus anything of the user's or the machine's that could leak in.

    Drops inherited ``GIT_*`` variables (e.g. ``GIT_DIR`` when run from a hook), ignores global and system
    config (credential helpers, signing, ``init.defaultBranch``) and never prompts for a password.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_") and key != "SSH_ASKPASS"}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME=AUTHOR[0],
        GIT_AUTHOR_EMAIL=AUTHOR[1],
        GIT_COMMITTER_NAME=AUTHOR[0],
        GIT_COMMITTER_EMAIL=AUTHOR[1],
    )
    env.update(extra or {})
    return env


def run_git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 60) -> str:
    """Run git and return its stdout stripped; a failure raises with git's own stderr in the message."""
    result = subprocess.run(
        [GIT, *args], cwd=cwd, env=isolated_git_env(env), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise CommandFailed(result.returncode, ["git", *args], result.stdout, result.stderr)
    return result.stdout.strip()


def init_bare_repo(path: Path, *, default_branch: str = "main") -> Path:
    """Create a bare repository whose HEAD names ``default_branch`` (what a clone without a branch checks out)."""
    run_git("init", "-q", "--bare", "-b", default_branch, str(path))
    # as on GitHub: a client may fetch any reachable commit by SHA, also over protocol v0
    run_git("config", "uploadpack.allowReachableSHA1InWant", "true", cwd=path)
    return path


class GitRepo:
    """A non-bare working copy that tests commit to, branch, tag, and push into a bare repository.

    Dates advance one minute per commit or annotated tag from a fixed start, so SHAs are deterministic.
    """

    def __init__(self, path: Path, *, branch: str = "main") -> None:
        self.path = path
        self._clock = EPOCH
        if not (path / ".git").exists():
            run_git("init", "-q", "-b", branch, str(path))

    def git(self, *args: str) -> str:
        """Run any git command in the working copy with the fixed identity and the current fixed date."""
        stamp = f"@{self._clock} +0000"
        return run_git(*args, cwd=self.path, env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})

    def commit(
        self, files: Mapping[str, str | bytes] | None = None, *, delete: Iterable[str] = (), message: str = "update"
    ) -> str:
        """Write ``files`` (relative path -> content), remove ``delete`` (files or dirs), commit all; the new SHA.

        An empty change still makes a commit, so a test can always move a branch forward.
        """
        for name, content in (files or {}).items():
            target = self._inside(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        for name in delete:
            self._inside(name)
            self.git("rm", "-r", "-q", "--ignore-unmatch", "--", name)
        self.git("add", "-A")
        self._clock += 60
        self.git("commit", "-q", "--allow-empty", "--no-verify", "-m", message)
        return self.rev_parse("HEAD")

    def branch(self, name: str, start: str = "HEAD", *, checkout: bool = False) -> str:
        """Create branch ``name`` at ``start``; return the commit SHA it points to."""
        self.git("branch", name, start)
        if checkout:
            self.checkout(name)
        return self.rev_parse(name)

    def checkout(self, ref: str) -> None:
        self.git("checkout", "-q", ref)

    def tag(self, name: str, ref: str = "HEAD", *, message: str | None = None) -> str:
        """A lightweight tag, or an annotated one when ``message`` is given; return the tagged commit's SHA."""
        if message is None:
            self.git("tag", name, ref)
        else:
            self._clock += 60
            self.git("tag", "-a", name, "-m", message, ref)
        return self.rev_parse(f"{name}^{{commit}}")

    def rev_parse(self, ref: str) -> str:
        return self.git("rev-parse", "--verify", "-q", ref)

    def push(self, remote: str | Path) -> None:
        """Mirror every branch and tag to ``remote`` (a path or URL), forced, deleting refs removed here."""
        self.git(
            "push", "-q", "--force", "--prune", str(remote),
            "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*",
        )  # fmt: skip

    def _inside(self, name: str) -> Path:
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"{name!r} must be a relative path inside the working copy")
        return self.path / relative


class _BadBody(Exception):
    """A request body the gateway refuses before starting the backend, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _GitHandler(AuthenticatingHandler):
    """Runs ``git http-backend`` once per request, as a CGI gateway does."""

    protocol_version = "HTTP/1.1"  # lets the base answer ``Expect: 100-continue`` on large pushes at once

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        if not self.authenticate():
            return
        owner = self.server.owner
        assert isinstance(owner, GitHttpServer)
        with tempfile.TemporaryFile() as body, tempfile.TemporaryFile() as stderr:
            try:
                self._spool_body(body)
            except _BadBody as error:
                self.send_error(error.status, str(error))
                return
            env = self._cgi_env(owner, body_length=body.tell())
            body.seek(0)
            with subprocess.Popen(
                [GIT, "http-backend"], stdin=body, stdout=subprocess.PIPE, stderr=stderr, env=env
            ) as backend:
                assert isinstance(backend.stdout, io.BufferedReader)
                self._relay(backend.stdout)
            if backend.returncode != 0:
                stderr.seek(0)
                owner.errors.append(stderr.read().decode(errors="replace"))

    def _spool_body(self, sink: IO[bytes]) -> None:
        """Copy the request body to ``sink``: by Content-Length, or decoded from chunked transfer encoding."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            total = 0
            while True:
                try:
                    size = int(self.rfile.readline(1024).split(b";")[0], 16)
                except ValueError:
                    raise _BadBody(400, "malformed chunk size") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                total += size
                if total > MAX_REQUEST_BODY:
                    raise _BadBody(413, "request body too large")
                self._copy(size, sink)
                self.rfile.readline(8)  # the CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BODY:
            raise _BadBody(413, "request body too large")
        self._copy(length, sink)

    def _copy(self, size: int, sink: IO[bytes]) -> None:
        while size > 0:
            chunk = self.rfile.read(min(size, COPY_CHUNK))
            if not chunk:
                raise _BadBody(400, "request body ended early")
            sink.write(chunk)
            size -= len(chunk)

    def _cgi_env(self, owner: GitHttpServer, *, body_length: int) -> dict[str, str]:
        url = urllib.parse.urlsplit(self.path)
        env = isolated_git_env(
            {
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": self.request_version,
                "GIT_PROJECT_ROOT": str(owner.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": urllib.parse.unquote(url.path),
                "QUERY_STRING": url.query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "REMOTE_ADDR": self.client_address[0],
            }
        )
        if self.command == "POST":
            # the spooled body is already de-chunked; gzip stays for http-backend, which inflates it itself
            env["CONTENT_LENGTH"] = str(body_length)
        if self.remote_user:
            env["REMOTE_USER"] = self.remote_user  # http-backend only allows pushes from a known user
        if encoding := self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = encoding
        if protocol := self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = env["HTTP_GIT_PROTOCOL"] = protocol
        return env

    def _relay(self, stdout: io.BufferedReader) -> None:
        """Turn the CGI header block into a status line and headers, then stream the body until EOF."""
        status, reason, headers = 200, "OK", []
        while True:
            line = stdout.readline(8192)
            if not line:
                self.send_error(502, "git http-backend wrote no headers")
                return
            line = line.rstrip(b"\r\n")
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "status":
                code, _, reason = value.strip().partition(" ")
                status = int(code)
            else:
                headers.append((name.strip(), value.strip()))
        self.close_connection = True
        sent = 0
        try:
            self.send_response(status, reason or None)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Connection", "close")  # no Content-Length: the body ends when the connection does
            self.end_headers()
            while chunk := stdout.read1(COPY_CHUNK):  # read1: pass on what the backend wrote so far
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client hung up; the backend gets SIGPIPE or EOF and exits
        finally:
            owner = self.server.owner
            assert isinstance(owner, GitHttpServer)
            owner.sent.append((self.path, sent))


class GitHttpServer(LoopbackHttpServer):
    """Smart-HTTP git on ``http://127.0.0.1:<port>/<name>.git`` for the bare repos under ``root``.

    With ``username`` set, every request needs those basic-auth credentials (401 otherwise), and pushes
    over HTTP are allowed; anonymously, only fetches are (git's own default for ``http-backend``). With
    ``token``, a bearer token is needed instead; with ``tls``, it serves HTTPS (``tests.support.tls``).
    ``sent`` records the response body bytes written per request, to prove a client stopped early.
    """

    handler_class = _GitHandler

    def __init__(
        self,
        root: Path,
        username: str | None = None,
        password: str | None = None,
        *,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(username=username, password=password, token=token, tls=tls)
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.errors: list[str] = []  # stderr of http-backend runs that failed, for test diagnostics
        self.sent: list[tuple[str, int]] = []  # (request path, body bytes written) per response

    def repo_path(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{name}.git"

    def create_repo(self, name: str, *, default_branch: str = "main") -> str:
        """Create the bare repo ``<root>/<name>.git`` and return its URL (the server must be started)."""
        url = self.repo_url(name)
        init_bare_repo(self.repo_path(name), default_branch=default_branch)
        return url
