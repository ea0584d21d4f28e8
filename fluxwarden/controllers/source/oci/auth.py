"""Registry credentials: ``kubernetes.io/dockerconfigjson`` Secrets and ``WWW-Authenticate`` challenges.

A docker config holds credentials per registry host; only the entry for the host being pulled from
is used, so a Secret shared between registries never sends one registry's password to another.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

DOCKER_CONFIG_KEY = ".dockerconfigjson"
_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True)
class Login:
    """A user name and password (or identity token) for one registry host."""

    username: str
    password: str


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: ``scheme`` (``basic``/``bearer``) and its parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` header; None when there is none."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), {k: v.replace('\\"', '"') for k, v in params.items()})


def _host_of(key: str) -> str:
    """A docker config key (``host``, ``https://host/v1/``) as ``host[:port]``, lower case."""
    host = key.strip()
    for prefix in ("https://", "http://"):
        if host.lower().startswith(prefix):
            host = host[len(prefix) :]
    return host.split("/", 1)[0].lower()


def login_for(config: bytes, host: str) -> Login | None:
    """The credentials a docker config holds for ``host`` (``host[:port]``); None when it has none.

    ``ValueError`` with a one-line reason (never a credential) when the config is malformed.
    """
    try:
        data = json.loads(config)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{DOCKER_CONFIG_KEY} is not valid JSON") from None
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        raise ValueError(f"{DOCKER_CONFIG_KEY} has no 'auths' map")
    for key, entry in auths.items():
        if _host_of(str(key)) != host.lower() or not isinstance(entry, dict):
            continue
        username, password = entry.get("username"), entry.get("password")
        if entry.get("auth") and not (username and password):
            try:
                username, _, password = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise ValueError(f"{DOCKER_CONFIG_KEY}: the 'auth' of '{key}' is not base64 'user:password'") from None
        if entry.get("identitytoken"):
            return Login("<token>", str(entry["identitytoken"]))  # docker's convention for refresh tokens
        if username:
            return Login(str(username), str(password or ""))
    return None
