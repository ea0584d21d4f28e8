"""Artifact archives: deterministic tarballs, symlink rules, size limits and safe extraction."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from fluxwarden.controllers.artifacts.errors import ArtifactError
from fluxwarden.controllers.artifacts.unpack import safe_extract
from fluxwarden.controllers.source.artifact import build_tarball, digest, write_tarball
from fluxwarden.controllers.source.ignore import IgnoreRules

FILES = {
    "kustomization.yaml": "resources: [app.yaml]\n",
    "app.yaml": "kind: ConfigMap\n",
    "apps/a/deploy.yaml": "kind: Deployment\n",
    "apps/b/svc.yaml": "kind: Service\n",
    "scripts/run.sh": "#!/bin/sh\n",
}


def make_tree(root: Path, files: dict[str, str] = FILES, order: list[str] | None = None) -> Path:
    for rel in order or list(files):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[rel])
    return root


def rules(root: Path, spec: str | None = None) -> IgnoreRules:
    return IgnoreRules.load(root, spec)


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getmembers()


def tar_gz(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def reg(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


# ---- determinism ------------------------------------------------------------------------------


def test_same_tree_twice_gives_same_bytes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    first, second = build_tarball(root, rules(root), None), build_tarball(root, rules(root), None)
    assert first == second
    assert digest(first) == digest(second)


def test_file_creation_order_does_not_matter(tmp_path: Path) -> None:
    a = make_tree(tmp_path / "a")
    b = make_tree(tmp_path / "b", order=sorted(FILES, reverse=True))
    assert digest(build_tarball(a, rules(a), None)) == digest(build_tarball(b, rules(b), None))


Mutation = Callable[[Path], None]


def _utime(root: Path) -> None:
    for path in root.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))


def _chmod_private(root: Path) -> None:
    (root / "app.yaml").chmod(0o600)
    (root / "kustomization.yaml").chmod(0o664)


def _chown(root: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing file owners needs root")
    for path in root.rglob("*"):
        os.chown(path, 4242, 4343)


@pytest.mark.parametrize("mutate", [_utime, _chmod_private, _chown], ids=["mtimes", "permissions", "owners"])
def test_metadata_does_not_change_the_digest(tmp_path: Path, mutate: Mutation) -> None:
    a = make_tree(tmp_path / "a")
    b = make_tree(tmp_path / "b")
    mutate(b)
    assert digest(build_tarball(a, rules(a), None)) == digest(build_tarball(b, rules(b), None))


def test_executable_bit_and_content_change_the_digest(tmp_path: Path) -> None:
    a = make_tree(tmp_path / "a")
    base = digest(build_tarball(a, rules(a), None))
    (a / "scripts/run.sh").chmod(0o755)
    executable = digest(build_tarball(a, rules(a), None))
    (a / "app.yaml").write_text("kind: Secret\n")
    assert len({base, executable, digest(build_tarball(a, rules(a), None))}) == 3


def test_ignore_rules_change_the_digest(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    full = build_tarball(root, rules(root), None)
    filtered = build_tarball(root, rules(root, "apps/b/\n"), None)
    assert digest(full) != digest(filtered)
    assert "apps/b/svc.yaml" not in [m.name for m in members(filtered)]


def test_default_exclusions_are_not_archived(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t", {**FILES, ".git/HEAD": "ref", "logo.png": "png", ".github/ci.yaml": "x"})
    assert [m.name for m in members(build_tarball(root, rules(root), None))] == sorted(FILES)


def test_header_fields_are_normalised(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    (root / "scripts/run.sh").chmod(0o700)
    (root / "app.yaml").chmod(0o600)
    data = build_tarball(root, rules(root), None)
    entries = members(data)
    assert [m.name for m in entries] == sorted(FILES)
    for m in entries:
        assert m.isreg()
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
        assert m.mode == (0o755 if m.name == "scripts/run.sh" else 0o644)
    # gzip header: magic, method, flags (no FNAME), mtime 0
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] & 0x08 == 0
    assert data[4:8] == b"\x00\x00\x00\x00"


def test_write_tarball_streams_the_same_bytes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    out = tmp_path / "out.tar.gz"
    with out.open("wb") as f:
        write_tarball(root, rules(root), f, None)
    assert out.read_bytes() == build_tarball(root, rules(root), None)
    assert digest(out) == "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest()


def test_digest_format() -> None:
    assert digest(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# ---- symlinks and limits ----------------------------------------------------------------------


def test_symlink_inside_the_tree_is_skipped(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    (root / "link.yaml").symlink_to("app.yaml")
    (root / "linkdir").symlink_to("apps")
    names = [m.name for m in members(build_tarball(root, rules(root), None))]
    assert names == sorted(FILES)


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "/"], ids=["absolute", "relative", "root"])
def test_symlink_outside_the_tree_is_refused(tmp_path: Path, target: str) -> None:
    root = make_tree(tmp_path / "t")
    (tmp_path / "outside").write_text("secret")
    (root / "apps" / "escape").symlink_to(target)
    with pytest.raises(ArtifactError, match=r"^symlink apps/escape points outside the repository$"):
        build_tarball(root, rules(root), None)


def test_ignored_symlink_outside_is_not_an_error(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    (root / "escape").symlink_to("/etc")
    assert [m.name for m in members(build_tarball(root, rules(root, "escape"), None))] == sorted(FILES)


def test_size_limit(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    total = sum(len(v) for v in FILES.values())
    build_tarball(root, rules(root), total)
    with pytest.raises(ArtifactError, match="size limit of"):
        build_tarball(root, rules(root), total - 1)


def test_missing_root_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        build_tarball(tmp_path / "nope", IgnoreRules.from_user_patterns([]), None)


# ---- safe_extract -----------------------------------------------------------------------------


def test_round_trip_from_bytes_and_from_path(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    (root / "scripts/run.sh").chmod(0o755)
    data = build_tarball(root, rules(root), None)
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(data)
    sources: list[tuple[Path | bytes, Path]] = [(data, tmp_path / "x1"), (archive, tmp_path / "x2")]
    for source, dest in sources:
        safe_extract(source, dest, max_size=1 << 20)
        assert {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()} == set(FILES)
        assert (dest / "apps/a/deploy.yaml").read_text() == FILES["apps/a/deploy.yaml"]
        assert (dest / "scripts/run.sh").stat().st_mode & 0o777 == 0o755
        assert (dest / "app.yaml").stat().st_mode & 0o777 == 0o644


def test_extract_into_existing_empty_directory(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    safe_extract(tar_gz([reg("a/b.yaml")]), dest, 100)
    assert (dest / "a/b.yaml").read_bytes() == b"x"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([reg("ok.yaml"), reg("../x")], r"archive member '\.\./x' escapes the destination"),
        ([reg("a/../../x")], r"archive member 'a/\.\./\.\./x' escapes"),
        ([reg("/abs")], r"archive member '/abs' has an absolute path"),
        ([reg("C:/win")], r"archive member 'C:/win' has an absolute path"),
        ([reg("a\\..\\b")], r"contains a backslash"),
        ([reg("ok.yaml"), special("link", tarfile.SYMTYPE, "/etc/passwd")], r"archive member 'link' is a symlink"),
        ([special("inner", tarfile.SYMTYPE, "ok.yaml")], r"'inner' is a symlink"),
        ([reg("ok.yaml"), special("hard", tarfile.LNKTYPE, "ok.yaml")], r"'hard' is a hard link"),
        ([special("dev", tarfile.CHRTYPE)], r"'dev' is a device file"),
        ([special("blk", tarfile.BLKTYPE)], r"'blk' is a device file"),
        ([special("fifo", tarfile.FIFOTYPE)], r"'fifo' is a FIFO"),
        ([reg("small", b"1" * 60), reg("big", b"2" * 60)], r"archive member 'big' exceeds the size limit of 100 bytes"),
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "drive",
        "backslash",
        "symlink-out",
        "symlink-in",
        "hardlink",
        "chardev",
        "blockdev",
        "fifo",
        "oversize",
    ],
)
def test_unsafe_members_are_refused_and_leave_nothing(
    tmp_path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]], message: str
) -> None:
    parent = tmp_path / "work"
    parent.mkdir()
    dest = parent / "dest"
    with pytest.raises(ArtifactError, match=message) as caught:
        safe_extract(tar_gz(entries), dest, max_size=100)
    assert "\n" not in str(caught.value)
    assert list(parent.iterdir()) == []  # no dest, no staging directory
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("payload", [b"not a gzip", gzip.compress(b"not a tar" * 100)], ids=["gzip", "tar"])
def test_corrupt_archives_are_refused(tmp_path: Path, payload: bytes) -> None:
    with pytest.raises(ArtifactError, match="invalid artifact archive"):
        safe_extract(payload, tmp_path / "dest", 100)
    assert list(tmp_path.iterdir()) == []


def test_non_empty_destination_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("mine")
    with pytest.raises(ArtifactError, match="is not empty"):
        safe_extract(tar_gz([reg("a")]), dest, 100)
    assert [p.name for p in dest.iterdir()] == ["keep"]


def test_safe_extract_reads_gzip_with_an_extra_header_field_as_helm_writes(tmp_path: Path) -> None:
    """Helm's chart archives carry a gzip FEXTRA field; the extractor must read them."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        body = b"apiVersion: v2\nname: app\nversion: 1.0.0\n"
        info = tarfile.TarInfo("app/Chart.yaml")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    payload = raw.getvalue()
    extra = b"+aGVsbQ==Helm"
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressed = deflate.compress(payload) + deflate.flush()
    header = b"\x1f\x8b\x08\x04" + b"\x00" * 4 + b"\x00\xff" + struct.pack("<H", len(extra)) + extra
    archive = header + compressed + struct.pack("<II", zlib.crc32(payload), len(payload))

    safe_extract(archive, tmp_path / "out", 1 << 20)
    assert (tmp_path / "out" / "app" / "Chart.yaml").read_bytes() == body
