"""The typed view of ``OCIRepository.spec`` (source.toolkit.fluxcd.io/v1), with Flux's defaults.

Invalid specs raise ``Stalling`` naming the field; the fields fluxwarden does not implement are in
``UNSUPPORTED`` (the object is Stalled with ``UnsupportedField`` instead of silently ignoring them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import re2

from fluxwarden.controllers.runtime.errors import Stalling
from fluxwarden.controllers.runtime.spec import duration, mapping, spec_of
from fluxwarden.controllers.runtime.unsupported import Rule, Table
from fluxwarden.controllers.source.api import DEFAULT_TIMEOUT, secret_name
from fluxwarden.controllers.source.oci.reference import DIGEST, TAG, Repository, parse_repository

DEFAULT_TAG = "latest"
EXTRACT, COPY = "extract", "copy"

UNSUPPORTED = Table(
    "source-controller",
    (
        Rule("spec.verify"),  # cosign / notation signatures
        Rule("spec.provider", ("generic",), hint="use 'generic' (a secretRef) or remove it"),
        Rule("spec.serviceAccountName"),  # image pull secrets of a service account
        Rule("spec.proxySecretRef"),
    ),
)
_QUIET = re2.Options()
_QUIET.log_errors = False


@dataclass(frozen=True)
class OciRef:
    """``spec.ref``: Flux's precedence is digest > semver > tag, the default tag ``latest``."""

    digest: str | None = None
    semver: str | None = None
    semver_filter: str | None = None
    tag: str = DEFAULT_TAG


@dataclass(frozen=True)
class LayerSelector:
    """``spec.layerSelector``: no media type picks the first layer; the operation defaults to extract."""

    media_type: str | None = None
    operation: str = EXTRACT


@dataclass(frozen=True)
class OCIRepositorySpec:
    url: str
    repository: Repository
    ref: OciRef
    layer: LayerSelector
    secret_name: str | None
    cert_secret_name: str | None
    insecure: bool
    timeout: float
    ignore: str | None

    @classmethod
    def of(cls, obj: dict[str, Any]) -> OCIRepositorySpec:
        spec = spec_of(obj)
        url = str(spec.get("url") or "")
        try:
            repository, _ = parse_repository(url)
        except ValueError as exc:
            raise Stalling("URLInvalid", f"URL validation failed for spec.url '{url[:120]}': {exc}") from None
        return cls(
            url,
            repository,
            _ref(mapping(spec.get("ref"))),
            _layer(mapping(spec.get("layerSelector"))),
            secret_name(spec),
            secret_name(spec, "certSecretRef"),
            spec.get("insecure") is True,
            duration(spec, "timeout", DEFAULT_TIMEOUT),
            spec.get("ignore") if isinstance(spec.get("ignore"), str) else None,
        )


def _ref(raw: dict[str, Any]) -> OciRef:
    digest = str(raw.get("digest") or "") or None
    if digest and not DIGEST.match(digest):
        raise Stalling("InvalidSpec", f"spec.ref.digest '{digest[:80]}' is not sha256:<64 hex digits>")
    tag = str(raw.get("tag") or "") or DEFAULT_TAG
    if not TAG.match(tag):
        raise Stalling("InvalidSpec", f"spec.ref.tag '{tag[:80]}' is not a valid OCI tag")
    semver_filter = str(raw.get("semverFilter") or "") or None
    if semver_filter:
        try:
            re2.compile(semver_filter, options=_QUIET)
        except re2.error:
            raise Stalling(
                "InvalidSpec", f"spec.ref.semverFilter '{semver_filter[:80]}' is not a valid regexp"
            ) from None
    return OciRef(digest, str(raw.get("semver") or "") or None, semver_filter, tag)


def _layer(raw: dict[str, Any]) -> LayerSelector:
    operation = str(raw.get("operation") or EXTRACT)
    if operation not in (EXTRACT, COPY):
        raise Stalling("InvalidSpec", f"spec.layerSelector.operation '{operation[:40]}' is not 'extract' or 'copy'")
    return LayerSelector(str(raw.get("mediaType") or "") or None, operation)


def filter_tags(tags: list[str], pattern: str | None) -> list[str]:
    """The tags ``semverFilter`` (a Go regexp, RE2 here too) matches anywhere; all when unset."""
    if not pattern:
        return tags
    compiled = re2.compile(pattern, options=_QUIET)
    return [tag for tag in tags if compiled.search(tag)]
