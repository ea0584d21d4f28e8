"""The on-disk layout of a webhook's certificates: ``ca.crt``, ``ca.key``, ``tls.crt``, ``tls.key``.

``ensure_serving_pair`` is what ``fluxwarden serve`` calls when no certificate was given: it makes a
CA and a serving certificate once, then reuses them, and renews the leaf before it expires.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from fluxwarden.certs.authority import KeyPair, expiry, generate_ca, issue, load_pair, serving_sans, write_pair

RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class ServingFiles:
    """Paths of one certificate directory."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def tls_cert(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def tls_key(self) -> Path:
        return self.directory / "tls.key"


def ensure_serving_pair(
    directory: Path, service: str = "fluxwarden-webhook", namespace: str = "flux-system", days: int = 365
) -> ServingFiles:
    """Create (or renew, when near expiry) a CA and a serving certificate under ``directory``."""
    files = ServingFiles(directory)
    if files.ca_cert.exists() and files.ca_key.exists():
        ca = load_pair(files.ca_cert, files.ca_key)
    else:
        ca = generate_ca()
        write_pair(ca, files.ca_cert, files.ca_key)
    if files.tls_cert.exists() and files.tls_key.exists():
        left = expiry(files.tls_cert.read_bytes()) - datetime.datetime.now(datetime.UTC)
        if left > RENEW_BEFORE:
            return files
    leaf: KeyPair = issue(ca, f"{service}.{namespace}.svc", sans=serving_sans(service, namespace), days=days)
    write_pair(leaf, files.tls_cert, files.tls_key)
    return files
