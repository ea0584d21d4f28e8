"""Bounded HTTP(S) downloads: stream to a file, digest on the fly, credentials only where they belong.

Called by ``client.fetch_artifact`` (artifacts from the source controller's server) and by the
HelmRepository and HelmChart reconcilers (indexes and charts). Every failure is one
``DownloadError`` whose message is one line without credentials.

Credentials (basic auth and a TLS client certificate) go only to the scheme, host and port of
``origin``, the repository they were given for, as Helm and Flux do: a chart URL in an index that
points elsewhere, or a redirect there, is fetched without them unless ``pass_credentials``. A CA is
trust, not a secret: it is added to the system's CAs for every host. The client speaks TLS 1.2+.
"""

from __future__ import annotations

import functools
import hashlib
import os
import ssl
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urljoin, urlsplit

import httpx

from fluxwarden.controllers.artifacts.errors import DownloadError
from fluxwarden.controllers.artifacts.scrub import scrub

MAX_REDIRECTS = 10
DEFAULT_TLS_HINT = "add the CA that signed it as ca.crt to the Secret named by spec.certSecretRef"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class HttpCredentials:
    """Basic auth and TLS material for one repository; all optional."""

    username: str | None = None
    password: str | None = None
    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None

    @classmethod
    def from_secrets(cls, auth: dict[str, bytes] | None, tls: dict[str, bytes] | None = None) -> HttpCredentials:
        """Flux's keys: ``username``/``password`` from ``secretRef``; ``ca.crt``, ``tls.crt``, ``tls.key``
        from ``certSecretRef`` (``tls``), or else the deprecated ``caFile``/``certFile``/``keyFile`` of ``secretRef``.
        """
        auth = auth or {}
        if tls is not None:
            ca, cert, key = tls.get("ca.crt"), tls.get("tls.crt"), tls.get("tls.key")
        else:
            ca = auth.get("caFile") or auth.get("ca.crt")
            cert, key = auth.get("certFile") or auth.get("tls.crt"), auth.get("keyFile") or auth.get("tls.key")
        return cls(
            username=auth["username"].decode() if "username" in auth else None,
            password=auth["password"].decode() if "password" in auth else None,
            ca_pem=ca or None,
            cert_pem=cert or None,
            key_pem=key or None,
        )


NO_CREDENTIALS = HttpCredentials()


@dataclass(frozen=True)
class Downloaded:
    size: int
    digest: str  # sha256:<hex> of the bytes written


