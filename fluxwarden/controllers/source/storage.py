"""Artifact storage on local disk, its plain-HTTP file server, and the ``status.artifact`` builder.

Owns the layout ``<kind lower>/<namespace>/<name>/<file>`` under one root directory, atomic
writes, retention (the newest files per object) and removal on deletion. Called by the source
reconcilers (``Storage``, ``artifact_status``) and by the controller process, which runs one
``ArtifactServer`` so that consumers fetch ``status.artifact.url`` over HTTP.

Paths given to ``Storage`` are always the relative, ``/``-separated artifact paths that appear in
``status.artifact.path``; anything that would leave the root is refused with ``ValueError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import logging
import mimetypes
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import quote, unquote, urlsplit

log = logging.getLogger(__name__)

_TEMP_PREFIX = "."
_TEMP_SUFFIX = ".tmp"
# A temporary file this old was left by a crashed write, not by a write in progress.
STALE_TEMP_SECONDS = 3600


@dataclass(frozen=True)
class StoredArtifact:
    """A file in storage: its relative path, URL, ``sha256:<hex>`` digest and size in bytes."""

    path: str
    url: str
    digest: str
    size: int


class Storage:
    """The artifact directory tree under ``root``, served at ``base_url``."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = Path(root)
        self.base_url = base_url.rstrip("/")

    def artifact_path(self, kind: str, namespace: str, name: str, filename: str) -> str:
        """``<kind lower>/<namespace>/<name>/<filename>``, each part checked to be one plain name."""
        _check_segment(filename)
        return self._object_prefix(kind, namespace, name) + filename

    def local_path(self, path: str) -> Path:
        """The file on disk for an artifact path; ValueError if the path is not a plain relative one."""
        parts = path.split("/")
        if not path or any(p in ("", ".", "..") for p in parts) or "\\" in path or "\x00" in path:
            raise ValueError(f"invalid artifact path {path!r}")
        return self.root.joinpath(*parts)

    def url_for(self, path: str) -> str:
        return f"{self.base_url}/{quote(path)}"

    def store(self, kind: str, namespace: str, name: str, filename: str, data: bytes) -> StoredArtifact:
        """Write ``data`` as the artifact file, atomically (temporary file + rename)."""
        return self.store_stream(kind, namespace, name, filename, lambda out: out.write(data))

    def store_stream(
        self, kind: str, namespace: str, name: str, filename: str, write: Callable[[IO[bytes]], object]
    ) -> StoredArtifact:
        """Let ``write`` fill the artifact file (e.g. ``artifact.write_tarball``), then publish it atomically.

        Readers see either the previous file or the complete new one, never a partial one. The
        digest is computed while the bytes are written, so the file is never read back.
        """
        path = self.artifact_path(kind, namespace, name, filename)
        final = self.local_path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=final.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                hashing = _HashingWriter(out)
                write(cast(IO[bytes], hashing))
                out.flush()
                os.fsync(out.fileno())
            tmp.chmod(0o644)  # mkstemp makes 0600; the file server and other readers need to read it
            stored = StoredArtifact(path, self.url_for(path), hashing.digest(), hashing.size)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return stored

    def exists(self, path: str) -> bool:
        """Whether ``path`` names a regular file in storage (a symlink does not count)."""
        try:
            return stat.S_ISREG(self.local_path(path).lstat().st_mode)
        except (OSError, ValueError):
            return False

    def gc(self, kind: str, namespace: str, name: str, keep: int = 2, current: str | None = None) -> list[str]:
        """Delete all but the ``keep`` newest files (by mtime) of one object; return the deleted paths.

        ``current`` (the artifact path just stored) is always kept and counts towards ``keep``.
        Temporary files of crashed writes are removed once they are old enough to be certainly stale.
        """
        prefix = self._object_prefix(kind, namespace, name)
        try:
            entries = list(os.scandir(self.local_path(prefix.rstrip("/"))))
        except FileNotFoundError:
            return []
        stale_before = time.time() - STALE_TEMP_SECONDS
        garbage: list[os.DirEntry[str]] = []
        candidates: list[tuple[int, str, os.DirEntry[str]]] = []
        for entry in entries:
            if not entry.is_file(follow_symlinks=False):
                continue
            mtime = entry.stat(follow_symlinks=False).st_mtime
            if entry.name.startswith(_TEMP_PREFIX):
                if entry.name.endswith(_TEMP_SUFFIX) and mtime < stale_before:
                    garbage.append(entry)
                continue
            candidates.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name, entry))
        # Newest first; the name breaks mtime ties so the choice does not depend on listing order.
        candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
        kept = {current.removeprefix(prefix)} if current and current.startswith(prefix) else set()
        for _, filename, entry in candidates:
            if filename in kept:
                continue
            if len(kept) < keep:
                kept.add(filename)
            else:
                garbage.append(entry)
        for entry in garbage:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        return sorted(prefix + entry.name for entry in garbage)

    def remove_all(self, kind: str, namespace: str, name: str) -> bool:
        """Remove every file of one object (for finalizers); True if there was anything to remove."""
        directory = self.local_path(self._object_prefix(kind, namespace, name).rstrip("/"))
        if not directory.exists():
            return False
        shutil.rmtree(directory)
        return True

    def _object_prefix(self, kind: str, namespace: str, name: str) -> str:
        for part in (kind, namespace, name):
            _check_segment(part)
        return f"{kind.lower()}/{namespace}/{name}/"


