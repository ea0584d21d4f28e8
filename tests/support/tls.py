"""A private CA for the test servers: serving certificates for 127.0.0.1 and client certificates.

The git and Helm servers of ``git_server`` / ``helm_repo`` serve HTTPS with these, so the source
controller's clients meet real TLS: an untrusted CA, a CA from ``ca.crt``, client certificates.
"""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fluxwarden.certs.authority import KeyPair, generate_ca, issue

HOST = "127.0.0.1"


@dataclass(frozen=True)
class PrivateCA:
    """A CA, a serving pair for 127.0.0.1 it signed, and a client pair it signed."""

    ca: KeyPair = field(default_factory=lambda: generate_ca("fluxwarden-test-ca", days=2))
    name: str = "fluxwarden-test-client"

    def __post_init__(self) -> None:
        object.__setattr__(self, "server", issue(self.ca, HOST, sans=(HOST, "localhost"), days=2))
        object.__setattr__(self, "client", issue(self.ca, self.name, client=True, days=2))

    server: KeyPair = field(init=False)
    client: KeyPair = field(init=False)

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem

    def server_context(self, *, client_certs: bool = False) -> ssl.SSLContext:
        """TLS 1.2+; with ``client_certs``, a client certificate of this CA is asked for (not required)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        with tempfile.TemporaryDirectory(prefix="fluxwarden-test-tls-") as scratch:
            cert, key = Path(scratch) / "tls.crt", Path(scratch) / "tls.key"
            cert.write_bytes(self.server.cert_pem)
            key.write_bytes(self.server.key_pem)
            context.load_cert_chain(cert, key)
        if client_certs:
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cadata=self.ca_pem.decode())
        return context
