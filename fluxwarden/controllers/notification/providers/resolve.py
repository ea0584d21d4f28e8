"""A Provider object and its Secrets to a :class:`Target`: Flux's keys and precedence, our checks.

``secretRef``: ``address`` (over ``spec.address``), ``token``, ``username`` (over ``spec.username``),
``password``, ``headers`` (a YAML map), ``proxy`` (over ``spec.proxy``); for commit-status types also
``ca.crt`` when there is no ``certSecretRef``. ``proxySecretRef``: ``address``, ``username``,
``password`` (over both proxies). ``certSecretRef``: ``ca.crt``, ``tls.crt``, ``tls.key``.
"""

from __future__ import annotations

import re
import ssl
import urllib.parse
from typing import Any, Protocol

import yaml

from fluxwarden.controllers.notification.providers import tls
from fluxwarden.controllers.notification.providers.addresses import git_repository, web_address
from fluxwarden.controllers.notification.providers.target import DEFAULT_TIMEOUT, ProviderError, Target
from fluxwarden.controllers.notification.providers.types import COMMIT_STATUS, NEEDS_TOKEN, SUPPORTED
from fluxwarden.controllers.runtime.durations import parse_duration
from fluxwarden.controllers.runtime.kube import KubeError, NotFound

MAX_ADDRESS = 2048  # Flux refuses a longer address from a Secret


class SecretReader(Protocol):
    def secret_data(self, namespace: str, name: str) -> dict[str, bytes]: ...


def secret_names(provider: dict[str, Any]) -> tuple[str, ...]:
    """The Secrets :func:`resolve` reads, in its order, each once."""
    spec = provider.get("spec") or {}
    names: list[str] = []
    for ref in ("secretRef", "proxySecretRef", "certSecretRef"):
        name = (spec.get(ref) or {}).get("name")
        if name and name not in names:
            names.append(name)
    return tuple(names)


def resolve(kube: SecretReader, provider: dict[str, Any]) -> Target:
    meta, spec = provider.get("metadata") or {}, provider.get("spec") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    ref = f"Provider {namespace}/{name}"
    kind = str(spec.get("type") or "")
    if kind not in SUPPORTED:
        raise ProviderError(
            f"{ref}: spec.type {kind!r} is not supported by fluxwarden; supported: {', '.join(sorted(SUPPORTED))}; "
            "use one of them or run Flux's notification-controller for this Provider"
        )
    if spec.get("commitStatusExpr"):
        raise ProviderError(
            f"{ref}: spec.commitStatusExpr is not supported by fluxwarden yet; remove it (the status context is "
            "then <kind>/<name>/<provider uid prefix>) or run Flux's notification-controller for this Provider"
        )
    if spec.get("serviceAccountName"):
        raise ProviderError(
            f"{ref}: spec.serviceAccountName (workload identity) is not supported by fluxwarden for type {kind}; "
            "remove it and put the credentials in the Secret named by spec.secretRef"
        )
    reader = _Reader(kube, namespace, ref)
    address, channel, username = str(spec.get("address") or ""), str(spec.get("channel") or ""), ""
    username = str(spec.get("username") or "")
    token = password = proxy = ""
    headers: dict[str, str] = {}
    secret_values: list[str] = []
    address_from_secret = False
    proxy = str(spec.get("proxy") or "")
    auth: dict[str, bytes] = {}
    if secret := (spec.get("secretRef") or {}).get("name"):
        auth = reader.read("spec.secretRef", secret)
        where = f"{ref}: Secret {namespace}/{secret} (spec.secretRef)"
        if "address" in auth:
            address, address_from_secret = _text(auth, "address", where).strip(), True
            if len(address) > MAX_ADDRESS:
                raise ProviderError(f"{where}: address is longer than {MAX_ADDRESS} bytes; shorten it")
            secret_values += _url_secrets(address)
        token = _text(auth, "token", where).strip()
        password = _text(auth, "password", where)
        username = _text(auth, "username", where) or username
        if "proxy" in auth:
            proxy = _text(auth, "proxy", where).strip()
            secret_values += _url_secrets(proxy)
        if "headers" in auth:
            headers = _headers(auth["headers"], where)
            secret_values += [v for k, v in headers.items() if _sensitive(k, v)]
        secret_values += [token, password]
    if proxy_secret := (spec.get("proxySecretRef") or {}).get("name"):
        proxy = _proxy(reader.read("spec.proxySecretRef", proxy_secret), f"{ref}: Secret {namespace}/{proxy_secret}")
        secret_values += _url_secrets(proxy)
    if proxy:
        _check_proxy(proxy, ref)
    context, material = _tls(reader, spec, kind, auth, ref)
    if not address:
        source = f" or the address key of Secret {namespace}/{secret}" if secret else " (or address in a Secret)"
        raise ProviderError(f"{ref} has no address; set spec.address{source}")
    _check_address(kind, address, ref, address_from_secret)
    if kind in NEEDS_TOKEN and not token:
        hint = f"add it to Secret {namespace}/{secret}" if secret else "set spec.secretRef to a Secret with it"
        if kind == "github" and "githubAppID" in auth:
            hint = "GitHub App authentication is not supported by fluxwarden yet; put a token there instead"
        raise ProviderError(f"{ref}: type {kind} needs a token key in the Secret named by spec.secretRef; {hint}")
    return Target(
        type=kind,
        namespace=namespace,
        name=name,
        uid=str(meta.get("uid") or ""),
        address=address,
        channel=channel,
        username=username,
        token=token,
        password=password,
        headers=headers,
        proxy=proxy,
        timeout=_timeout(spec.get("timeout"), ref),
        ssl=context,
        commit_status_expr="",
        address_from_secret=address_from_secret,
        tls_key=tls.digest(*material, proxy),
        secret_values=tuple(v for v in secret_values if v),
    )


