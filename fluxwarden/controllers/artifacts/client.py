"""Fetch an artifact: download it to a temporary file, check its digest, unpack it safely.

Owns the consumer side of the artifact contract (CONTROLLERS.md, kustomize controller: "fetch the
artifact, verify its digest, unpack"). Called by the kustomize reconciler (through
``kustomize.fetch``) and by any later consumer. The download streams to disk, so memory does not
grow with the artifact; ``max_size`` bounds both the bytes downloaded and the unpacked contents.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fluxwarden.controllers.artifacts.errors import ArtifactError, DownloadError, FetchError
from fluxwarden.controllers.artifacts.http import download
from fluxwarden.controllers.artifacts.scrub import scrub
from fluxwarden.controllers.artifacts.unpack import safe_extract

_ALGORITHM = "sha256"
_SHOWN = 12  # hex characters of a digest shown in messages: enough to tell two apart


def fetch_artifact(url: str, expected_digest: str, dest: Path, max_size: int, timeout: float) -> None:
    """GET ``url`` (at most ``max_size`` bytes), check it is ``expected_digest``, unpack it into ``dest``.

    ``dest`` must be absent or an empty directory; on any error nothing is left in it.
    """
    algorithm, _, expected_hex = expected_digest.strip().partition(":")
    if algorithm != _ALGORITHM or not expected_hex:
        raise FetchError(f"unsupported artifact digest '{expected_digest[:24]}': expected sha256:<hex>")
    with tempfile.TemporaryFile(prefix="fluxwarden-artifact-") as spool:
        try:
            # Artifacts are served anonymously over plain HTTP by the source controller.
            got = download(url, spool, timeout=timeout, max_size=max_size)
        except DownloadError as exc:
            raise FetchError(f"cannot fetch artifact: {exc.message}") from None
        actual_hex = got.digest.partition(":")[2]
        if actual_hex != expected_hex.lower():
            raise FetchError(
                f"artifact digest mismatch for {scrub(url)}: expected {_ALGORITHM}:{expected_hex[:_SHOWN]}..., "
                f"got {_ALGORITHM}:{actual_hex[:_SHOWN]}..."
            )
        try:
            safe_extract(spool, dest, max_size)
        except ArtifactError as exc:
            raise FetchError(f"cannot unpack artifact from {scrub(url)}: {exc}") from None
