"""Download a Bucket's indexed objects into a directory: concurrently, streamed, bounded in size and time.

A bounded thread pool (``concurrency`` workers, at most twice as many downloads queued) streams each
object straight to its file, so memory stays at a few chunks per worker whatever the bucket holds.
The keys were checked by ``bucket_index.local_name`` before anything is written. Called by
``bucket.BucketReconciler``; every failure is a ``BucketError`` naming the object.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from fluxwarden.controllers.source.bucket_client import BucketClient, BucketError, ObjectGone, TooLarge
from fluxwarden.controllers.source.bucket_index import Listed

DEFAULT_CONCURRENCY = 8


_FIX = "exclude it with spec.prefix or spec.ignore, or raise the limit"


def object_too_large(bucket: str, key: str, max_size: int, size: int | None = None) -> BucketError:
    """The error for one object bigger than ``--max-source-size`` (``size`` from the listing, if known)."""
    what = f"is {size} bytes," if size is not None else "is"
    return BucketError(
        f"object '{key}' of bucket '{bucket}' {what} over the source size limit of {max_size} bytes "
        f"(--max-source-size); {_FIX}"
    )


def total_too_large(bucket: str, total: int, max_size: int) -> BucketError:
    return BucketError(
        f"the objects of bucket '{bucket}' total {total} bytes, over the source size limit of {max_size} bytes "
        "(--max-source-size); exclude objects with spec.prefix or spec.ignore, or raise the limit"
    )


class Fetcher:
    def __init__(self, client: BucketClient, bucket: str, root: Path, max_size: int, deadline: float,
                 concurrency: int = DEFAULT_CONCURRENCY) -> None:  # fmt: skip
        self.client = client
        self.bucket = bucket
        self.root = root
        self.max_size = max_size
        self.deadline = deadline
        self.concurrency = max(1, concurrency)
        self._lock = threading.Lock()
        self._total = 0

    def fetch(self, entries: Mapping[str, tuple[Listed, str]]) -> dict[str, str]:
        """Download ``{key: (listed, local name)}``; the index after it (etags as got, gone objects dropped)."""
        index: dict[str, str] = {}
        pending: set[Future[tuple[str, str | None]]] = set()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="bucket-fetch") as pool:
            try:
                for listed, name in entries.values():
                    if len(pending) >= 2 * self.concurrency:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        self._collect(done, index)
                    self._check_deadline()
                    pending.add(pool.submit(self._one, listed, name))
                done, pending = wait(pending)
                self._collect(done, index)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return index

    def _collect(self, done: set[Future[tuple[str, str | None]]], index: dict[str, str]) -> None:
        for future in done:
            key, etag = future.result()  # re-raises a worker's BucketError
            if etag is not None:
                index[key] = etag

    def _check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise BucketError(f"fetching from bucket '{self.bucket}' exceeded spec.timeout; raise spec.timeout")

    def _one(self, listed: Listed, name: str) -> tuple[str, str | None]:
        self._check_deadline()
        path = self.root / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("xb") as out:
                etag = self.client.download(listed.key, out, self.max_size)
                size = out.tell()
        except ObjectGone:
            path.unlink(missing_ok=True)
            return listed.key, None  # deleted since the listing: not in the artifact, as Flux
        except TooLarge:
            path.unlink(missing_ok=True)
            raise object_too_large(self.bucket, listed.key, self.max_size) from None
        except OSError as exc:
            raise BucketError(
                f"cannot write object '{listed.key}' of bucket '{self.bucket}': {exc.strerror or exc} "
                "(a key that is also a prefix of other keys?); rename it or exclude it with spec.ignore"
            ) from None
        with self._lock:
            self._total += size
            total = self._total
        if total > self.max_size:
            raise total_too_large(self.bucket, total, self.max_size)
        return listed.key, etag
