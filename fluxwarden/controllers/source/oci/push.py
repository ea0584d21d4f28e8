"""Build and push a Flux-content artifact, as ``flux push artifact`` (fluxcd/pkg/oci ``Client.Push``) does.

The artifact is an OCI image manifest whose config has media type
``application/vnd.cncf.flux.config.v1+json`` and whose one layer is the tar.gz of the directory,
``application/vnd.cncf.flux.content.v1.tar+gzip``, with the annotations
``org.opencontainers.image.created`` (RFC 3339, now or the epoch with ``reproducible``),
``org.opencontainers.image.source`` and ``org.opencontainers.image.revision``. The config is the one
go-containerregistry writes for an empty image with one layer appended, serialised as Go's
encoding/json does (the same bytes, so the same config digest for the same layer and time).

The layer is ``artifact.write_tarball`` of the directory (or of a directory holding the one file),
minus Flux's default ignore paths (VCS files and ``*.jpg``... ``*.tar.gz``, ``*.zip``) or the
caller's instead: the same file set as Flux's, in the format every fluxwarden artifact has.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fluxwarden.controllers.source.artifact import write_tarball
from fluxwarden.controllers.source.ignore import EXTENSION_PATTERNS, VCS_PATTERNS, IgnoreRules
from fluxwarden.controllers.source.oci import media
from fluxwarden.controllers.source.oci.reference import Repository
from fluxwarden.controllers.source.oci.registry import Registry, sha256_digest

DEFAULT_IGNORE = VCS_PATTERNS + EXTENSION_PATTERNS  # flux2's excludeOCI: ExcludeVCS + ExcludeExt
_CHUNK = 1 << 20
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class Pushed:
    """What ``flux push artifact -o json`` prints."""

    url: str
    repository: str
    tag: str
    digest: str

    def as_dict(self) -> dict[str, str]:
        return {"url": self.url, "repository": self.repository, "tag": self.tag, "digest": self.digest}


@dataclass(frozen=True)
class Layer:
    path: Path
    digest: str  # of the gzip stream
    diff_id: str  # of the tar inside
    size: int


def go_json(value: Any) -> bytes:
    """JSON as Go's ``encoding/json`` writes it: compact, UTF-8, ``<``, ``>``, ``&``, U+2028/9 escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escaped)
    return text.encode()


def created_now(reproducible: bool = False) -> str:
    """``time.Now().UTC().Format(time.RFC3339)``, or the epoch (``--reproducible``)."""
    moment = datetime.fromtimestamp(0, UTC) if reproducible else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_layer(source: Path, out_dir: Path, ignore_paths: Sequence[str] | None = None) -> Layer:
    """The tar.gz of ``source`` (a directory, or one file) in ``out_dir``, with its digest and diff ID."""
    patterns = tuple(ignore_paths) if ignore_paths is not None else DEFAULT_IGNORE
    root = source
    if not source.is_dir():
        root = out_dir / "stage"
        root.mkdir()
        shutil.copy2(source, root / source.name)
    layer = out_dir / "artifact.tgz"
    with layer.open("wb") as out:
        write_tarball(root, IgnoreRules(patterns), out)
    compressed, uncompressed = hashlib.sha256(), hashlib.sha256()
    with layer.open("rb") as raw:
        while chunk := raw.read(_CHUNK):
            compressed.update(chunk)
    with gzip.open(layer, "rb") as tar:
        while chunk := tar.read(_CHUNK):
            uncompressed.update(chunk)
    return Layer(layer, f"sha256:{compressed.hexdigest()}", f"sha256:{uncompressed.hexdigest()}", layer.stat().st_size)


def config_blob(layer: Layer, created: str) -> bytes:
    """go-containerregistry's config of ``empty.Image`` + ``ConfigFile.Created`` + one appended layer."""
    return go_json({
        "architecture": "",
        "created": created,
        "history": [{"created": _GO_ZERO_TIME}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "config": {},
    })  # fmt: skip


def annotations_for(created: str, source: str | None, revision: str | None, extra: dict[str, str]) -> dict[str, str]:
    """Flux's ``Metadata.ToAnnotations``; an unset source or revision is left out rather than empty."""
    found = {media.CREATED_ANNOTATION: created}
    if source:
        found[media.SOURCE_ANNOTATION] = source
    if revision:
        found[media.REVISION_ANNOTATION] = revision
    found.update(extra)
    return dict(sorted(found.items()))  # Go marshals map keys sorted


def manifest_blob(config: bytes, layer: Layer, annotations: dict[str, str]) -> bytes:
    return go_json({
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "config": {"mediaType": media.FLUX_CONFIG, "size": len(config), "digest": sha256_digest(config)},
        "layers": [{"mediaType": media.FLUX_CONTENT, "size": layer.size, "digest": layer.digest}],
        "annotations": annotations,
    })  # fmt: skip


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            yield chunk


def push_artifact(
    registry: Registry,
    tag: str,
    source_path: Path,
    *,
    source: str | None = None,
    revision: str | None = None,
    annotations: dict[str, str] | None = None,
    ignore_paths: Sequence[str] | None = None,
    created: str | None = None,
) -> Pushed:
    """Build the artifact of ``source_path`` and push it to ``registry`` as ``tag``: layer, config, manifest."""
    created = created or created_now()
    with tempfile.TemporaryDirectory(prefix="fluxwarden-push-") as scratch:
        layer = build_layer(source_path, Path(scratch), ignore_paths)
        config = config_blob(layer, created)
        manifest = manifest_blob(config, layer, annotations_for(created, source, revision, annotations or {}))
        registry.push_blob(layer.digest, layer.size, lambda: _chunks(layer.path))
        registry.push_blob(sha256_digest(config), len(config), config)
        digest = registry.push_manifest(tag, manifest, media.OCI_MANIFEST)
    repository: Repository = registry.repository
    return Pushed(f"oci://{repository}@{digest}", str(repository), tag, digest)
