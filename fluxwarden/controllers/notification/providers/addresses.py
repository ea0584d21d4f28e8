"""Provider addresses: a web endpoint, or a git repository as Flux's commit-status notifiers parse it."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

_SCP = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")  # git@github.com:org/repo.git


@dataclass(frozen=True)
class Repository:
    base: str  # scheme://host[:port], ssh becoming https as in Flux's parseGitAddress
    host: str  # hostname, lower case
    path: str  # owner/repo (GitHub) or group/subgroup/project (GitLab), without .git


def web_address(address: str) -> urllib.parse.SplitResult | None:
    try:
        parts = urllib.parse.urlsplit(address)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in address):
        return None
    return parts


def git_repository(address: str) -> Repository | None:
    text = address.strip()
    if "://" not in text:
        match = _SCP.match(text)
        if not match:
            return None
        text = f"ssh://{match['host']}/{match['path']}"
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https", "ssh") or not parts.hostname:
        return None
    scheme = "https" if parts.scheme == "ssh" else parts.scheme
    # ssh's port is not the web port: Flux keeps u.Host, which only differs for ssh://host:port
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if parts.scheme == "ssh" or port is None else f"{host}:{port}"
    path = parts.path.strip("/").removesuffix(".git")
    if not path:
        return None
    return Repository(base=f"{scheme}://{netloc}", host=parts.hostname.lower(), path=path)
