"""Helpers of the Bucket source tests: Flux's revision computed on the test's side, and versitygw's access log.

``flux_revision`` re-derives source-controller's ``index.Digester`` digest (``"<key> <etag>\\n"`` per
key in sorted order, sha256) from an index the test builds from what it uploaded, not from
fluxwarden. ``logged_s3`` starts versitygw with its access log on, so a test counts the listings and
downloads the controller really made.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from tests.support.azurite import Azurite
from tests.support.s3_server import S3Server
from tests.support.tls import PrivateCA

USER_AGENT = "fluxwarden-source-controller"


def flux_revision(index: dict[str, str]) -> str:
    lines = "".join(f"{key} {index[key]}\n" for key in sorted(index))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def md5(data: bytes) -> str:
    """The ETag versitygw (like S3) gives a single-part object: the MD5 of its bytes, hex."""
    return hashlib.md5(data).hexdigest()


def logged_s3(log: Path, tls: PrivateCA | None = None, *, keep_alive: bool = False) -> S3Server:
    """An ``S3Server`` whose versitygw writes its access log to ``log`` (read from the environment at start)."""
    previous = os.environ.get("VGW_ACCESS_LOG")
    os.environ["VGW_ACCESS_LOG"] = str(log)
    try:
        return S3Server(tls=tls, keep_alive=keep_alive)
    finally:
        if previous is None:
            del os.environ["VGW_ACCESS_LOG"]
        else:
            os.environ["VGW_ACCESS_LOG"] = previous


@dataclass(frozen=True)
class Request:
    action: str  # s3_ListObjectsV2, s3_GetObject, s3_HeadObject...
    bucket: str
    key: str


def controller_requests(log: Path, bucket: str) -> list[Request]:
    """The requests the source controller (by its User-Agent) made for ``bucket``, in order."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if USER_AGENT not in line:
            continue
        fields = line.split()
        # <owner> <bucket> [<date> <zone>] <ip> <requester> <id> <action> <key> <uri> ...
        if len(fields) > 9 and fields[1] == bucket:
            found.append(Request(fields[7], fields[1], fields[8]))
    return found


class LoggedAzurite(Azurite):
    """Azurite with its debug log (every request: method and URL) in ``debug_log``."""

    def __init__(self, tls: PrivateCA, debug_log: Path) -> None:
        super().__init__(tls)
        self.debug_log = debug_log

    def _command(self, port: int) -> list[str]:
        return [*super()._command(port), "--debug", str(self.debug_log)]


def azure_requests(log: Path, container: str) -> list[tuple[str, str]]:
    """``(method, path)`` of the source controller's requests (by User-Agent) to ``container``, in order."""
    found = []
    marker = "BlobStorageContextMiddleware: RequestMethod="
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        if marker not in line or USER_AGENT not in line:
            continue
        method, _, rest = line.split(marker, 1)[1].partition(" RequestURL=")
        url = rest.split(" ", 1)[0]
        path = url.split("://", 1)[-1].split("/", 1)[-1]
        if path.split("?")[0].split("/")[1:2] == [container]:
            found.append((method, path))
    return found
