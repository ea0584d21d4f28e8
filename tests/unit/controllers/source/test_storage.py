"""Artifact storage: layout, atomic writes, retention, removal, status, and the HTTP file server."""

from __future__ import annotations

import contextlib
import http.client
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from fluxwarden.controllers.source.artifact import digest
from fluxwarden.controllers.source.storage import (
    STALE_TEMP_SECONDS,
    ArtifactServer,
    Storage,
    StoredArtifact,
    artifact_status,
)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(tmp_path / "data", "http://source-controller.flux-system.svc.cluster.local./")


def test_store_layout_url_digest_and_size(storage: Storage) -> None:
    stored = storage.store("GitRepository", "team-a", "app", "abc.tar.gz", b"payload")
    assert stored == StoredArtifact(
        path="gitrepository/team-a/app/abc.tar.gz",
        url="http://source-controller.flux-system.svc.cluster.local./gitrepository/team-a/app/abc.tar.gz",
        digest=digest(b"payload"),
        size=7,
    )
    local = storage.root / "gitrepository/team-a/app/abc.tar.gz"
    assert local.read_bytes() == b"payload"
    assert local.stat().st_mode & 0o777 == 0o644
    assert storage.exists(stored.path)
    assert [p.name for p in local.parent.iterdir()] == ["abc.tar.gz"]  # no temporary file left


def test_store_stream_failure_leaves_nothing(storage: Storage) -> None:
    def fail(out: object) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        storage.store_stream("GitRepository", "ns", "app", "x.tar.gz", fail)
    assert list((storage.root / "gitrepository/ns/app").iterdir()) == []


def test_store_replaces_atomically(storage: Storage) -> None:
    storage.store("HelmRepository", "ns", "repo", "index.yaml", b"old")
    stored = storage.store("HelmRepository", "ns", "repo", "index.yaml", b"new")
    assert storage.local_path(stored.path).read_bytes() == b"new"


@pytest.mark.parametrize(
    ("kind", "namespace", "name", "filename"),
    [
        ("GitRepository", "..", "app", "a.tar.gz"),
        ("GitRepository", "ns", "a/b", "a.tar.gz"),
        ("GitRepository", "ns", "app", "../../x"),
        ("GitRepository", "ns", "", "a.tar.gz"),
        ("Git\\Repository", "ns", "app", "a"),
    ],
)
def test_path_segments_are_checked(storage: Storage, kind: str, namespace: str, name: str, filename: str) -> None:
    with pytest.raises(ValueError, match="invalid artifact path segment"):
        storage.store(kind, namespace, name, filename, b"x")


@pytest.mark.parametrize("path", ["", "../etc/passwd", "/etc/passwd", "a//b", "a/./b", "a\\b"])
def test_exists_refuses_odd_paths(storage: Storage, path: str) -> None:
    assert not storage.exists(path)
    with pytest.raises(ValueError):
        storage.local_path(path)


def test_exists_ignores_directories_and_missing_files(storage: Storage) -> None:
    stored = storage.store("GitRepository", "ns", "app", "a.tar.gz", b"x")
    assert not storage.exists("gitrepository/ns/app")
    assert not storage.exists(stored.path + ".missing")


def _store_at(storage: Storage, filename: str, mtime: float) -> str:
    stored = storage.store("GitRepository", "ns", "app", filename, filename.encode())
    os.utime(storage.local_path(stored.path), (mtime, mtime))
    return stored.path


def test_gc_keeps_the_two_newest(storage: Storage) -> None:
    now = time.time()
    paths = [_store_at(storage, f"{i}.tar.gz", now - 100 + i) for i in range(5)]
    deleted = storage.gc("GitRepository", "ns", "app", keep=2)
    assert deleted == sorted(paths[:3])
    assert [storage.exists(p) for p in paths] == [False, False, False, True, True]
    assert storage.gc("GitRepository", "ns", "app") == []


def test_gc_always_keeps_current(storage: Storage) -> None:
    now = time.time()
    old = _store_at(storage, "old.tar.gz", now - 1000)  # e.g. a revision stored again with an old mtime
    newer = [_store_at(storage, f"n{i}.tar.gz", now - i) for i in range(3)]
    storage.gc("GitRepository", "ns", "app", keep=2, current=old)
    assert storage.exists(old)
    assert [storage.exists(p) for p in newer] == [True, False, False]


def test_gc_removes_only_stale_temporary_files(storage: Storage) -> None:
    storage.store("GitRepository", "ns", "app", "a.tar.gz", b"x")
    directory = storage.root / "gitrepository/ns/app"
    stale, fresh = directory / ".crashed.tmp", directory / ".writing.tmp"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    old = time.time() - STALE_TEMP_SECONDS - 10
    os.utime(stale, (old, old))
    assert storage.gc("GitRepository", "ns", "app") == ["gitrepository/ns/app/.crashed.tmp"]
    assert fresh.exists()


