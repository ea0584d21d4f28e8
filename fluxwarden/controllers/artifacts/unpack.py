"""Unpack an artifact archive safely: no member may escape, link, be special, or exceed the size limit.

Owns the consumer side of the archive format of ``source.artifact`` (CONTROLLERS.md, source
controller, "Safety"). Called by ``client.fetch_artifact`` and by the HelmChart reconciler, which
unpacks charts and GitRepository artifacts. Every refusal is an ``ArtifactError`` whose message is
one line naming the member.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from fluxwarden.controllers.artifacts.errors import ArtifactError

_CHUNK = 1 << 20
# The modes of the archive format: ``source.artifact`` writes exactly these, and this module restores them.
FILE_MODE = 0o644
EXEC_MODE = 0o755


def safe_extract(tar_gz: Path | bytes | IO[bytes], dest: Path, max_size: int) -> None:
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
def _open_source(tar_gz: Path | bytes | IO[bytes]) -> Iterator[IO[bytes]]:
    if isinstance(tar_gz, bytes | bytearray | memoryview):
        yield io.BytesIO(tar_gz)
    elif not isinstance(tar_gz, str | os.PathLike):
        tar_gz.seek(0)  # an open file the caller just wrote, e.g. a download
        yield tar_gz
    else:
        with Path(tar_gz).open("rb") as f:
            yield f


def _extract_into(source: IO[bytes], staging: Path, max_size: int) -> None:
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
            _write_member(data, target, EXEC_MODE if member.mode & stat.S_IXUSR else FILE_MODE)


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
