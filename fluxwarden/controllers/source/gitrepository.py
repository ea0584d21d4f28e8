"""The GitRepository reconciler: resolve the ref, check it out, archive it, store the artifact.

Steps, in order, each raising a reconcile error on failure:
``credentials`` -> ``resolve`` (ls-remote; unchanged revision and spec: done, no checkout) ->
``checkout`` (shallow; the download, the tree and the archive each bounded by ``max_size``) ->
``archive`` (ignore rules, deterministic tar.gz streamed into storage, digest on the fly).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fluxwarden.controllers.artifacts.errors import ArtifactError
from fluxwarden.controllers.runtime import conditions
from fluxwarden.controllers.runtime.controller import Context, Success
from fluxwarden.controllers.runtime.errors import Failure, Stalling
from fluxwarden.controllers.runtime.kube import NotFound
from fluxwarden.controllers.source.api import (
    DEFAULT_BRANCH,
    FINALIZER,
    GIT_REPOSITORY,
    GIT_REPOSITORY_UNSUPPORTED,
    GitRef,
    GitRepositorySpec,
)
from fluxwarden.controllers.source.artifact import write_tarball
from fluxwarden.controllers.source.git import Credentials, Git, GitError
from fluxwarden.controllers.source.ignore import IgnoreRules
from fluxwarden.controllers.source.storage import Storage, StoredArtifact, artifact_status
from fluxwarden.controllers.source.versions import best_match

ARTIFACT_IN_STORAGE = "ArtifactInStorage"
ARTIFACT_OUTDATED = "ArtifactOutdated"
FETCH_FAILED = "FetchFailed"
DEFAULT_MAX_SIZE = 512 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    """What a ref resolved to: the ref to fetch, the commit, and the revision string Flux reports."""

    fetch: str
    commit: str
    label: str | None
    shallow: bool = True

    @property
    def revision(self) -> str:
        return f"{self.label}@sha1:{self.commit}" if self.label else f"sha1:{self.commit}"


def resolve(git: Git, ref: GitRef) -> Target:
    """Apply Flux's precedence (commit > name > semver > tag > branch) against the remote's refs."""
    if ref.commit:
        fetch = f"refs/heads/{ref.branch}" if ref.branch else "HEAD"
        return Target(fetch, ref.commit, ref.branch, shallow=False)
    if ref.name:
        refs = git.ls_remote(ref.name, f"{ref.name}^{{}}")  # an annotated tag peels to its commit
        sha = refs.get(f"{ref.name}^{{}}") or refs.get(ref.name)
        if not sha:
            raise GitError(f"ref '{ref.name}' not found")
        return Target(ref.name, sha, ref.name)
    if ref.semver:
        tags = _tags(git.ls_remote("refs/tags/*"))
        try:
            chosen = best_match(ref.semver, tags)
        except ValueError as exc:
            raise Stalling("InvalidSpec", f"spec.ref.semver: {exc}") from None
        if chosen is None:
            raise GitError(f"no tag matches semver range '{ref.semver}'")
        return Target(f"refs/tags/{chosen}", tags[chosen], chosen)
    if ref.tag:
        refs = git.ls_remote(f"refs/tags/{ref.tag}", f"refs/tags/{ref.tag}^{{}}")
        sha = refs.get(f"refs/tags/{ref.tag}^{{}}") or refs.get(f"refs/tags/{ref.tag}")
        if not sha:
            raise GitError(f"tag '{ref.tag}' not found")
        return Target(f"refs/tags/{ref.tag}", sha, ref.tag)
    branch = ref.branch or DEFAULT_BRANCH
    sha = git.ls_remote(f"refs/heads/{branch}").get(f"refs/heads/{branch}")
    if not sha:
        raise GitError(f"branch '{branch}' not found")
    return Target(f"refs/heads/{branch}", sha, branch)


def _tags(refs: dict[str, str]) -> dict[str, str]:
    """``{tag: commit}``, peeling annotated tags to the commit they point to."""
    tags: dict[str, str] = {}
    for name, sha in refs.items():
        if not name.startswith("refs/tags/"):
            continue
        tag = name.removeprefix("refs/tags/")
        if tag.endswith("^{}"):
            tags[tag[:-3]] = sha
        else:
            tags.setdefault(tag, sha)
    return tags


class GitRepositoryReconciler:
    name = "source-controller"
    resource = GIT_REPOSITORY
    finalizer = FINALIZER
    unsupported = GIT_REPOSITORY_UNSUPPORTED

    def __init__(self, storage: Storage, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.storage = storage
        self.max_size = max_size

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        spec = GitRepositorySpec.of(obj)
        meta, status = obj["metadata"], obj["status"]
        git = Git(spec.url, self._credentials(ctx, obj, spec), spec.timeout)
        target = self._fetch(git, spec, status, meta)
        if self._up_to_date(obj, target):
            conditions.drop(status, ARTIFACT_OUTDATED)
            return Success(f"stored artifact for revision '{target.revision}'")
        conditions.set_condition(
            status, ARTIFACT_OUTDATED, True, "NewRevision", f"new upstream revision '{target.revision}'",
            meta.get("generation"),
        )  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="fluxwarden-git-") as scratch:
            workdir = Path(scratch) / "repo"
            commit = self._checkout(git, target, workdir, status, meta)
            if commit != target.commit:  # the branch moved between ls-remote and fetch
                target = Target(target.fetch, commit, target.label, target.shallow)
            stored = self._archive(workdir, spec, meta, f"{target.commit}.tar.gz")
        self.storage.gc("GitRepository", meta["namespace"], meta["name"], keep=2)
        status["artifact"] = artifact_status(stored, target.revision)
        status.pop("url", None)  # Flux's GitRepository v1 has no status.url (v1beta2 had), only artifact.url
        message = f"stored artifact for revision '{target.revision}'"
        conditions.set_condition(status, ARTIFACT_IN_STORAGE, True, "Succeeded", message, meta.get("generation"))
        conditions.drop(status, ARTIFACT_OUTDATED)
        conditions.drop(status, FETCH_FAILED)
        return Success(message)

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.storage.remove_all("GitRepository", meta["namespace"], meta["name"])

    def _credentials(self, ctx: Context, obj: dict[str, Any], spec: GitRepositorySpec) -> Credentials:
        if not spec.secret_name:
            return Credentials()
        namespace = obj["metadata"]["namespace"]
        try:
            data = ctx.kube.secret_data(namespace, spec.secret_name)
        except NotFound:
            self._fetch_failed(obj["status"], obj["metadata"], "AuthenticationFailed",
                               f"secret '{namespace}/{spec.secret_name}' not found")  # fmt: skip
            raise Failure("AuthenticationFailed", f"secret '{namespace}/{spec.secret_name}' not found") from None
        credentials = Credentials.from_secret(data)
        if spec.url.startswith("ssh://") and not credentials.known_hosts:
            raise Stalling(
                "AuthenticationFailed", f"secret '{namespace}/{spec.secret_name}' has no known_hosts; add the host key"
            )
        return credentials

    def _fetch_failed(self, status: dict[str, Any], meta: dict[str, Any], reason: str, message: str) -> None:
        conditions.set_condition(status, FETCH_FAILED, True, reason, message, meta.get("generation"))

    def _git_failure(self, exc: GitError, status: dict[str, Any], meta: dict[str, Any]) -> Failure:
        reason = "AuthenticationFailed" if exc.authentication else "GitOperationFailed"
        self._fetch_failed(status, meta, reason, exc.message)
        return Failure(reason, exc.message)

    def _fetch(self, git: Git, spec: GitRepositorySpec, status: dict[str, Any], meta: dict[str, Any]) -> Target:
        try:
            return resolve(git, spec.ref)
        except GitError as exc:
            raise self._git_failure(exc, status, meta) from None

    def _up_to_date(self, obj: dict[str, Any], target: Target) -> bool:
        """Same revision, same spec, and the file still in storage: nothing to do."""
        status = obj["status"]
        artifact = status.get("artifact") or {}
        same_spec = status.get("observedGeneration") == obj["metadata"].get("generation")
        return bool(
            same_spec and artifact.get("revision") == target.revision and self.storage.exists(artifact.get("path", ""))
        )

    def _checkout(self, git: Git, target: Target, workdir: Path, status: dict[str, Any], meta: dict[str, Any]) -> str:
        try:
            commit = git.checkout(
                target.fetch, target.commit if not target.shallow else None, workdir, target.shallow, self.max_size
            )
        except GitError as exc:
            raise self._git_failure(exc, status, meta) from None
        return commit  # git refused a tree over max_size before checkout; the archive is bounded again

    def _archive(self, workdir: Path, spec: GitRepositorySpec, meta: dict[str, Any], filename: str) -> StoredArtifact:
        """Stream the tarball into storage: the archive is never held in memory."""
        rules = IgnoreRules.load(workdir, spec.ignore)
        try:
            return self.storage.store_stream(
                "GitRepository", meta["namespace"], meta["name"], filename,
                lambda out: write_tarball(workdir, rules, out, self.max_size),
            )  # fmt: skip
        except ArtifactError as exc:
            raise Failure("ArchiveOperationFailed", str(exc)) from None