def origin_of(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` with the scheme's default port filled in, host lower-cased."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def same_origin(url: str, other: str) -> bool:
    return origin_of(url) == origin_of(other)


def shown_origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` for a message: no user, password or path."""
    scheme, host, port = origin_of(url)
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def private_file(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new 0600 file, newline-terminated (ssh needs it; PEM readers do not mind)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data if data.endswith(b"\n") or not data else data + b"\n")
    return path


@functools.cache
def _system_trust() -> ssl.SSLContext:
    """Built once: loading the CA bundle costs ~20 ms, once per download otherwise."""
    return _harden(ssl.create_default_context())


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _context(credentials: HttpCredentials, with_client_cert: bool, scratch: Path) -> ssl.SSLContext:
    if not credentials.ca_pem and not (with_client_cert and credentials.cert_pem):
        return _system_trust()
    context = _harden(ssl.create_default_context())
    if credentials.ca_pem:
        try:
            context.load_verify_locations(cadata=credentials.ca_pem.decode())
        except (ssl.SSLError, ValueError, UnicodeDecodeError):
            raise DownloadError("ca.crt is not a PEM certificate") from None
    if with_client_cert and credentials.cert_pem:
        if not credentials.key_pem:
            raise DownloadError("tls.crt is set but tls.key is missing")
        cert = private_file(scratch / "tls.crt", credentials.cert_pem)
        key = private_file(scratch / "tls.key", credentials.key_pem)
        try:
            context.load_cert_chain(cert, key)  # ssl reads key pairs from files only
        except ssl.SSLError:
            raise DownloadError("tls.crt and tls.key are not a matching PEM certificate and key") from None
    return context


def download(
    url: str,
    out: IO[bytes],
    *,
    timeout: float,
    max_size: int,
    credentials: HttpCredentials = NO_CREDENTIALS,
    origin: str | None = None,
    pass_credentials: bool = False,
    tls_hint: str = DEFAULT_TLS_HINT,
) -> Downloaded:
    """GET ``url`` into ``out``, at most ``max_size`` bytes, within ``timeout`` seconds in all.

    ``credentials`` belong to ``origin`` (default: ``url``'s own); they are sent to a request,
    including each redirect hop, only if it goes to the same scheme, host and port, or if
    ``pass_credentials``. Nothing is held in memory beyond one chunk.
    """
    deadline = time.monotonic() + timeout
    owner = origin or url
    current = url
    with tempfile.TemporaryDirectory(prefix="fluxwarden-tls-") as scratch:
        for _ in range(MAX_REDIRECTS + 1):
            send = pass_credentials or same_origin(current, owner)
            auth = None
            if send and credentials.username:
                auth = httpx.BasicAuth(credentials.username, credentials.password or "")
            verify = _context(credentials, send, Path(scratch))
            try:
                with (
                    httpx.Client(auth=auth, timeout=timeout, verify=verify, follow_redirects=False) as client,
                    client.stream("GET", current) as response,
                ):
                    if response.is_redirect and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        continue
                    _check_status(response, current)
                    return _copy(response, out, current, max_size, deadline, timeout)
            except httpx.TimeoutException:
                raise DownloadError(f"timeout after {timeout:g}s fetching {scrub(current)}") from None
            except httpx.HTTPError as exc:
                raise _transport_error(exc, current, tls_hint) from None
    raise DownloadError(f"more than {MAX_REDIRECTS} redirects fetching {scrub(url)}")


def _check_status(response: httpx.Response, url: str) -> None:
    if response.status_code in (401, 403):
        raise DownloadError(f"{response.status_code} from {scrub(url)}: check the credentials", authentication=True)
    if response.status_code >= 400:
        raise DownloadError(f"{response.status_code} {response.reason_phrase} from {scrub(url)}")


def _copy(
    response: httpx.Response, out: IO[bytes], url: str, max_size: int, deadline: float, timeout: float
) -> Downloaded:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_size:
        raise DownloadError(f"{scrub(url)} is larger than the {max_size} byte limit ({declared} bytes)")
    return copy_limited(response.iter_bytes(), out, scrub(url), max_size, deadline, timeout)


def copy_limited(
    chunks: Iterable[bytes], out: IO[bytes], what: str, max_size: int, deadline: float, timeout: float
) -> Downloaded:
    """Write ``chunks`` to ``out``, hashing on the way; DownloadError past ``max_size`` bytes or ``deadline``.

    ``what`` names the download in the message (a scrubbed URL, a registry blob).
    """
    hasher, size = hashlib.sha256(), 0
    for chunk in chunks:
        size += len(chunk)
        if size > max_size:
            raise DownloadError(f"{what} is larger than the {max_size} byte limit")
        if time.monotonic() > deadline:
            raise DownloadError(f"timeout after {timeout:g}s fetching {what}")
        hasher.update(chunk)
        out.write(chunk)
    out.flush()
    return Downloaded(size, f"sha256:{hasher.hexdigest()}")


def _transport_error(exc: httpx.HTTPError, url: str, tls_hint: str) -> DownloadError:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        reason = text.split("certificate verify failed:", 1)[-1].split("(_ssl", 1)[0].strip() or "verify failed"
        return DownloadError(
            f"TLS certificate of {shown_origin(url)} is not trusted ({reason}): {tls_hint}", untrusted=True
        )
    return DownloadError(f"cannot fetch {scrub(url)}: {scrub(text)}")
