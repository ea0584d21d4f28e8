"""Fetch a Kustomization's source artifact: download it, check its digest, unpack it safely.

Owns the consumer side of the artifact contract (CONTROLLERS.md, kustomize controller: "fetch the
artifact, verify its digest, unpack"). Called by the kustomize reconciler before ``build.build``.
The download goes through the bounded client of ``source.http_fetch`` and the unpacking through
``source.artifact.safe_extract``; their failures become one ``FetchError`` with a one-line message.
"""

from __future__ import annotations

from pathlib import Path

from fluxwarden.controllers.source.artifact import ArtifactError, digest, safe_extract
from fluxwarden.controllers.source.git import scrub
from fluxwarden.controllers.source.http_fetch import FetchError as HttpFetchError
from fluxwarden.controllers.source.http_fetch import HttpCredentials, fetch

_ALGORITHM = "sha256"
_SHOWN = 12  # hex characters of a digest shown in messages: enough to tell two apart


class FetchError(Exception):
    """The artifact could not be downloaded, did not match its digest, or could not be unpacked."""


def fetch_artifact(url: str, expected_digest: str, dest: Path, max_size: int, timeout: float) -> None:
    """GET ``url`` (at most ``max_size`` bytes), check it is ``expected_digest``, unpack it into ``dest``.

    ``dest`` must be absent or an empty directory; on any error nothing is left in it. ``max_size``
    bounds both the download and the unpacked contents.
    """
    algorithm, _, expected_hex = expected_digest.strip().partition(":")
    if algorithm != _ALGORITHM or not expected_hex:
        raise FetchError(f"unsupported artifact digest '{expected_digest[:24]}': expected sha256:<hex>")
    try:
        # Artifacts are served anonymously over plain HTTP by the source controller.
        data = fetch(url, HttpCredentials(), timeout, max_size)
    except HttpFetchError as exc:
        raise FetchError(f"cannot fetch artifact: {exc.message}") from None
    actual_hex = digest(data).partition(":")[2]
    if actual_hex != expected_hex.lower():
        raise FetchError(
            f"artifact digest mismatch for {scrub(url)}: expected {_ALGORITHM}:{expected_hex[:_SHOWN]}..., "
            f"got {_ALGORITHM}:{actual_hex[:_SHOWN]}..."
        )
    try:
        safe_extract(data, dest, max_size)
    except ArtifactError as exc:
        raise FetchError(f"cannot unpack artifact from {scrub(url)}: {exc}") from None
