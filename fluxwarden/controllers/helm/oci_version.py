"""The chart version of a release from an OCIRepository: ``<chart version>+<first 12 hex of the digest>``.

As Flux's helm-controller (``mutateChartWithSourceRevision``): an OCI tag can be pushed again with other
content under the same chart version, so the digest goes into the version's build metadata and a new
digest is a new version (an upgrade). A semver tag (``1.2.3@sha256:...``, Helm writes ``+`` as ``_``)
must equal the chart's version, build metadata aside; any other revision only lends its digest.
"""

from __future__ import annotations

import re

# Masterminds/semver's loose form, as Flux parses chart versions and tags: 'v' prefix, minor and patch optional.
_SEMVER = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$")
Parsed = tuple[int, int, int, str]


def _parse(text: str) -> Parsed | None:
    match = _SEMVER.match(text)
    if not match:
        return None
    major, minor, patch, pre, _ = match.groups()
    return int(major), int(minor or 0), int(patch or 0), pre or ""


def _digest_part(revision: str) -> str:
    algorithm, sep, hexdigest = revision.partition(":")
    if not sep or ":" in hexdigest or len(hexdigest) < 12 or not algorithm:
        raise ValueError(f"invalid artifact revision {revision}")
    return hexdigest[:12]


def source_version(chart_version: str, revision: str) -> str:
    """The version a release from ``revision`` installs; ``ValueError`` (Flux's ChartMutateError) when
    the revision's semver tag does not match ``chart_version``."""
    version = _parse(chart_version)
    if version is None:
        raise ValueError(f"invalid chart version {chart_version}")
    tag, at, digest = revision.partition("@")
    tag_version = _parse(tag.replace("_", "+")) if at else _parse(revision)
    if tag_version is not None:
        if not at or "@" in digest or tag_version != version:
            raise ValueError(f"artifact revision {tag} does not match chart version {chart_version}")
        sha = _digest_part(digest)
    else:
        sha = _digest_part(revision)
    major, minor, patch, pre = version
    return f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else "") + f"+{sha}"
