"""Artifact archives, producer side: build a deterministic tar.gz of a source tree and digest it.

Owns the archive format (CONTROLLERS.md, source controller, "Safety"). Called by the source
reconcilers (``write_tarball``, ``digest``). Unpacking, the consumer side, is
``controllers.artifacts.unpack.safe_extract``.

Errors: every refusal is an ``ArtifactError`` whose message is one line naming the offending path;
the reconcilers turn it into conditions.

Determinism: the same files with the same contents and owner-executable bits give the same bytes,
whatever their mtimes, owners, other permission bits or creation order. Only regular files are
archived (directories are implicit), in sorted path order, with mtime 0, uid/gid 0, no user or
group names and mode 0644 (0755 when the owner may execute); the gzip header has mtime 0 and no
file name.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import IO

from fluxwarden.controllers.artifacts.errors import ArtifactError
from fluxwarden.controllers.artifacts.unpack import EXEC_MODE, FILE_MODE
from fluxwarden.controllers.source.ignore import IgnoreRules

_CHUNK = 1 << 20


def write_tarball(root: Path, rules: IgnoreRules, out: IO[bytes], max_size: int | None = None) -> None:
    """Stream the deterministic tar.gz of ``root`` (minus ``rules``) into ``out``.

    ``max_size`` bounds the total size of the archived file contents (uncompressed), the same
    measure ``safe_extract`` bounds, so an artifact built under a limit unpacks under it.
    """
    try:
        files = _collect(root, rules)
    except OSError as err:
        raise ArtifactError(f"cannot read {err.filename}: {err.strerror or err}") from err
    # GzipFile with an explicit empty name and mtime 0: the gzip header carries neither.
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        total = 0
        for rel, path in files:
            try:
                with path.open("rb") as src:
                    st = os.fstat(src.fileno())
                    total += st.st_size
                    if max_size is not None and total > max_size:
                        raise ArtifactError(f"artifact exceeds the size limit of {max_size} bytes at {rel}")
                    tar.addfile(_tarinfo(rel, st), src)
            except OSError as err:
                raise ArtifactError(f"cannot archive {rel}: {err.strerror or err}") from err


def build_tarball(root: Path, rules: IgnoreRules, max_size: int | None = None) -> bytes:
    """The deterministic tar.gz of ``root`` as bytes (``write_tarball`` into memory)."""
    buffer = io.BytesIO()
    write_tarball(root, rules, buffer, max_size)
    return buffer.getvalue()


def digest(data: bytes | Path) -> str:
    """``sha256:<hex>`` of some bytes or of a file's contents (read in chunks)."""
    if isinstance(data, bytes | bytearray | memoryview):
        return f"sha256:{hashlib.sha256(data).hexdigest()}"
    hasher = hashlib.sha256()
    with Path(data).open("rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return f"sha256:{hasher.hexdigest()}"


def _tarinfo(rel: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(rel)
    info.size = st.st_size
    info.mtime = 0
    info.mode = EXEC_MODE if st.st_mode & stat.S_IXUSR else FILE_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _collect(root: Path, rules: IgnoreRules) -> list[tuple[str, Path]]:
    """Sorted ``(relative posix name, path)`` of the regular files to archive."""
    root = Path(root)
    if not root.is_dir():
        raise ArtifactError(f"source directory {root} does not exist")
    real_root = os.path.realpath(root)
    found: list[tuple[str, Path]] = []
    for current, dirnames, filenames in os.walk(root, followlinks=False, onerror=_reraise):
        base = Path(current)
        rel_base = base.relative_to(root).as_posix()
        kept_dirs = []
        for name in dirnames:
            rel = name if rel_base == "." else f"{rel_base}/{name}"
            path = base / name
            if path.is_symlink():
                _check_symlink(rel, path, rules, real_root)
            elif not rules.prunable(rel):
                kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in filenames:
            rel = name if rel_base == "." else f"{rel_base}/{name}"
            path = base / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                _check_symlink(rel, path, rules, real_root)
            elif stat.S_ISREG(mode) and not rules.ignored(rel, is_dir=False):
                found.append((rel, path))
            # sockets, FIFOs and devices are never archived
    found.sort(key=lambda item: item[0])
    return found


def _check_symlink(rel: str, path: Path, rules: IgnoreRules, real_root: str) -> None:
    """Symlinks are never archived; one that leaves the tree is refused unless it is ignored."""
    if rules.ignored(rel, is_dir=False) or rules.ignored(rel, is_dir=True):
        return
    target = os.path.realpath(path)
    if target != real_root and not target.startswith(real_root.rstrip(os.sep) + os.sep):
        raise ArtifactError(f"symlink {rel} points outside the repository")


def _reraise(err: OSError) -> None:
    raise err  # os.walk swallows errors by default; a tree we cannot read must not archive partially