def test_gc_and_remove_all_on_missing_object(storage: Storage) -> None:
    assert storage.gc("GitRepository", "ns", "none") == []
    assert storage.remove_all("GitRepository", "ns", "none") is False


def test_remove_all(storage: Storage) -> None:
    storage.store("GitRepository", "ns", "app", "a.tar.gz", b"x")
    other = storage.store("GitRepository", "ns", "other", "a.tar.gz", b"x")
    assert storage.remove_all("GitRepository", "ns", "app") is True
    assert not (storage.root / "gitrepository/ns/app").exists()
    assert storage.exists(other.path)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2024, 5, 1, 12, 30, 45, 999999, tzinfo=UTC), "2024-05-01T12:30:45Z"),
        (datetime(2024, 5, 1, 14, 30, 45, tzinfo=timezone(timedelta(hours=2))), "2024-05-01T12:30:45Z"),
    ],
)
def test_artifact_status(now: datetime, expected: str) -> None:
    stored = StoredArtifact(
        "gitrepository/ns/app/abc.tar.gz", "http://h/gitrepository/ns/app/abc.tar.gz", "sha256:00", 3
    )
    assert artifact_status(stored, "main@sha1:abc", now) == {
        "path": stored.path,
        "url": stored.url,
        "revision": "main@sha1:abc",
        "digest": "sha256:00",
        "size": 3,
        "lastUpdateTime": expected,
    }


def test_artifact_status_defaults_to_now() -> None:
    stamp = artifact_status(StoredArtifact("p", "u", "d", 0), "r")["lastUpdateTime"]
    parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 5


# ---- ArtifactServer ---------------------------------------------------------------------------


@pytest.fixture
def server(storage: Storage, tmp_path: Path) -> Iterator[ArtifactServer]:
    storage.store("GitRepository", "ns", "app", "abc.tar.gz", b"tarball-bytes")
    (tmp_path / "secret.txt").write_text("outside the storage root")
    with ArtifactServer(storage, "127.0.0.1", 0) as running:
        yield running


def request(server: ArtifactServer, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
    """Send ``target`` verbatim (no client-side normalisation of dots or escapes)."""
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)) as conn:
        conn.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_server_serves_a_stored_file(server: ArtifactServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}" and server.port != 0
    status, headers, body = request(server, "GET", "/gitrepository/ns/app/abc.tar.gz")
    assert (status, body) == (200, b"tarball-bytes")
    assert headers["content-length"] == str(len(b"tarball-bytes"))
    assert headers["content-type"] == "application/gzip"


def test_server_head_has_headers_and_no_body(server: ArtifactServer) -> None:
    status, headers, body = request(server, "HEAD", "/gitrepository/ns/app/abc.tar.gz")
    assert (status, body, headers["content-length"]) == (200, b"", "13")


@pytest.mark.parametrize(
    "target",
    [
        "/../../etc/passwd",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/%2e%2e/etc/passwd",
        "/gitrepository/ns/app/%2e%2e/%2e%2e/%2e%2e/../secret.txt",
        "/gitrepository/..%2f..%2f..%2fsecret.txt",
        "/gitrepository%5c..%5c..%5csecret.txt",
        "/gitrepository/ns/app/abc.tar.gz%00",
        "/gitrepository/ns/app/",
        "/gitrepository",
        "/",
        "/gitrepository/ns/app/missing.tar.gz",
        "/gitrepository/ns/app/.hidden.tmp",
    ],
)
def test_server_refuses_traversal_listings_and_missing(server: ArtifactServer, target: str) -> None:
    status, _, body = request(server, "GET", target)
    assert status == 404
    assert b"outside the storage root" not in body and b"root:" not in body


def test_server_does_not_follow_symlinks_out_of_the_root(
    storage: Storage, server: ArtifactServer, tmp_path: Path
) -> None:
    (storage.root / "gitrepository/ns/app/leak").symlink_to(tmp_path / "secret.txt")
    assert request(server, "GET", "/gitrepository/ns/app/leak")[0] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_server_is_read_only(server: ArtifactServer, method: str) -> None:
    status, headers, _ = request(server, method, "/gitrepository/ns/app/abc.tar.gz")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert server.storage.exists("gitrepository/ns/app/abc.tar.gz")


def test_server_stop_releases_the_port(storage: Storage) -> None:
    running = ArtifactServer(storage)
    running.start()
    running.start()  # idempotent
    port = running.port
    running.stop()
    running.stop()
    with pytest.raises(OSError), contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=2)) as conn:
        conn.request("GET", "/")
