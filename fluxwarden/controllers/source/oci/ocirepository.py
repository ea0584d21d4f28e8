"""The OCIRepository reconciler: resolve the ref, check the digest, pull the layer, store the artifact.

Steps, in order, each raising a reconcile error with Flux's reason on failure:
``credentials`` (dockerconfigjson for the URL's host only, certSecretRef; AuthenticationFailed) ->
``reference`` (digest > semver over the tag list > tag, default ``latest``; ReadOperationFailed) ->
``revision`` (a HEAD of the manifest only; OCIArtifactPullFailed) -> unchanged digest, ignore and
layer selector: done, nothing written -> ``manifest`` (pulled by digest, bytes checked;
OCIArtifactPullFailed) -> ``layer`` (selected by media type or first, streamed to disk and checked
against its digest; OCIArtifactLayerOperationFailed) -> ``artifact`` (extract: the layer's files
re-packed by ``artifact.write_tarball`` with the ignore rules; copy: the layer as is;
ArchiveOperationFailed).

Revision: ``<tag>@sha256:<digest>``, or ``sha256:<digest>`` for a digest ref, as Flux.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

from fluxwarden.controllers.artifacts.errors import ArtifactError
from fluxwarden.controllers.artifacts.unpack import safe_extract
from fluxwarden.controllers.runtime import conditions
from fluxwarden.controllers.runtime.controller import Context, Success
from fluxwarden.controllers.runtime.errors import Failure, Stalling
from fluxwarden.controllers.runtime.kube import NotFound
from fluxwarden.controllers.runtime.spec import mapping, spec_of
from fluxwarden.controllers.source.api import FINALIZER, OCI_REPOSITORY
from fluxwarden.controllers.source.artifact import write_tarball
from fluxwarden.controllers.source.gitrepository import ARTIFACT_IN_STORAGE, ARTIFACT_OUTDATED, FETCH_FAILED
from fluxwarden.controllers.source.ignore import IgnoreRules
from fluxwarden.controllers.source.oci import media
from fluxwarden.controllers.source.oci.auth import DOCKER_CONFIG_KEY, Login, login_for
from fluxwarden.controllers.source.oci.registry import Manifest, Registry, RegistryError, Tls
from fluxwarden.controllers.source.oci.spec import COPY, UNSUPPORTED, OCIRepositorySpec, filter_tags
from fluxwarden.controllers.source.storage import Storage, StoredArtifact, artifact_status
from fluxwarden.controllers.source.versions import best_match

KIND = "OCIRepository"
PULL_FAILED = "OCIArtifactPullFailed"
LAYER_FAILED = "OCIArtifactLayerOperationFailed"
AUTH_FAILED = "AuthenticationFailed"
READ_FAILED = "ReadOperationFailed"
DEFAULT_MAX_SIZE = 512 * 1024 * 1024
_DEFAULT_PLATFORM = ("linux", "amd64")  # what go-containerregistry picks from an index, as Flux pulls


def revision_digest(revision: str) -> str:
    """``sha256:<hex>`` of a revision ``<tag>@sha256:<hex>`` or ``sha256:<hex>``."""
    return revision.rpartition("@")[2]


class OCIRepositoryReconciler:
    name = "source-controller"
    resource = OCI_REPOSITORY
    finalizer = FINALIZER
    unsupported = UNSUPPORTED

    def __init__(self, storage: Storage, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.storage = storage
        self.max_size = max_size

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        spec = OCIRepositorySpec.of(obj)
        meta, status = obj["metadata"], obj["status"]
        login = self._login(ctx, obj, spec)
        tls = self._tls(ctx, obj, spec)
        try:
            registry = Registry(spec.repository, login=login, tls=tls, plain_http=spec.insecure, timeout=spec.timeout)
        except RegistryError as exc:
            message = f"failed to generate transport for '{spec.url}': {exc.message}"
            raise self._failed(obj, AUTH_FAILED, message) from None
        with registry:
            reference, label = self._reference(obj, registry, spec)
            revision = self._revision(obj, registry, spec, reference, label)
            message = f"stored artifact for digest '{revision}'"
            if self._up_to_date(obj, revision):
                conditions.drop(status, ARTIFACT_OUTDATED)
                conditions.drop(status, FETCH_FAILED)
                return Success(message)
            if status.get("artifact"):
                conditions.set_condition(
                    status, ARTIFACT_OUTDATED, True, "NewRevision",
                    f"new revision '{revision}' for '{spec.repository}:{label or reference}'", meta.get("generation"),
                )  # fmt: skip
            manifest = self._manifest(obj, registry, spec, revision_digest(revision))
            layer = self._select(obj, spec, manifest)
            with tempfile.TemporaryDirectory(prefix="fluxwarden-oci-") as scratch:
                blob = Path(scratch) / "layer"
                self._pull(obj, registry, layer, blob)
                stored = self._store(obj, spec, blob, Path(scratch) / "content", revision_digest(revision))
        self.storage.gc(KIND, meta["namespace"], meta["name"], keep=2, current=stored.path)
        status["artifact"] = artifact_status(stored, revision)
        if manifest.annotations:
            status["artifact"]["metadata"] = manifest.annotations
        raw = spec_of(obj)
        _observe(status, "observedIgnore", raw.get("ignore"))
        _observe(status, "observedLayerSelector", raw.get("layerSelector"))
        status["url"] = stored.url  # Flux's is a latest.tar.gz symlink; fluxwarden serves no symlinks
        conditions.set_condition(status, ARTIFACT_IN_STORAGE, True, "Succeeded", message, meta.get("generation"))
        conditions.drop(status, ARTIFACT_OUTDATED)
        conditions.drop(status, FETCH_FAILED)
        return Success(message)

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.storage.remove_all(KIND, meta["namespace"], meta["name"])

    # -- steps ------------------------------------------------------------------------------------

    def _failed(self, obj: dict[str, Any], reason: str, message: str) -> Failure:
        """FetchFailed on the object, and the error to raise (Ready=False with the same reason)."""
        failure = Failure(reason, f"{KIND} '{obj['metadata']['namespace']}/{obj['metadata']['name']}': {message}")
        conditions.set_condition(
            obj["status"], FETCH_FAILED, True, reason, failure.message, obj["metadata"].get("generation")
        )
        return failure

    def _secret(self, ctx: Context, obj: dict[str, Any], name: str, field: str) -> dict[str, bytes]:
        namespace = obj["metadata"]["namespace"]
        try:
            return ctx.kube.secret_data(namespace, name)
        except NotFound:
            raise self._failed(
                obj, AUTH_FAILED, f"failed to get credential: secret '{namespace}/{name}' named by {field} not found"
            ) from None

    def _login(self, ctx: Context, obj: dict[str, Any], spec: OCIRepositorySpec) -> Login | None:
        """The dockerconfigjson entry for the URL's host, if any: another host's entry is never used."""
        if not spec.secret_name:
            return None
        data = self._secret(ctx, obj, spec.secret_name, "spec.secretRef")
        if DOCKER_CONFIG_KEY not in data:
            raise Stalling(
                AUTH_FAILED,
                f"secret '{spec.secret_name}' named by spec.secretRef has no '{DOCKER_CONFIG_KEY}' key; "
                "make it a kubernetes.io/dockerconfigjson Secret",
            )
        try:
            return login_for(data[DOCKER_CONFIG_KEY], spec.repository.host)
        except ValueError as exc:
            raise Stalling(AUTH_FAILED, f"secret '{spec.secret_name}' named by spec.secretRef: {exc}") from None

    def _tls(self, ctx: Context, obj: dict[str, Any], spec: OCIRepositorySpec) -> Tls | None:
        if not spec.cert_secret_name:
            return None
        data = self._secret(ctx, obj, spec.cert_secret_name, "spec.certSecretRef")
        return Tls(data.get("ca.crt") or None, data.get("tls.crt") or None, data.get("tls.key") or None)

    def _reference(self, obj: dict[str, Any], registry: Registry, spec: OCIRepositorySpec) -> tuple[str, str | None]:
        """What to pull (a digest or a tag) and the tag the revision names (None for a digest)."""
        ref = spec.ref
        if ref.digest:
            return ref.digest, None
        if not ref.semver:
            return ref.tag, ref.tag
        try:
            tags = filter_tags(registry.tags(), ref.semver_filter)
        except RegistryError as exc:
            raise self._failed(
                obj, READ_FAILED, f"failed to determine the artifact tag for '{spec.url}': {exc.message}"
            ) from None
        chart = spec.layer.media_type == media.HELM_CHART_CONTENT  # helm writes '+' as '_' in tags
        by_version = {tag.replace("_", "+") if chart else tag: tag for tag in tags}
        try:
            chosen = best_match(ref.semver, by_version)
        except ValueError as exc:
            raise Stalling("InvalidSpec", f"spec.ref.semver: {exc}") from None
        if chosen is None:
            raise self._failed(
                obj, READ_FAILED,
                f"failed to determine the artifact tag for '{spec.url}': no tag matches spec.ref.semver "
                f"'{ref.semver}'" + (f" and spec.ref.semverFilter '{ref.semver_filter}'" if ref.semver_filter else ""),
            )  # fmt: skip
        return by_version[chosen], by_version[chosen]

    def _revision(
        self, obj: dict[str, Any], registry: Registry, spec: OCIRepositorySpec, reference: str, label: str | None
    ) -> str:
        if label is None:
            return reference
        try:
            digest = registry.resolve(reference)
        except RegistryError as exc:
            field = "spec.ref.semver" if spec.ref.semver else "spec.ref.tag"
            hint = f" (set by {field}); push it or change {field}" if exc.not_found else ""
            raise self._failed(obj, PULL_FAILED, f"failed to determine artifact digest: {exc.message}{hint}") from None
        return f"{label}@{digest}"

    def _up_to_date(self, obj: dict[str, Any], revision: str) -> bool:
        """Same revision, same content configuration (ignore, layer selector), the file still in storage."""
        status, raw = obj["status"], spec_of(obj)
        artifact = mapping(status.get("artifact"))
        return bool(
            artifact.get("revision") == revision
            and status.get("observedIgnore") == raw.get("ignore")
            and status.get("observedLayerSelector") == raw.get("layerSelector")
            and self.storage.exists(str(artifact.get("path") or ""))
        )

    def _manifest(self, obj: dict[str, Any], registry: Registry, spec: OCIRepositorySpec, digest: str) -> Manifest:
        try:
            manifest = registry.manifest(digest)
            if manifest.is_index:
                manifest = registry.manifest(self._platform(manifest))
        except RegistryError as exc:
            raise self._failed(obj, PULL_FAILED, f"failed to pull artifact from '{spec.url}': {exc.message}") from None
        if manifest.media_type not in media.MANIFESTS:
            raise self._failed(
                obj, PULL_FAILED, f"failed to pull artifact from '{spec.url}': unsupported manifest media type "
                f"'{manifest.media_type[:80]}'",
            )  # fmt: skip
        return manifest

    def _platform(self, index: Manifest) -> str:
        for entry in index.data.get("manifests") or []:
            platform = mapping(mapping(entry).get("platform"))
            if (platform.get("os"), platform.get("architecture")) == _DEFAULT_PLATFORM:
                return str(entry.get("digest"))
        raise RegistryError(f"image index {index.digest[:19]}... has no linux/amd64 manifest")

    def _select(self, obj: dict[str, Any], spec: OCIRepositorySpec, manifest: Manifest) -> dict[str, Any]:
        layers = manifest.layers
        if not layers:
            raise self._failed(obj, LAYER_FAILED, "no layers found in artifact")
        wanted = spec.layer.media_type
        if not wanted:
            return layers[0]
        for layer in layers:
            if layer.get("mediaType") == wanted:
                return layer
        found = ", ".join(sorted({str(layer.get("mediaType")) for layer in layers}))[:200]
        raise self._failed(
            obj, LAYER_FAILED,
            f"failed to find layer with media type '{wanted}' (spec.layerSelector.mediaType) in artifact; "
            f"it has {found}",
        )  # fmt: skip

    def _pull(self, obj: dict[str, Any], registry: Registry, layer: dict[str, Any], blob: Path) -> None:
        size = layer.get("size")
        if isinstance(size, int) and size > self.max_size:
            raise self._failed(obj, LAYER_FAILED, f"layer of {size} bytes exceeds the {self.max_size} byte limit")
        try:
            with blob.open("wb") as out:
                registry.blob(str(layer.get("digest") or ""), out, self.max_size)
        except RegistryError as exc:
            raise self._failed(obj, LAYER_FAILED, f"failed to fetch layer from artifact: {exc.message}") from None

    def _store(
        self, obj: dict[str, Any], spec: OCIRepositorySpec, blob: Path, content: Path, digest: str
    ) -> StoredArtifact:
        meta = obj["metadata"]
        filename = f"{digest.partition(':')[2]}.tar.gz"
        if spec.layer.operation == COPY:
            with blob.open("rb") as source:
                return self.storage.store_stream(
                    KIND, meta["namespace"], meta["name"], filename,
                    lambda out: _copy(source, out),
                )  # fmt: skip
        try:
            safe_extract(blob, content, self.max_size)
        except ArtifactError as exc:
            raise self._failed(obj, LAYER_FAILED, f"failed to extract layer contents from artifact: {exc}") from None
        rules = IgnoreRules.load(content, spec.ignore)
        try:
            return self.storage.store_stream(
                KIND, meta["namespace"], meta["name"], filename,
                lambda out: write_tarball(content, rules, out, self.max_size),
            )  # fmt: skip
        except ArtifactError as exc:
            raise Failure("ArchiveOperationFailed", f"unable to archive artifact to storage: {exc}") from None


def _copy(source: IO[bytes], out: IO[bytes]) -> None:
    shutil.copyfileobj(source, out, 1 << 20)


def _observe(status: dict[str, Any], field: str, value: Any) -> None:
    if value is None:
        status.pop(field, None)
    else:
        status[field] = value
