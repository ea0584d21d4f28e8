"""TLS for a Provider's endpoint: ``certSecretRef``'s ``ca.crt`` (a private CA) and ``tls.crt``/``tls.key``
(a client certificate for mTLS), Flux's deprecated ``caFile``/``certFile``/``keyFile`` too. TLS 1.2+.
"""

from __future__ import annotations

import functools
import hashlib
import os
import ssl
import tempfile
from pathlib import Path

from fluxwarden.controllers.notification.providers.target import ProviderError

CA_KEYS = ("ca.crt", "caFile")
CERT_KEYS = ("tls.crt", "certFile")
KEY_KEYS = ("tls.key", "keyFile")


def has_tls(data: dict[str, bytes]) -> bool:
    return any(_first(data, keys) for keys in (CA_KEYS, CERT_KEYS, KEY_KEYS))


def context(data: dict[str, bytes], where: str) -> ssl.SSLContext:
    """A client context from a Secret's TLS keys; ``where`` (``Provider ns/n spec.certSecretRef Secret 'x'``)
    names the Secret in a :class:`ProviderError`."""
    ca, cert, key = _first(data, CA_KEYS), _first(data, CERT_KEYS), _first(data, KEY_KEYS)
    if not (ca or cert or key):
        raise ProviderError(f"{where} has none of ca.crt, tls.crt, tls.key; add the CA as ca.crt or a client pair")
    if bool(cert) != bool(key):
        have, missing = ("tls.crt", "tls.key") if cert else ("tls.key", "tls.crt")
        raise ProviderError(f"{where} has {have} but no {missing}; a client certificate needs both")
    if ca:
        made = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # only this CA: Flux replaces the system roots
        try:
            made.load_verify_locations(cadata=ca.decode())
        except (ssl.SSLError, ValueError, UnicodeDecodeError):
            raise ProviderError(f"{where}: ca.crt is not a PEM certificate; put the CA's PEM there") from None
    else:
        made = ssl.create_default_context()
    made.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert and key:
        _load_pair(made, cert, key, where)
    return made


@functools.cache
def system() -> ssl.SSLContext:
    """The system roots, TLS 1.2+: built once (loading the bundle costs ~20 ms)."""
    made = ssl.create_default_context()
    made.minimum_version = ssl.TLSVersion.TLSv1_2
    return made


def digest(*parts: bytes | str) -> str:
    """A short key for the material a client is built from: equal material shares one pooled client."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def material(data: dict[str, bytes]) -> tuple[bytes, bytes, bytes]:
    return _first(data, CA_KEYS), _first(data, CERT_KEYS), _first(data, KEY_KEYS)


def _first(data: dict[str, bytes], keys: tuple[str, ...]) -> bytes:
    for key in keys:
        if data.get(key):
            return data[key]
    return b""


def _load_pair(made: ssl.SSLContext, cert: bytes, key: bytes, where: str) -> None:
    # ssl reads a key pair from files only: 0600 files in a private directory, gone at once
    with tempfile.TemporaryDirectory(prefix="fluxwarden-provider-tls-") as scratch:
        cert_file, key_file = Path(scratch) / "tls.crt", Path(scratch) / "tls.key"
        for path, content in ((cert_file, cert), (key_file, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
        try:
            made.load_cert_chain(cert_file, key_file)
        except ssl.SSLError:
            raise ProviderError(
                f"{where}: tls.crt and tls.key are not a matching PEM certificate and key; put the pair there"
            ) from None
