"""The Bucket reconciler: list an S3 bucket or Azure container, index it, fetch it, store the artifact.

Steps, in order, each raising a reconcile error on failure:
``client`` (provider and credentials; what needs a token service is Stalled ``UnsupportedField``) ->
``list`` (one listing; ``.sourceignore`` read only when its etag changed) -> ``index`` (ignore rules,
key and size checks, Flux's revision from the listing alone: unchanged -> done, nothing downloaded,
no status written) -> ``fetch`` (concurrent, streamed to disk) -> ``archive`` (the same tar.gz as a
GitRepository's, streamed into storage).

Flux's conditions: a failed listing or download is ``FetchFailed``/Ready=False ``BucketOperationFailed``;
a missing or incomplete Secret ``AuthenticationFailed``; a failed archive ``ArchiveOperationFailed``.
"""

from __future__ import annotations

import io
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fluxwarden.controllers.artifacts.errors import ArtifactError
from fluxwarden.controllers.runtime import conditions, unsupported
from fluxwarden.controllers.runtime.controller import Context, Success
from fluxwarden.controllers.runtime.errors import Failure, Stalling
from fluxwarden.controllers.runtime.kube import NotFound
from fluxwarden.controllers.source.api import BUCKET, FINALIZER
from fluxwarden.controllers.source.artifact import write_tarball
from fluxwarden.controllers.source.bucket_api import BUCKET_UNSUPPORTED, BucketSpec
from fluxwarden.controllers.source.bucket_client import BucketClient, BucketError, TooLarge
from fluxwarden.controllers.source.bucket_fetch import DEFAULT_CONCURRENCY, Fetcher, object_too_large, total_too_large
from fluxwarden.controllers.source.bucket_index import Listed, local_name, revision
from fluxwarden.controllers.source.bucket_providers import make_client
from fluxwarden.controllers.source.gitrepository import (
    ARTIFACT_IN_STORAGE,
    ARTIFACT_OUTDATED,
    DEFAULT_MAX_SIZE,
    FETCH_FAILED,
)
from fluxwarden.controllers.source.ignore import IGNORE_FILE, IgnoreRules, pattern_lines
from fluxwarden.controllers.source.storage import Storage, StoredArtifact, artifact_status

BUCKET_OPERATION_FAILED = "BucketOperationFailed"
MAX_IGNORE_FILE = 1 << 20


@dataclass(frozen=True)
class Index:
    """The objects to fetch (``{key: (listed, local name)}``), their revision, and the ``.sourceignore`` text."""

    entries: dict[str, tuple[Listed, str]]
    revision: str
    sourceignore: str | None