class _HashingWriter:
    """A write-only file that digests what passes through it on the way to ``out``."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()

    def digest(self) -> str:
        return f"sha256:{self._hash.hexdigest()}"


def _check_segment(part: str) -> None:
    if not part or part in (".", "..") or "/" in part or "\\" in part or "\x00" in part:
        raise ValueError(f"invalid artifact path segment {part!r}")


def artifact_status(stored: StoredArtifact, revision: str, now: datetime | None = None) -> dict[str, Any]:
    """The ``status.artifact`` of a Flux source object for a stored file."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "path": stored.path,
        "url": stored.url,
        "revision": revision,
        "digest": stored.digest,
        "size": stored.size,
        "lastUpdateTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class ArtifactServer:
    """A read-only HTTP file server over the storage root, in a daemon thread.

    GET and HEAD only, regular files only: no directory listings, no dot-files (temporary writes),
    nothing outside the root (``..``, encoded or not, and symlinks out are answered with 404).
    """

    def __init__(self, storage: Storage, host: str = "127.0.0.1", port: int = 0) -> None:
        self.storage = storage
        self.host = host
        self.port = port
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server (the bound port when 0 was asked for)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread; a second call while running does nothing."""
        if self._server is not None:
            return
        handler = _handler_for(self.storage.root)
        server_class = _IPv6Server if ":" in self.host else http.server.ThreadingHTTPServer
        self._server = server_class((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        # A short poll interval only bounds how long stop() waits for the serving loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="artifact-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ArtifactServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _IPv6Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _handler_for(root: Path) -> type[http.server.BaseHTTPRequestHandler]:
    real_root = os.path.realpath(root)

    class Handler(_ArtifactHandler):
        storage_root = real_root

    return Handler


class _ArtifactHandler(http.server.BaseHTTPRequestHandler):
    storage_root = ""
    server_version = "fluxwarden-artifacts"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _refuse_method(self) -> None:
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def _serve(self, send_body: bool) -> None:
        path = self._resolve()
        if path is None:
            self.send_error(404)
            return
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            self.send_error(404)
            return
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            ctype, encoding = mimetypes.guess_type(path)
            if encoding:  # x.tar.gz is a gzip stream on the wire, not a tar one
                ctype = "application/gzip" if encoding == "gzip" else None
            self.send_response(200)
            self.send_header("Content-Type", ctype or "application/octet-stream")
            self.send_header("Content-Length", str(st.st_size))
            self.send_header("Last-Modified", formatdate(st.st_mtime, usegmt=True))
            self.end_headers()
            if send_body:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    shutil.copyfileobj(f, self.wfile, 1 << 20)

    def _resolve(self) -> str | None:
        """The real path of the requested regular file inside the root, or None."""
        decoded = unquote(urlsplit(self.path).path)
        if "\x00" in decoded or "\\" in decoded:
            return None
        parts = [p for p in decoded.split("/") if p]
        # ".." and "." would walk; leading dots also hide temporary files of writes in progress.
        if not parts or any(p.startswith(".") for p in parts):
            return None
        real = os.path.realpath(os.path.join(self.storage_root, *parts))
        if not real.startswith(self.storage_root.rstrip(os.sep) + os.sep):
            return None
        try:
            if not stat.S_ISREG(os.stat(real).st_mode):
                return None
        except OSError:
            return None
        return real

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("artifact server: %s - %s", self.address_string(), format % args)
