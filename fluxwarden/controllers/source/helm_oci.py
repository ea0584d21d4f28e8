"""Pull a chart from an OCI HelmRepository with the real ``helm pull oci://<url>/<chart>``.

Flux's rules (source-controller's ``OCIChartRepository``): a ``spec.version`` that is a full semver
version (three parts, ``v`` allowed) is the tag itself, so an unchanged chart needs no registry call
at all; anything else is a constraint over the registry's semver tags, the highest match wins
(source/helm_oci_tags.py lists them, then the chosen version is pulled as an exact one). The
chart's version is its revision. Errors get Flux's reasons: ``AuthenticationFailed`` when the
registry refused the credentials or its certificate (what Flux detects in the error text),
``ChartPullError`` otherwise.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fluxwarden.controllers.runtime.errors import Failure
from fluxwarden.controllers.source.api import HelmRepositorySpec
from fluxwarden.controllers.source.helm_registry import (
    RegistryCredentials,
    RegistrySession,
    helm_failure,
    registry_host,
)

# fluxcd/pkg/version.ParseVersion: Masterminds' loose NewVersion, but with exactly three parts.
_FULL_VERSION = re.compile(
    r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
)
# Masterminds' NewVersion accepts one or two parts too (helm would take "1.2" as a tag; Flux as a range).
_PARTIAL_VERSION = re.compile(r"v?\d+(\.\d+)?(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")


def is_exact_version(version: str) -> bool:
    """Flux takes the version as the tag without listing tags."""
    return _FULL_VERSION.fullmatch(version) is not None


def helm_version_arg(version: str) -> str:
    """What ``helm pull --version`` needs to mean what Flux means by ``version``."""
    if not is_exact_version(version) and _PARTIAL_VERSION.fullmatch(version):
        return "=" + version  # a constraint to helm as to Flux ("1.2" is 1.2.x), never a tag "1.2"
    return version


@dataclass(frozen=True)
class OciChart:
    reference: str  # oci://host/path/chart, no credentials
    host: str


def chart_reference(spec: HelmRepositorySpec, chart: str) -> OciChart:
    return OciChart(f"{spec.url}/{chart}", registry_host(spec.url))


def pull(spec: HelmRepositorySpec, credentials: RegistryCredentials, chart: str, version: str, dest: Path) -> Path:
    """``helm pull`` the chart into ``dest`` (an empty directory); the ``.tgz`` it wrote."""
    ref = chart_reference(spec, chart)
    with RegistrySession(ref.host, credentials, plain_http=spec.insecure, timeout=spec.timeout) as session:
        done = session.run(["pull", ref.reference, "--version", helm_version_arg(version), "--destination", str(dest)])
        if done.returncode != 0:
            raise _pull_failure(done, session, ref, version)
    pulled = [p for p in dest.iterdir() if p.suffix == ".tgz"]
    if len(pulled) != 1:
        raise Failure("ChartPullError", f"helm pull of '{ref.reference}' wrote {len(pulled)} chart archives")
    return pulled[0]


def _pull_failure(
    done: subprocess.CompletedProcess[str], session: RegistrySession, ref: OciChart, version: str
) -> Failure:
    step = "download chart" if is_exact_version(version) else "get chart version"
    where = f"chart pull error: failed to {step} for remote reference '{ref.reference}' (version '{version}')"
    return helm_failure(session.error(done), where)
