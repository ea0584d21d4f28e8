"""What the Bucket reconciler asks of a storage service, whatever the provider, and how it fails.

Implemented by ``bucket_s3.S3Bucket`` (generic, aws, gcp with static keys) and
``bucket_azure.AzureBucket``. Every error carries a one-line message with no credential in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import IO, Protocol

from fluxwarden.controllers.source.bucket_index import Listed

CHUNK = 1 << 16  # what one download holds in memory at a time


class BucketError(Exception):
    """Listing or fetching failed; ``message`` is one line, without credentials."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())


class ObjectGone(Exception):
    """The object was listed but is not there any more (deleted between listing and download)."""


class TooLarge(Exception):
    """The object is bigger than the bytes it was allowed."""


class BucketClient(Protocol):
    def list(self, prefix: str) -> Iterator[Listed]:
        """Every object under ``prefix``, all pages; the etag as Flux's index records it."""
        ...

    def head(self, key: str) -> str | None:
        """The index etag of ``key``, None when there is no such object (no body is fetched)."""
        ...

    def download(self, key: str, out: IO[bytes], max_size: int) -> str:
        """Stream the object into ``out`` in ``CHUNK``s, at most ``max_size`` bytes; return its index etag."""
        ...

    def close(self) -> None: ...


def copy_limited(chunks: Iterable[bytes], out: IO[bytes], max_size: int) -> int:
    """Write ``chunks`` to ``out``; ``TooLarge`` as soon as more than ``max_size`` bytes came."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_size:
            raise TooLarge()
        out.write(chunk)
    return total


_SIGNATURE = re.compile(r"(?i)(sig|signature|x-amz-signature|x-amz-credential|se|skoid|sktid)=[^&\s'\"]+")


def mask(text: str, secrets: Iterable[bytes | str]) -> str:
    """``text`` with every secret value and every URL signature replaced by ``***``."""
    for secret in secrets:
        value = secret.decode(errors="replace") if isinstance(secret, bytes) else secret
        if len(value) >= 4:
            text = text.replace(value, "***")
    return _SIGNATURE.sub(lambda m: f"{m.group(1)}=***", text)
