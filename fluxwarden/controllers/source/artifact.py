"""Artifact archives: build a deterministic tar.gz of a source tree, digest it, unpack one safely.

Owns the archive format and its safety rules (CONTROLLERS.md, source controller, "Safety").
Called by the source reconcilers (``write_tarball`` / ``build_tarball``, ``digest``) and by the
consumers of artifacts, e.g. the kustomize controller (``safe_extract``).

Errors: every refusal is an ``ArtifactError`` whose message is one line naming the offending path
or archive member; the reconcilers turn it into conditions.

Determinism: the same files with the same contents and owner-executable bits give the same bytes,
whatever their mtimes, owners, other permission bits or creation order. Only regular files are
archived (directories are implicit), in sorted path order, with mtime 0, uid/gid 0, no user or
group names and mode 0644 (0755 when the owner may execute); the gzip header has mtime 0 and no
file name.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from fluxwarden.controllers.source.ignore import IgnoreRules

_CHUNK = 1 << 20
_FILE_MODE = 0o644
_EXEC_MODE = 0o755


class ArtifactError(Exception):
    """An archive could not be built or unpacked safely; the message names the path or member."""


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
    info.mode = _EXEC_MODE if st.st_mode & stat.S_IXUSR else _FILE_MODE
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


def safe_extract(tar_gz: Path | bytes, dest: Path, max_size: int) -> None:
    """Unpack an artifact into ``dest`` (absent or an empty directory), refusing anything unsafe.

    Refused, with ``ArtifactError``: absolute member names, names with ``..`` or backslashes,
    symlinks, hard links, devices, FIFOs and other special members, and a total content size over
    ``max_size``. Everything is unpacked into a temporary directory next to ``dest`` and renamed
    into place at the end, so a refusal leaves nothing behind and nothing is written outside.
    """
    dest = Path(dest)
    _check_destination(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", suffix=".partial", dir=dest.parent))
    try:
        try:
            with _open_source(tar_gz) as source:
                _extract_into(source, staging, max_size)
            os.rename(staging, dest)  # replaces an empty directory; fails if dest filled up meanwhile
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise ArtifactError(f"invalid artifact archive: {err}") from err
        except OSError as err:
            raise ArtifactError(f"cannot extract artifact into {dest}: {err.strerror or err}") from err
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_destination(dest: Path) -> None:
    try:
        st = dest.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise ArtifactError(f"extraction target {dest} exists and is not a directory")
    if any(dest.iterdir()):
        raise ArtifactError(f"extraction target {dest} is not empty")


@contextlib.contextmanager
def _open_source(tar_gz: Path | bytes) -> Iterator[BinaryIO]:
    if isinstance(tar_gz, bytes | bytearray | memoryview):
        yield io.BytesIO(tar_gz)
    else:
        with Path(tar_gz).open("rb") as f:
            yield f


def _extract_into(source: BinaryIO, staging: Path, max_size: int) -> None:
    total = 0
    # Not stream mode ("r|gz"): its gzip reader mishandles the FEXTRA header field that Helm writes
    # into every chart archive. Nothing is extracted by tarfile itself; members are copied one by one.
    with tarfile.open(fileobj=source, mode="r:gz") as tar:
        for member in tar:
            parts = _member_parts(member)
            if parts is None:
                continue
            target = staging.joinpath(*parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            total += member.size
            if total > max_size:
                raise ArtifactError(f"archive member {member.name!r} exceeds the size limit of {max_size} bytes")
            data = tar.extractfile(member)
            if data is None:  # cannot happen for a regular member; refuse rather than guess
                raise ArtifactError(f"archive member {member.name!r} has no data")
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_member(data, target, _EXEC_MODE if member.mode & stat.S_IXUSR else _FILE_MODE)


def _member_parts(member: tarfile.TarInfo) -> tuple[str, ...] | None:
    """The path components of a safe member; None for the root entry; ArtifactError otherwise."""
    name = member.name
    if name.startswith("/") or (len(name) > 1 and name[0].isalpha() and name[1] == ":"):
        raise ArtifactError(f"archive member {name!r} has an absolute path")
    if "\\" in name:
        raise ArtifactError(f"archive member {name!r} contains a backslash")
    parts = tuple(p for p in PurePosixPath(name).parts if p != ".")
    if ".." in parts:
        raise ArtifactError(f"archive member {name!r} escapes the destination with '..'")
    kind = _refused_type(member)
    if kind:
        raise ArtifactError(f"archive member {name!r} is {kind}")
    if not parts:
        if member.isdir():
            return None
        raise ArtifactError(f"archive member {name!r} has an empty name")
    return parts


def _refused_type(member: tarfile.TarInfo) -> str | None:
    if member.issym():
        return "a symlink"
    if member.islnk():
        return "a hard link"
    if member.ischr() or member.isblk():
        return "a device file"
    if member.isfifo():
        return "a FIFO"
    if not (member.isreg() or member.isdir()):
        return f"of unsupported type {member.type!r}"
    return None


def _write_member(data: IO[bytes], target: Path, mode: int) -> None:
    # O_NOFOLLOW: the staging tree never holds symlinks, but refuse to follow one all the same.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)  # exact mode, whatever the umask
        shutil.copyfileobj(data, out, _CHUNK)
