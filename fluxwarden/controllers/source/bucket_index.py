"""A Bucket's index: object key -> etag, Flux's revision over it, and which keys may be written to disk.

Flux's revision (source-controller ``internal/index.Digester``) is ``sha256:`` over the keys in
sorted (byte) order, each written as ``"<key> <etag>\\n"``. Pure functions; called by ``bucket``
and ``bucket_fetch``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Listed:
    """One object of a listing: its key, its etag as the index records it, its size in bytes."""

    key: str
    etag: str
    size: int


def revision(index: Mapping[str, str]) -> str:
    """Flux's ``sha256:<hex>`` of an index; the empty index gives the digest of no bytes."""
    hasher = hashlib.sha256()
    for key in sorted(index, key=lambda k: k.encode()):
        hasher.update(f"{key} {index[key]}\n".encode())
    return f"sha256:{hasher.hexdigest()}"


def local_name(key: str) -> str | None:
    """The relative ``/``-separated path an object key is written to; None when it would escape.

    Backslashes count as separators. Refused: absolute keys, ``.``/``..`` or empty segments, NUL.
    """
    if "\x00" in key:
        return None
    normalised = key.replace("\\", "/")
    parts = normalised.split("/")
    if normalised.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return None
    return normalised
