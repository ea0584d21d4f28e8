"""FluxConfig (``clusterconfig.azure.com``): pure helpers the webhook rules and the controller share.

URLs follow the Azure CLI (``az k8s-configuration flux``): a git URL is ``http://``, ``https://``,
``ssh://`` or the scp-like ``git@host:path``. Flux's GitRepository requires a scheme, so the
scp-like form is rewritten to ``ssh://git@host/path`` (FLUXCONFIG.md).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fluxwarden.tenancy.kinds import FLUXCONFIG
from fluxwarden.tenancy.settings import Settings
from fluxwarden.tenancy.values import text

UrlKind = Literal["ssh", "https", "http"]

# Rule ids (stable: in messages, metrics and the controller's Stalled condition).
CLUSTER_SCOPE_RULE = "cluster-scope"
FLUXCONFIG_RULE = "fluxconfig"
# Not lifted by exempt namespaces, users or groups: the controller applies them at reconcile time and
# cannot see who wrote the object, and a malformed FluxConfig is malformed wherever it lives.
NEVER_EXEMPT_RULES = frozenset({CLUSTER_SCOPE_RULE, FLUXCONFIG_RULE})

SCOPES = ("cluster", "namespace")
DEFAULT_SCOPE = "cluster"
# sourceKind -> the spec field holding that source.
SOURCE_FIELDS = {
    "GitRepository": "gitRepository",
    "Bucket": "bucket",
    "AzureBlob": "azureBlob",
    "OCIRepository": "ociRepository",
}
DEFAULT_SOURCE_KIND = "GitRepository"
DEFAULT_KUSTOMIZATION = "kustomization-1"  # what an absent or empty ``kustomizations`` map means

_SCHEMES: tuple[tuple[str, UrlKind], ...] = (("ssh://", "ssh"), ("https://", "https"), ("http://", "http"))
_SCP_USER = "git@"


def _scp_parts(url: str) -> tuple[str, str] | None:
    """``git@host:path`` -> ``("host", "path")``; ``None`` when ``url`` is not in that form.

    The host may be a bracketed IPv6 address (``git@[::1]:org/repo``), as git allows.
    """
    if not url.startswith(_SCP_USER):
        return None
    rest = url[len(_SCP_USER) :]
    if rest.startswith("["):
        close = rest.find("]:")
        if close < 0:
            return None
        host, path = rest[: close + 1], rest[close + 2 :]
    else:
        host, sep, path = rest.partition(":")
        if not sep:
            return None
    if not host or host == "[]" or "/" in host or not path:
        return None
    return host, path


def url_kind(url: str) -> UrlKind | None:
    """``"ssh"`` for ``ssh://`` and ``git@host:path``, ``"https"``, ``"http"``; ``None`` for anything else.

    Schemes are matched as written (lower case), as the Azure CLI and Flux's CRD pattern do.
    """
    for prefix, kind in _SCHEMES:
        if url.startswith(prefix) and len(url) > len(prefix):
            return kind
    return "ssh" if _scp_parts(url) is not None else None


def ssh_url(url: str) -> str:
    """``git@host:org/repo`` -> ``ssh://git@host/org/repo``; every other URL is returned unchanged."""
    parts = _scp_parts(url)
    if parts is None:
        return url
    host, path = parts
    return f"ssh://{_SCP_USER}{host}/{path.removeprefix('/')}"


def is_fluxconfig(obj: dict[str, Any]) -> bool:
    api_version = text(obj.get("apiVersion", ""))
    return api_version.rpartition("/")[0] == FLUXCONFIG and obj.get("kind") == "FluxConfig"


def spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    """``spec`` when it is an object, else an empty one (the rules report a malformed spec)."""
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def scope_of(obj: dict[str, Any]) -> str:
    """``spec.scope``, or ``cluster`` when it is absent (Azure's default)."""
    value = spec_of(obj).get("scope")
    return DEFAULT_SCOPE if value is None else text(value)


def target_namespace(obj: dict[str, Any], namespace: str = "") -> str:
    """``spec.namespace``, or the object's own namespace when it is absent."""
    value = spec_of(obj).get("namespace")
    if value is not None:
        return text(value)
    meta = obj.get("metadata")
    return namespace or (text(meta.get("namespace") or "") if isinstance(meta, dict) else "")


_ISO_DURATION = re.compile(
    r"P(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?",
    re.ASCII,
)
_SECONDS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


def iso_duration_seconds(value: str) -> float | None:
    """An ISO-8601 duration (``PT10M``, ``P1DT2H``) in seconds; ``None`` when it is not one.

    Days, hours, minutes and seconds only, as the CRD's pattern: years and months have no fixed length.
    """
    match = _ISO_DURATION.fullmatch(value)
    if match is None or value == "P" or not any(match.groupdict().values()):
        return None
    return sum(float(v) * _SECONDS[k] for k, v in match.groupdict().items() if v)


def cluster_scope_allowed(settings: Settings, namespace: str) -> bool:
    """Scope ``cluster`` hands the repository cluster-admin: honoured only in the listed namespaces."""
    return namespace in settings.cluster_scope_namespaces
