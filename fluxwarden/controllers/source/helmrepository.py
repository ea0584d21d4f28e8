"""The HelmRepository reconciler: fetch ``index.yaml``, check it, store it as the artifact.

Revision is ``sha256:<digest of the index>``; an unchanged index stores nothing and changes no status.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from fluxwarden.controllers.runtime import conditions
from fluxwarden.controllers.runtime.controller import Context, Success
from fluxwarden.controllers.runtime.errors import Failure
from fluxwarden.controllers.runtime.kube import NotFound
from fluxwarden.controllers.source.api import (
    FINALIZER,
    HELM_REPOSITORY,
    HELM_REPOSITORY_UNSUPPORTED,
    HelmRepositorySpec,
)
from fluxwarden.controllers.source.gitrepository import ARTIFACT_IN_STORAGE, FETCH_FAILED
from fluxwarden.controllers.source.http_fetch import FetchError, HttpCredentials, fetch
from fluxwarden.controllers.source.storage import Storage, artifact_status

MAX_INDEX_SIZE = 50 * 1024 * 1024


def parse_index(data: bytes) -> dict[str, Any]:
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


def repository_credentials(ctx: Context, namespace: str, secret: str | None) -> HttpCredentials:
    if not secret:
        return HttpCredentials()
    try:
        return HttpCredentials.from_secret(ctx.kube.secret_data(namespace, secret))
    except NotFound:
        raise Failure("AuthenticationFailed", f"secret '{namespace}/{secret}' not found") from None


class HelmRepositoryReconciler:
    name = "source-controller"
    resource = HELM_REPOSITORY
    finalizer = FINALIZER
    unsupported = HELM_REPOSITORY_UNSUPPORTED

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        spec = HelmRepositorySpec.of(obj)
        meta, status = obj["metadata"], obj["status"]
        generation = meta.get("generation")
        credentials = repository_credentials(ctx, meta["namespace"], spec.secret_name)
        try:
            data = fetch(spec.url + "index.yaml", credentials, spec.timeout, MAX_INDEX_SIZE)
            parse_index(data)
        except FetchError as exc:
            reason = "AuthenticationFailed" if exc.authentication else "IndexationFailed"
            conditions.set_condition(status, FETCH_FAILED, True, reason, exc.message, generation)
            raise Failure(reason, exc.message) from None
        except ValueError as exc:
            conditions.set_condition(status, FETCH_FAILED, True, "IndexationFailed", str(exc), generation)
            raise Failure("IndexationFailed", str(exc)) from None
        hexdigest = hashlib.sha256(data).hexdigest()
        revision = f"sha256:{hexdigest}"
        message = f"stored artifact: revision '{revision}'"
        artifact = status.get("artifact") or {}
        unchanged = artifact.get("revision") == revision and self.storage.exists(artifact.get("path", ""))
        if not (unchanged and status.get("observedGeneration") == generation):
            stored = self.storage.store(
                "HelmRepository", meta["namespace"], meta["name"], f"index-{hexdigest}.yaml", data
            )
            self.storage.gc("HelmRepository", meta["namespace"], meta["name"], keep=2)
            status["artifact"] = artifact_status(stored, revision)
            status["url"] = stored.url
        conditions.set_condition(status, ARTIFACT_IN_STORAGE, True, "Succeeded", message, generation)
        conditions.drop(status, FETCH_FAILED)
        return Success(message)

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        self.storage.remove_all("HelmRepository", obj["metadata"]["namespace"], obj["metadata"]["name"])
