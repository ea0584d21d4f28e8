"""TLS for the webhook: TLS 1.2 or later with modern suites only, and certificates reloaded from disk when rotated.

``load_cert_chain`` on the live ``SSLContext`` changes what new handshakes present; connections
already open keep theirs. So a rotation (cert-manager, a Secret update, ``certs generate``) needs no
restart and fails no request.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from fluxwarden.logs import log_fields

logger = logging.getLogger("fluxwarden.webhook.tls")


# TLS 1.2 suites with forward secrecy and AEAD only: Mozilla's "intermediate" profile without DHE
# (which needs parameters Python never sets). Set here, not left to uvicorn: before 0.48 its default
# was "TLSv1", which leaves TLS 1.2 with CBC-SHA1 suites (and NULL ones). TLS 1.3 suites are all
# modern and configured apart.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"


def harden(context: ssl.SSLContext) -> None:
    """TLS 1.2 or later, forward-secret AEAD suites only, no compression."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION


class CertificateReloader:
    """Watches a certificate pair and loads it into ``context`` when either file changes."""

    def __init__(self, context: ssl.SSLContext, cert_file: Path, key_file: Path) -> None:
        self.context = context
        self.cert_file = cert_file
        self.key_file = key_file
        self._seen = self._stamp()
        self.loaded = self._seen is not None

    def _stamp(self) -> tuple[float, float, int, int] | None:
        try:
            cert, key = self.cert_file.stat(), self.key_file.stat()
        except OSError:
            return None
        return (cert.st_mtime, key.st_mtime, cert.st_ino, key.st_ino)

    def reload_if_changed(self) -> bool:
        """Load the pair if it changed; a half-written or mismatched pair is retried next time."""
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            return False
        try:
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as exc:
            log_fields(logger, "certificate reload deferred", logging.WARNING, error=str(exc), file=str(self.cert_file))
            return False
        self._seen = stamp
        self.loaded = True
        log_fields(logger, "certificate reloaded", file=str(self.cert_file))
        return True

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()