class BucketReconciler:
    name = "source-controller"
    resource = BUCKET
    finalizer = FINALIZER
    unsupported = BUCKET_UNSUPPORTED

    def __init__(
        self, storage: Storage, max_size: int = DEFAULT_MAX_SIZE, concurrency: int = DEFAULT_CONCURRENCY
    ) -> None:
        self.storage = storage
        self.max_size = max_size
        self.concurrency = concurrency
        # (namespace, name) -> (etag, text) of the root .sourceignore last read: a no-op downloads nothing.
        self._ignore_files: dict[tuple[str, str], tuple[str, str]] = {}
        self._lock = threading.Lock()

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        spec = BucketSpec.of(obj)
        meta, status = obj["metadata"], obj["status"]
        deadline = time.monotonic() + spec.timeout
        client = self._client(ctx, obj, spec)
        try:
            index = self._index(client, spec, meta, status)
            message = f"stored artifact: revision '{index.revision}'"
            if self._up_to_date(status, index.revision):
                conditions.drop(status, ARTIFACT_OUTDATED)
                conditions.drop(status, FETCH_FAILED)
                return Success(message)
            if status.get("artifact"):
                conditions.set_condition(
                    status, ARTIFACT_OUTDATED, True, "NewRevision", f"new upstream revision '{index.revision}'",
                    meta.get("generation"),
                )  # fmt: skip
            with tempfile.TemporaryDirectory(prefix="fluxwarden-bucket-") as scratch:
                workdir = Path(scratch) / "objects"
                workdir.mkdir()
                fetcher = Fetcher(client, spec.bucket_name, workdir, self.max_size, deadline, self.concurrency)
                try:
                    got = fetcher.fetch(index.entries)
                except BucketError as exc:
                    raise self._failed(status, meta, BUCKET_OPERATION_FAILED, exc.message) from None
                current = revision(got)  # an object replaced between listing and download has its new etag
                message = f"stored artifact: revision '{current}'"
                if not self._up_to_date(status, current):
                    if index.sourceignore is not None:  # Flux fetches it into the directory it archives
                        (workdir / IGNORE_FILE).write_text(index.sourceignore, encoding="utf-8")
                    stored = self._archive(workdir, meta, f"{current.removeprefix('sha256:')}.tar.gz")
                    self.storage.gc("Bucket", meta["namespace"], meta["name"], keep=2, current=stored.path)
                    status["artifact"] = artifact_status(stored, current)
                    status["url"] = stored.url
                    if spec.ignore is not None:
                        status["observedIgnore"] = spec.ignore
                    else:
                        status.pop("observedIgnore", None)
        finally:
            client.close()
        conditions.set_condition(status, ARTIFACT_IN_STORAGE, True, "Succeeded", message, meta.get("generation"))
        conditions.drop(status, ARTIFACT_OUTDATED)
        conditions.drop(status, FETCH_FAILED)
        return Success(message)

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        with self._lock:
            self._ignore_files.pop((meta["namespace"], meta["name"]), None)
        self.storage.remove_all("Bucket", meta["namespace"], meta["name"])

    # ---- steps ----------------------------------------------------------------------------------------

    def _client(self, ctx: Context, obj: dict[str, Any], spec: BucketSpec) -> BucketClient:
        meta = obj["metadata"]
        namespace = meta["namespace"]
        secret = self._secret(ctx, obj, spec.secret_name, "spec.secretRef")
        tls = self._secret(ctx, obj, spec.cert_secret_name, "spec.certSecretRef")
        try:
            return make_client(spec, namespace, secret, tls, self.concurrency)
        except BucketError as exc:  # the credentials cannot work as given (Flux: AuthenticationFailed)
            raise self._failed(obj["status"], meta, "AuthenticationFailed", exc.message) from None
        except Stalling as exc:
            if exc.reason == unsupported.REASON:
                raise
            conditions.set_condition(obj["status"], FETCH_FAILED, True, exc.reason, exc.message, meta.get("generation"))
            raise

    def _secret(self, ctx: Context, obj: dict[str, Any], name: str | None, field: str) -> dict[str, bytes] | None:
        if not name:
            return None
        namespace = obj["metadata"]["namespace"]
        try:
            return ctx.kube.secret_data(namespace, name)
        except NotFound:
            message = f"secret '{namespace}/{name}' not found; create it or fix {field}"
            raise self._failed(obj["status"], obj["metadata"], "AuthenticationFailed", message) from None

    def _index(self, client: BucketClient, spec: BucketSpec, meta: dict[str, Any], status: dict[str, Any]) -> Index:
        """One listing, the ignore rules, the checks; Flux's revision before any download."""
        try:
            listed = list(client.list(spec.prefix))
            sourceignore = self._sourceignore(client, spec, meta, listed)
        except BucketError as exc:
            raise self._failed(status, meta, BUCKET_OPERATION_FAILED, exc.message) from None
        patterns = pattern_lines(sourceignore or "") + pattern_lines(spec.ignore or "")
        rules = IgnoreRules(tuple(patterns))  # Flux's bucket index has no default exclusions
        entries: dict[str, tuple[Listed, str]] = {}
        names: dict[str, str] = {}
        total = 0
        for item in listed:
            if item.key.endswith("/") or item.key == IGNORE_FILE or rules.ignored(item.key, is_dir=False):
                continue
            name = local_name(item.key)
            problem: BucketError | None = None
            if name is None:
                problem = BucketError(
                    f"object key '{item.key}' of bucket '{spec.bucket_name}' escapes the artifact directory; "
                    "nothing was written: delete or rename the object, or exclude it with spec.ignore"
                )
            elif name in names:
                problem = BucketError(
                    f"object keys '{names[name]}' and '{item.key}' of bucket '{spec.bucket_name}' name the same "
                    "file; delete or rename one, or exclude it with spec.ignore"
                )
            elif item.size > self.max_size:
                problem = object_too_large(spec.bucket_name, item.key, self.max_size, item.size)
            if problem is not None:
                raise self._failed(status, meta, BUCKET_OPERATION_FAILED, problem.message)
            assert name is not None
            names[name] = item.key
            total += item.size
            entries[item.key] = (item, name)
        if total > self.max_size:
            problem = total_too_large(spec.bucket_name, total, self.max_size)
            raise self._failed(status, meta, BUCKET_OPERATION_FAILED, problem.message)
        return Index(entries, revision({k: v[0].etag for k, v in entries.items()}), sourceignore)

    def _sourceignore(
        self, client: BucketClient, spec: BucketSpec, meta: dict[str, Any], listed: list[Listed]
    ) -> str | None:
        """The root ``.sourceignore``: from the listing's etag (or a HEAD when the prefix hides it), read again
        only when that etag changed."""
        if IGNORE_FILE.startswith(spec.prefix):
            etag = next((i.etag for i in listed if i.key == IGNORE_FILE), None)
        else:
            etag = client.head(IGNORE_FILE)
        key = (meta["namespace"], meta["name"])
        with self._lock:
            if etag is None:
                self._ignore_files.pop(key, None)
                return None
            cached = self._ignore_files.get(key)
        if cached is not None and cached[0] == etag:
            return cached[1]
        buffer = io.BytesIO()
        try:
            client.download(IGNORE_FILE, buffer, MAX_IGNORE_FILE)
        except TooLarge:
            raise BucketError(
                f"'{IGNORE_FILE}' of bucket '{spec.bucket_name}' is over {MAX_IGNORE_FILE} bytes; shorten it"
            ) from None
        text = buffer.getvalue().decode("utf-8", errors="replace")
        with self._lock:
            self._ignore_files[key] = (etag, text)
        return text

    def _up_to_date(self, status: dict[str, Any], current: str) -> bool:
        """The stored artifact has this revision and its file is still in storage."""
        artifact = status.get("artifact") or {}
        return artifact.get("revision") == current and self.storage.exists(artifact.get("path", ""))

    def _archive(self, workdir: Path, meta: dict[str, Any], filename: str) -> StoredArtifact:
        try:
            return self.storage.store_stream(
                "Bucket", meta["namespace"], meta["name"], filename,
                lambda out: write_tarball(workdir, IgnoreRules(()), out, self.max_size),
            )  # fmt: skip
        except ArtifactError as exc:
            raise Failure("ArchiveOperationFailed", str(exc)) from None

    def _failed(self, status: dict[str, Any], meta: dict[str, Any], reason: str, message: str) -> Failure:
        failure = Failure(reason, message)
        conditions.set_condition(status, FETCH_FAILED, True, reason, failure.message, meta.get("generation"))
        return failure
