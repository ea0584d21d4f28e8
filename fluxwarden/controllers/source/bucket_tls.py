"""A Bucket's ``certSecretRef`` as files the storage clients read: a CA bundle and a client pair.

``ca.crt`` is added to the system CAs (certifi), as Flux adds it to the system pool; ``tls.crt`` and
``tls.key`` (both or neither) give mTLS. The files live in a private temporary directory that
``close()`` removes. Called by ``bucket.BucketReconciler`` for the S3 and Azure clients.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import certifi

from fluxwarden.controllers.runtime.errors import Stalling

_PEM_CERT = b"-----BEGIN CERTIFICATE-----"


@dataclass
class TlsFiles:
    """Paths for ``verify`` (a CA bundle, or True for the system CAs) and ``client_cert`` (or None)."""

    verify: str | bool = True
    client_cert: tuple[str, str] | None = None
    directory: Path | None = None

    @classmethod
    def from_secret(cls, where: str, data: dict[str, bytes]) -> TlsFiles:
        ca, cert, key = data.get("ca.crt"), data.get("tls.crt"), data.get("tls.key")
        if not (ca or cert or key):
            raise Stalling("InvalidSpec", f"{where} has none of ca.crt, tls.crt, tls.key; add the CA as ca.crt")
        if bool(cert) != bool(key):
            have, missing = ("tls.crt", "tls.key") if cert else ("tls.key", "tls.crt")
            raise Stalling("InvalidSpec", f"{where} has {have} but no {missing}; add both for mTLS, or neither")
        if ca and _PEM_CERT not in ca:
            raise Stalling("InvalidSpec", f"{where}: ca.crt is not a PEM certificate; put the CA's PEM there")
        directory = Path(tempfile.mkdtemp(prefix="fluxwarden-bucket-tls-"))  # 0700
        files = cls(directory=directory)
        if ca:
            bundle = directory / "ca.pem"
            bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + ca)
            files.verify = str(bundle)
        if cert and key:
            (directory / "tls.crt").write_bytes(cert)
            (directory / "tls.key").write_bytes(key)
            (directory / "tls.key").chmod(0o600)
            files.client_cert = (str(directory / "tls.crt"), str(directory / "tls.key"))
        return files

    def close(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
