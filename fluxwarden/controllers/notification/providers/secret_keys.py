"""The keys of a Provider's ``secretRef`` and ``proxySecretRef`` Secrets, read as Flux reads them.

``secretRef``: ``address`` (over ``spec.address``), ``token`` (trimmed), ``username`` (over
``spec.username``), ``password``, ``headers`` (a YAML map), ``proxy`` (over ``spec.proxy``).
``proxySecretRef``: ``address`` with ``username``/``password`` put into it. Each value that is a secret
is collected for redaction.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field

import yaml

from fluxwarden.controllers.notification.providers.target import ProviderError

MAX_ADDRESS = 2048  # Flux refuses a longer address from a Secret
_CREDENTIAL_NAME = re.compile(r"auth|token|key|secret|signature|cookie|session|pass", re.IGNORECASE)


@dataclass
class Auth:
    """What ``secretRef`` gave; empty fields where it gave nothing."""

    data: dict[str, bytes] = field(default_factory=dict)
    address: str | None = None
    token: str = ""
    username: str = ""
    password: str = ""
    proxy: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)


def auth(data: dict[str, bytes], where: str) -> Auth:
    """``where`` names the Secret in errors: ``Provider ns/n: Secret ns/s (spec.secretRef)``."""
    found = Auth(data=data)
    if "address" in data:
        found.address = text(data, "address", where).strip()
        if len(found.address) > MAX_ADDRESS:
            raise ProviderError(f"{where}: address is longer than {MAX_ADDRESS} bytes; shorten it")
        found.secrets += url_secrets(found.address)
    found.token = text(data, "token", where).strip()
    if not header_safe(found.token):  # it goes into an Authorization or PRIVATE-TOKEN header
        raise ProviderError(f"{where}: token has line breaks or non-Latin-1 characters; store the bare token")
    found.password = text(data, "password", where)
    found.username = text(data, "username", where)
    if "proxy" in data:
        found.proxy = text(data, "proxy", where).strip()
        found.secrets += url_secrets(found.proxy)
    if "headers" in data:
        found.headers = headers(data["headers"], where)
        found.secrets += [v for k, v in found.headers.items() if sensitive(k, v)]
    found.secrets += [found.token, found.password]
    return found


def proxy(data: dict[str, bytes], where: str) -> str:
    """Flux's ProxyURLFromSecret: ``address``, with ``username``/``password`` put into it."""
    address = text(data, "address", where).strip()
    if not address:
        raise ProviderError(f"{where} (spec.proxySecretRef) has no address key; add the proxy's URL as address")
    username, password = text(data, "username", where), text(data, "password", where)
    if not username and not password:
        return address
    parts = urllib.parse.urlsplit(address)
    userinfo = urllib.parse.quote(username, safe="") + (":" + urllib.parse.quote(password, safe="") if password else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc.rpartition('@')[2]}"))


def text(data: dict[str, bytes], key: str, where: str) -> str:
    try:
        return data.get(key, b"").decode()
    except UnicodeDecodeError:
        raise ProviderError(f"{where}: {key} is not UTF-8 text; store it as text") from None


def headers(raw: bytes, where: str) -> dict[str, str]:
    try:
        loaded = yaml.safe_load(raw.decode()) if raw.strip() else {}
    except (yaml.YAMLError, UnicodeDecodeError):
        loaded = None
    if not isinstance(loaded, dict):
        raise ProviderError(f"{where}: headers is not a YAML map of header names to values; write 'Name: value' lines")
    out: dict[str, str] = {}
    for key, value in loaded.items():
        if isinstance(value, (dict, list)) or value is None:
            raise ProviderError(f"{where}: headers[{str(key)!r}] is not a single value; give it one string")
        name, shown = str(key), str(value).lower() if isinstance(value, bool) else str(value)
        if not name or any(c in name for c in " :\t") or not header_safe(name) or not header_safe(shown):
            raise ProviderError(f"{where}: headers[{name!r}] is not a valid HTTP header; fix its name or value")
        out[name] = shown
    return out


def header_safe(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any(c in value for c in "\r\n\0")


def sensitive(name: str, value: str) -> bool:
    """Header values hidden in messages: any credential-looking one, and every long one. Short plain
    values (``https``, ``3``) stay: masking them would garble every message they occur in."""
    return len(value) >= 8 or bool(_CREDENTIAL_NAME.search(name))


def url_secrets(url: str) -> list[str]:
    """The URL itself and the parts that hold secrets in it (userinfo, path, query)."""
    parts = urllib.parse.urlsplit(url)
    found = [url, parts.password or "", parts.username or "", parts.query]
    if len(parts.path) > 1:
        found.append(parts.path)
    return found
