"""Typed views of the source kinds' specs, with Flux's defaults; invalid specs raise ``Stalling``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fluxwarden.controllers.runtime.errors import Stalling
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.runtime.spec import duration, mapping, spec_of
from fluxwarden.controllers.runtime.unsupported import Finding, Rule, Table, find
from fluxwarden.controllers.source import refs
from fluxwarden.tenancy.kinds import SOURCE

GIT_REPOSITORY = Resource(SOURCE, "v1", "gitrepositories", "GitRepository")
HELM_REPOSITORY = Resource(SOURCE, "v1", "helmrepositories", "HelmRepository")
HELM_CHART = Resource(SOURCE, "v1", "helmcharts", "HelmChart")
BUCKET = Resource(SOURCE, "v1", "buckets", "Bucket")
OCI_REPOSITORY = Resource(SOURCE, "v1", "ocirepositories", "OCIRepository")

FINALIZER = "finalizers.fluxcd.io"
DEFAULT_TIMEOUT = 60.0
DEFAULT_BRANCH = "master"

# Fields of Flux 2.9's source kinds (source-controller v1.9.5) that fluxwarden does not implement:
# setting one stalls the object (reason UnsupportedField) instead of being silently ignored.
GIT_REPOSITORY_UNSUPPORTED = Table(
    "source-controller",
    (
        Rule("spec.verify"),
        Rule("spec.include"),
        Rule("spec.recurseSubmodules", (False,)),
        Rule("spec.sparseCheckout"),
        Rule("spec.provider", ("generic",), hint="use 'generic' (a secretRef) or remove it"),
        # Flux's CRD admits it only beside provider 'azure' or 'aws'; a CRD without that check may not.
        Rule("spec.serviceAccountName"),
        Rule("spec.proxySecretRef"),
    ),
)
# ``provider`` and ``insecure`` only matter for type 'oci' (Flux ignores them otherwise); ``accessFrom``
# is not implemented by Flux either.
HELM_REPOSITORY_UNSUPPORTED = Table(
    "source-controller", (Rule("spec.type", ("default", "oci"), hint="use 'default' (HTTP(S)) or 'oci'"),)
)
# Checked for type 'oci' only: a cloud ``provider`` needs a token service (aws, azure, gcp) fluxwarden lacks.
HELM_OCI_REPOSITORY_UNSUPPORTED = Table(
    "source-controller", (Rule("spec.provider", ("generic",), hint="use 'generic' (a secretRef) or remove it"),)
)
HELM_CHART_UNSUPPORTED = Table(
    "source-controller",
    (
        Rule(
            "spec.sourceRef.kind",
            ("HelmRepository", "GitRepository", "Bucket"),
            hint="use a HelmRepository, GitRepository or Bucket",
        ),
        Rule("spec.verify"),
        Rule("spec.reconcileStrategy", ("ChartVersion",), hint="remove it (the default is ChartVersion)"),
        Rule("spec.ignoreMissingValuesFiles", (False,)),
    ),
)


def secret_name(spec: dict[str, Any], field: str = "secretRef") -> str | None:
    """The ``name`` of the local object reference ``spec[field]``; None when unset."""
    ref = spec.get(field)
    return str(ref["name"]) if isinstance(ref, dict) and ref.get("name") else None


@dataclass(frozen=True)
class GitRef:
    """``spec.ref``; precedence commit > name > semver > tag > branch (default branch ``master``)."""

    branch: str | None = None
    tag: str | None = None
    semver: str | None = None
    name: str | None = None
    commit: str | None = None


@dataclass(frozen=True)
class GitRepositorySpec:
    url: str
    ref: GitRef
    secret_name: str | None
    timeout: float
    ignore: str | None

    @classmethod
    def of(cls, obj: dict[str, Any]) -> GitRepositorySpec:
        spec = spec_of(obj)
        url = str(spec.get("url") or "")
        refs.check_url(url)
        raw_ref = mapping(spec.get("ref"))
        ref = GitRef(
            branch=refs.check_ref("spec.ref.branch", raw_ref.get("branch") or None),
            tag=refs.check_ref("spec.ref.tag", raw_ref.get("tag") or None),
            semver=raw_ref.get("semver") or None,
            name=refs.check_ref("spec.ref.name", raw_ref.get("name") or None),
            commit=refs.check_commit(raw_ref.get("commit") or None),
        )
        ignore = spec.get("ignore")
        return cls(url, ref, secret_name(spec), duration(spec, "timeout", DEFAULT_TIMEOUT), ignore or None)


def is_oci_helm_repository(obj: dict[str, Any]) -> bool:
    """``spec.type: oci``: Flux keeps such a HelmRepository as data only (no artifact, no status)."""
    return spec_of(obj).get("type") == "oci"


def oci_helm_repository_unsupported(obj: dict[str, Any]) -> Finding | None:
    """The first field an OCI HelmRepository sets that fluxwarden does not implement."""
    return find(obj, HELM_REPOSITORY_UNSUPPORTED) or find(obj, HELM_OCI_REPOSITORY_UNSUPPORTED)


@dataclass(frozen=True)
class HelmRepositorySpec:
    url: str  # http(s): ends with '/'; oci: without a trailing '/'
    secret_name: str | None
    timeout: float
    cert_secret_name: str | None = None  # spec.certSecretRef: ca.crt, tls.crt, tls.key
    pass_credentials: bool = False  # spec.passCredentials: also send them to chart hosts elsewhere
    oci: bool = False  # spec.type 'oci': charts are pulled from a registry (source/helm_oci.py)
    insecure: bool = False  # spec.insecure: a plain-HTTP registry (type 'oci' only, as in Flux)

    @classmethod
    def of(cls, obj: dict[str, Any]) -> HelmRepositorySpec:
        spec = spec_of(obj)
        url = str(spec.get("url") or "")
        oci = is_oci_helm_repository(obj)
        if oci and not url.startswith("oci://"):
            raise Stalling("Failed", f"failed to construct Helm client: invalid OCI registry URL: {url}")
        if not oci and not url.startswith(("http://", "https://")):
            raise Stalling("URLInvalid", f"spec.url '{url}' is not an http(s) URL")
        return cls(
            url.rstrip("/") if oci else url.rstrip("/") + "/",
            secret_name(spec),
            duration(spec, "timeout", DEFAULT_TIMEOUT),
            secret_name(spec, "certSecretRef"),
            spec.get("passCredentials") is True,
            oci,
            oci and spec.get("insecure") is True,
        )


@dataclass(frozen=True)
class HelmChartSpec:
    chart: str
    version: str
    source_kind: str
    source_name: str
    values_files: tuple[str, ...]

    @classmethod
    def of(cls, obj: dict[str, Any]) -> HelmChartSpec:
        spec = spec_of(obj)
        ref = mapping(spec.get("sourceRef"))
        kind = str(ref.get("kind") or "")
        if kind not in ("HelmRepository", "GitRepository", "Bucket"):
            raise Stalling(
                "InvalidSpec", f"spec.sourceRef.kind '{kind}' is not HelmRepository, GitRepository or Bucket"
            )
        if not spec.get("chart") or not ref.get("name"):
            raise Stalling("InvalidSpec", "spec.chart and spec.sourceRef.name are required")
        files = list(spec.get("valuesFiles") or [])
        if spec.get("valuesFile"):  # v1beta1
            files.insert(0, spec["valuesFile"])
        return cls(str(spec["chart"]), str(spec.get("version") or "*"), kind, str(ref["name"]), tuple(files))