class _Reader:
    def __init__(self, kube: SecretReader, namespace: str, ref: str) -> None:
        self.kube, self.namespace, self.ref = kube, namespace, ref

    def read(self, field: str, name: str) -> dict[str, bytes]:
        try:
            return self.kube.secret_data(self.namespace, name)
        except NotFound:
            raise ProviderError(
                f"{self.ref}: {field} names Secret {self.namespace}/{name}, which does not exist; "
                "create it or fix the name"
            ) from None
        except KubeError as exc:  # Forbidden (RBAC) or the API server away: nothing sendable either way
            raise ProviderError(f"{self.ref}: {field}: cannot read Secret {self.namespace}/{name} ({exc})") from None


def _text(data: dict[str, bytes], key: str, where: str) -> str:
    try:
        return data.get(key, b"").decode()
    except UnicodeDecodeError:
        raise ProviderError(f"{where}: {key} is not UTF-8 text; store it as text") from None


def _headers(raw: bytes, where: str) -> dict[str, str]:
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
        name, text = str(key), str(value).lower() if isinstance(value, bool) else str(value)
        if not name or any(c in name for c in " :\r\n\t") or any(c in text for c in "\r\n"):
            raise ProviderError(f"{where}: headers[{name!r}] is not a valid HTTP header; fix its name or value")
        out[name] = text
    return out


def _proxy(data: dict[str, bytes], where: str) -> str:
    """Flux's ProxyURLFromSecret: ``address``, with ``username``/``password`` put into it."""
    address = _text(data, "address", where).strip()
    if not address:
        raise ProviderError(f"{where} (spec.proxySecretRef) has no address key; add the proxy's URL as address")
    username, password = _text(data, "username", where), _text(data, "password", where)
    if not username and not password:
        return address
    parts = urllib.parse.urlsplit(address)
    userinfo = urllib.parse.quote(username, safe="") + (":" + urllib.parse.quote(password, safe="") if password else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc.rpartition('@')[2]}"))


def _check_proxy(proxy: str, ref: str) -> None:
    parts = urllib.parse.urlsplit(proxy)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProviderError(f"{ref}: the proxy is not an http(s) URL; set it to http://host:port")


def _tls(
    reader: _Reader, spec: dict[str, Any], kind: str, auth: dict[str, bytes], ref: str
) -> tuple[ssl.SSLContext | None, tuple[bytes, bytes, bytes]]:
    if cert_secret := (spec.get("certSecretRef") or {}).get("name"):
        data = reader.read("spec.certSecretRef", cert_secret)
        where = f"{ref}: Secret {reader.namespace}/{cert_secret} (spec.certSecretRef)"
        return tls.context(data, where), tls.material(data)
    if kind in COMMIT_STATUS and tls.has_tls(auth):  # Flux: a git host's CA may sit beside the token
        where = f"{ref}: Secret {reader.namespace}/{spec['secretRef']['name']} (spec.secretRef)"
        return tls.context(auth, where), tls.material(auth)
    return None, (b"", b"", b"")


def _check_address(kind: str, address: str, ref: str, from_secret: bool) -> None:
    shown = "the address from the Secret" if from_secret else f"spec.address {address!r}"
    if kind in COMMIT_STATUS:
        if git_repository(address) is None:
            raise ProviderError(f"{ref}: {shown} is not a git repository URL; use https://<host>/<owner>/<repository>")
    elif web_address(address) is None:
        raise ProviderError(f"{ref}: {shown} is not an http(s) URL; set it to the endpoint's https:// URL")


def _timeout(value: Any, ref: str) -> float:
    if value in (None, ""):
        return DEFAULT_TIMEOUT
    try:
        seconds = parse_duration(str(value))
    except ValueError as exc:
        raise ProviderError(f"{ref}: spec.timeout {exc}") from None
    if seconds <= 0:
        raise ProviderError(f"{ref}: spec.timeout {value!r} is not positive; use e.g. 15s")
    return seconds


def _sensitive(name: str, value: str) -> bool:
    """Header values hidden in messages: any credential-looking one, and every long one. Short plain
    values (``https``, ``3``) stay: masking them would garble every message they occur in."""
    return len(value) >= 8 or bool(_CREDENTIAL_NAME.search(name))


_CREDENTIAL_NAME = re.compile(r"auth|token|key|secret|signature|cookie|session|pass", re.IGNORECASE)


def _url_secrets(url: str) -> list[str]:
    """The URL itself and the parts that hold secrets in it (userinfo, path, query)."""
    parts = urllib.parse.urlsplit(url)
    found = [url, parts.password or "", parts.username or "", parts.query]
    if len(parts.path) > 1:
        found.append(parts.path)
    return found
