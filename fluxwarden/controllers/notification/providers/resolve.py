"""A Provider object and its Secrets to a :class:`Target`: Flux's keys and precedence, our checks.

Precedence as in Flux: ``spec.address`` < the Secret's ``address``; ``spec.username`` < the Secret's
``username``; ``spec.proxy`` < the Secret's ``proxy`` < ``proxySecretRef``. TLS from ``certSecretRef``,
or for commit-status types from a ``ca.crt`` beside the token in ``secretRef``.
"""

from __future__ import annotations

import ssl
from typing import Any, Protocol

from fluxwarden.controllers.notification.providers import cel, commit_status, secret_keys, tls
from fluxwarden.controllers.notification.providers.addresses import git_repository, web_address
from fluxwarden.controllers.notification.providers.target import DEFAULT_TIMEOUT, ProviderError, Target
from fluxwarden.controllers.notification.providers.types import COMMIT_STATUS, NEEDS_TOKEN, SUPPORTED
from fluxwarden.controllers.runtime.durations import parse_duration
from fluxwarden.controllers.runtime.kube import KubeError, NotFound


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
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    ref = f"Provider {namespace}/{name}"
    kind = str(spec.get("type") or "")
    expression = str(spec.get("commitStatusExpr") or "")
    _check_spec(kind, expression, spec, ref)
    reader = _Reader(kube, namespace, ref)
    secret = str((spec.get("secretRef") or {}).get("name") or "")
    auth = secret_keys.auth(
        reader.read("spec.secretRef", secret), f"{ref}: Secret {namespace}/{secret} (spec.secretRef)"
    )
    address = auth.address if auth.address is not None else str(spec.get("address") or "")
    proxy, proxy_secrets = _proxy(reader, spec, auth, ref)
    context, material = _tls(reader, spec, kind, auth.data, ref)
    if not address:
        source = f" or the address key of Secret {namespace}/{secret}" if secret else " (or address in a Secret)"
        raise ProviderError(f"{ref} has no address; set spec.address{source}")
    _check_address(kind, address, ref, auth.address is not None)
    if kind in NEEDS_TOKEN and not auth.token:
        hint = f"add it to Secret {namespace}/{secret}" if secret else "set spec.secretRef to a Secret with it"
        if kind == "github" and "githubAppID" in auth.data:
            hint = "GitHub App authentication is not supported by fluxwarden yet; put a token there instead"
        raise ProviderError(f"{ref}: type {kind} needs a token key in the Secret named by spec.secretRef; {hint}")
    return Target(
        type=kind,
        namespace=namespace,
        name=name,
        uid=str(meta.get("uid") or ""),
        address=address,
        channel=str(spec.get("channel") or ""),
        username=auth.username or str(spec.get("username") or ""),
        token=auth.token,
        password=auth.password,
        headers=auth.headers,
        proxy=proxy,
        timeout=_timeout(spec.get("timeout"), ref),
        ssl=context,
        commit_status_expr=expression,
        address_from_secret=auth.address is not None,
        tls_key=tls.digest(*material, proxy),
        secret_values=tuple(v for v in (*auth.secrets, *proxy_secrets) if v),
        provider_object=_visible(provider),
    )


class _Reader:
    def __init__(self, kube: SecretReader, namespace: str, ref: str) -> None:
        self.kube, self.namespace, self.ref = kube, namespace, ref

    def read(self, field: str, name: str) -> dict[str, bytes]:
        """The Secret's data; no name, no Secret: empty."""
        if not name:
            return {}
        try:
            return self.kube.secret_data(self.namespace, name)
        except NotFound:
            raise ProviderError(
                f"{self.ref}: {field} names Secret {self.namespace}/{name}, which does not exist; "
                "create it or fix the name"
            ) from None
        except KubeError as exc:  # Forbidden (RBAC) or the API server away: nothing sendable either way
            raise ProviderError(f"{self.ref}: {field}: cannot read Secret {self.namespace}/{name} ({exc})") from None


def _check_spec(kind: str, expression: str, spec: dict[str, Any], ref: str) -> None:
    if kind not in SUPPORTED:
        raise ProviderError(
            f"{ref}: spec.type {kind!r} is not supported by fluxwarden; supported: {', '.join(sorted(SUPPORTED))}; "
            "use one of them or run Flux's notification-controller for this Provider"
        )
    if expression:
        _check_expression(expression, kind, ref)
    if spec.get("serviceAccountName"):
        raise ProviderError(
            f"{ref}: spec.serviceAccountName (workload identity) is not supported by fluxwarden for type {kind}; "
            "remove it and put the credentials in the Secret named by spec.secretRef"
        )


def _proxy(reader: _Reader, spec: dict[str, Any], auth: secret_keys.Auth, ref: str) -> tuple[str, list[str]]:
    proxy, secrets = auth.proxy if auth.proxy is not None else str(spec.get("proxy") or ""), []
    if name := str((spec.get("proxySecretRef") or {}).get("name") or ""):
        proxy = secret_keys.proxy(reader.read("spec.proxySecretRef", name), f"{ref}: Secret {reader.namespace}/{name}")
        secrets = secret_keys.url_secrets(proxy)
    if proxy and web_address(proxy) is None:
        raise ProviderError(f"{ref}: the proxy is not an http(s) URL; set it to http://host:port")
    return proxy, secrets


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
        repo = git_repository(address)
        if repo is None or (kind == "github" and repo.path.count("/") != 1):
            raise ProviderError(f"{ref}: {shown} is not a git repository URL; use https://<host>/<owner>/<repository>")
    elif web_address(address) is None:
        raise ProviderError(f"{ref}: {shown} is not an http(s) URL; set it to the endpoint's https:// URL")


def _check_expression(expression: str, kind: str, ref: str) -> None:
    if kind not in COMMIT_STATUS:  # Flux's CRD refuses it too
        raise ProviderError(f"{ref}: spec.commitStatusExpr is only for commit-status types (github, gitlab); remove it")
    try:
        commit_status.compiled(expression)
    except cel.CelError as exc:
        raise ProviderError(
            f"{ref}: spec.commitStatusExpr: {exc}; fluxwarden evaluates string literals, event/provider/alert fields, "
            "'+' and lowerAscii/upperAscii/trim/replace: rewrite it with those or run Flux's notification-controller"
        ) from None


def _visible(provider: dict[str, Any]) -> dict[str, Any]:
    """The Provider as commitStatusExpr sees it: no managedFields, no status."""
    meta = dict(provider.get("metadata") or {})
    meta.pop("managedFields", None)
    return {k: v for k, v in provider.items() if k not in ("metadata", "status")} | {"metadata": meta}


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
