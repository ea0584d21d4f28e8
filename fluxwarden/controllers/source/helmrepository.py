"""The HelmRepository reconciler: fetch ``index.yaml``, check it, store it as the artifact.

A ``type: oci`` HelmRepository is left alone, as Flux does (:meth:`HelmRepositoryReconciler.static`):
its HelmCharts pull from the registry themselves (source/helm_oci.py).

Revision is ``sha256:<digest of the index>``; an unchanged index is neither parsed nor stored again,
and changes no status. The index streams to a temporary file (digest on the fly, at most ``max_size``
bytes) before a new one is parsed and stored. Credentials come from ``secretRef`` (basic auth) and
``certSecretRef`` (TLS).
"""

from __future__ import annotations

import shutil
import tempfile
from typing import IO, Any

import yaml

from fluxwarden.controllers.artifacts.errors import DownloadError
from fluxwarden.controllers.artifacts.http import HttpCredentials, download
from fluxwarden.controllers.runtime import conditions, unsupported
from fluxwarden.controllers.runtime.controller import Context, Success
from fluxwarden.controllers.runtime.errors import Failure, Stalling
from fluxwarden.controllers.runtime.kube import NotFound
from fluxwarden.controllers.source.api import (
    FINALIZER,
    HELM_REPOSITORY,
    HELM_REPOSITORY_UNSUPPORTED,
    HelmRepositorySpec,
    is_oci_helm_repository,
    oci_helm_repository_unsupported,
)
from fluxwarden.controllers.source.gitrepository import ARTIFACT_IN_STORAGE, FETCH_FAILED
from fluxwarden.controllers.source.storage import Storage, artifact_status

MAX_INDEX_SIZE = 50 * 1024 * 1024


def parse_index(data: bytes | IO[bytes]) -> dict[str, Any]:
    """The index as a dict; ``ValueError`` with a one-line reason when it is not a Helm index."""
    try:
        index = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ValueError(f"index.yaml is not valid YAML{where}") from None
    if not isinstance(index, dict) or not isinstance(index.get("entries"), dict):
        raise ValueError("index.yaml has no 'entries' map; it is not a Helm repository index")
    return index


def repository_credentials(ctx: Context, namespace: str, spec: HelmRepositorySpec) -> HttpCredentials:
    """Basic auth from ``secretRef``, TLS from ``certSecretRef`` (or ``secretRef``'s deprecated keys)."""

    def read(name: str) -> dict[str, bytes]:
        try:
            return ctx.kube.secret_data(namespace, name)
        except NotFound:
            raise Failure("AuthenticationFailed", f"secret '{namespace}/{name}' not found") from None

    auth = read(spec.secret_name) if spec.secret_name else None
    tls = read(spec.cert_secret_name) if spec.cert_secret_name else None
    if auth is None and tls is None:
        return HttpCredentials()
    return HttpCredentials.from_secrets(auth, tls)


class HelmRepositoryReconciler:
    name = "source-controller"
    resource = HELM_REPOSITORY
    finalizer = FINALIZER
    unsupported = HELM_REPOSITORY_UNSUPPORTED

    def __init__(self, storage: Storage, max_size: int = MAX_INDEX_SIZE) -> None:
        self.storage = storage
        self.max_size = min(max_size, MAX_INDEX_SIZE)

    def static(self, obj: dict[str, Any]) -> bool:
        """An OCI HelmRepository is data for its HelmCharts, as in Flux: no finalizer, artifact or status.

        One that sets a field fluxwarden lacks (a cloud ``provider``) is reconciled, to be Stalled for it.
        """
        return is_oci_helm_repository(obj) and oci_helm_repository_unsupported(obj) is None

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        if is_oci_helm_repository(obj) and (found := oci_helm_repository_unsupported(obj)):
            raise Stalling(unsupported.REASON, found.message)
        spec = HelmRepositorySpec.of(obj)
        meta, status = obj["metadata"], obj["status"]
        generation = meta.get("generation")
        credentials = repository_credentials(ctx, meta["namespace"], spec)
        with tempfile.TemporaryFile(prefix="fluxwarden-index-") as spool:
            try:
                got = download(spec.url + "index.yaml", spool, timeout=spec.timeout, max_size=self.max_size,
                               credentials=credentials)  # fmt: skip
            except DownloadError as exc:
                reason = "AuthenticationFailed" if exc.authentication else "IndexationFailed"
                conditions.set_condition(status, FETCH_FAILED, True, reason, exc.message, generation)
                raise Failure(reason, exc.message) from None
            revision = got.digest
            hexdigest = revision.partition(":")[2]
            message = f"stored artifact: revision '{revision}'"
            artifact = status.get("artifact") or {}
            unchanged = artifact.get("revision") == revision and self.storage.exists(artifact.get("path", ""))
            # The same bytes were parsed when they were stored: only a new index is parsed (seconds for a big one).
            if not (unchanged and status.get("observedGeneration") == generation):
                spool.seek(0)
                try:
                    parse_index(spool)
                except ValueError as exc:
                    conditions.set_condition(status, FETCH_FAILED, True, "IndexationFailed", str(exc), generation)
                    raise Failure("IndexationFailed", str(exc)) from None
                spool.seek(0)
                stored = self.storage.store_stream(
                    "HelmRepository", meta["namespace"], meta["name"], f"index-{hexdigest}.yaml",
                    lambda out: shutil.copyfileobj(spool, out, 1 << 20),
                )  # fmt: skip
                self.storage.gc("HelmRepository", meta["namespace"], meta["name"], keep=2)
                status["artifact"] = artifact_status(stored, revision)
                status["url"] = stored.url
        conditions.set_condition(status, ARTIFACT_IN_STORAGE, True, "Succeeded", message, generation)
        conditions.drop(status, FETCH_FAILED)
        return Success(message)

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        self.storage.remove_all("HelmRepository", obj["metadata"]["namespace"], obj["metadata"]["name"])
