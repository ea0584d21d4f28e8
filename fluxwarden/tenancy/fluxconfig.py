"""FluxConfig (``clusterconfig.azure.com``): pure helpers the webhook rules and the controller share.

URLs follow the Azure CLI (``az k8s-configuration flux``): a git URL is ``http://``, ``https://``,
``ssh://`` or the scp-like ``git@host:path``. Flux's GitRepository requires a scheme, so the
scp-like form is rewritten to ``ssh://git@host/path`` (FLUXCONFIG.md).
"""

from __future__ import annotations

from typing import Literal

from fluxwarden.tenancy.settings import Settings

UrlKind = Literal["ssh", "https", "http"]

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


def cluster_scope_allowed(settings: Settings, namespace: str) -> bool:
    """Scope ``cluster`` hands the repository cluster-admin: honoured only in the listed namespaces."""
    return namespace in settings.cluster_scope_namespaces
