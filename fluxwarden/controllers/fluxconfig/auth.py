"""A FluxConfig's credentials in Flux's secret format, from its spec and protected settings.

Pure. The protected-settings Secret (``configurationProtectedSettingsRef``) holds ARM's write-only
values under their ARM names (``sshPrivateKey``, ``httpsKey``, ``bucketSecretKey``, and Azure Blob's
``accountKey``, ``sasToken``, ``clientSecret``, ``clientCertificate``, ``clientCertificatePassword``);
the spec holds the rest (``httpsUser``, base64 ``sshKnownHosts`` and ``httpsCACert``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from fluxwarden.controllers.fluxconfig.api import FluxConfigSpec
from fluxwarden.controllers.runtime.errors import Stalling
from fluxwarden.controllers.runtime.spec import mapping
from fluxwarden.tenancy.fluxconfig import url_kind

PRIVATE_KEY_MARK = b"-----BEGIN "


@dataclass(frozen=True)
class Credentials:
    data: dict[str, bytes]  # the auth Secret's data; empty: no Secret
    needs_key: bool  # an ssh URL without a key: the controller generates one


def _base64(spec: FluxConfigSpec, key: str) -> bytes | None:
    raw = spec.source.get(key)
    if not raw:
        return None
    try:
        return base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        raise Stalling(
            "InvalidSpec", f"spec.{spec.source_block}.{key}: not base64; encode the file (base64 -w0 FILE)"
        ) from None


def _ssh_key(value: bytes) -> bytes:
    """The PEM key itself; ARM's base64 of it (as the Azure CLI sends) is accepted too."""
    if PRIVATE_KEY_MARK in value:
        return value
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if PRIVATE_KEY_MARK not in decoded:
        raise Stalling(
            "InvalidSpec",
            "configurationProtectedSettings key sshPrivateKey: not a PEM private key; "
            "store the key file's content (kubectl create secret generic ... --from-file=sshPrivateKey=KEY)",
        )
    return decoded


def _git(spec: FluxConfigSpec, protected: dict[str, bytes]) -> Credentials:
    data: dict[str, bytes] = {}
    kind = url_kind(str(spec.source.get("url") or ""))
    if kind == "ssh":
        if known_hosts := _base64(spec, "sshKnownHosts"):
            data["known_hosts"] = known_hosts
        if key := protected.get("sshPrivateKey"):
            data["identity"] = _ssh_key(key)
        return Credentials(data, needs_key="identity" not in data)
    if user := spec.source.get("httpsUser"):
        data["username"] = str(user).encode()
    if password := protected.get("httpsKey"):
        data["password"] = password
    if ca := _base64(spec, "httpsCACert"):
        data["ca.crt"] = ca
    return Credentials(data, needs_key=False)


def _bucket(spec: FluxConfigSpec, protected: dict[str, bytes]) -> Credentials:
    data: dict[str, bytes] = {}
    if access := spec.source.get("accessKey"):
        data["accesskey"] = str(access).encode()
    if secret := protected.get("bucketSecretKey"):
        data["secretkey"] = secret
    return Credentials(data, needs_key=False)


_BLOB_SECRETS = {  # protected setting -> Flux's azure Bucket secret key
    "accountKey": "accountKey",
    "sasToken": "sasKey",
    "clientSecret": "clientSecret",
    "clientCertificate": "clientCertificate",
    "clientCertificatePassword": "clientCertificatePassword",
}


def _azure_blob(spec: FluxConfigSpec, protected: dict[str, bytes]) -> Credentials:
    data = {flux: protected[arm] for arm, flux in _BLOB_SECRETS.items() if protected.get(arm)}
    principal = mapping(spec.source.get("servicePrincipal"))
    for key in ("clientId", "tenantId"):
        if principal.get(key):
            data[key] = str(principal[key]).encode()
    if principal.get("clientCertificateSendChain"):
        data["clientCertificateSendChain"] = b"true"
    return Credentials(data, needs_key=False)


def credentials(spec: FluxConfigSpec, protected: dict[str, bytes]) -> Credentials:
    """What the auth Secret holds; nothing (and no key) when ``localAuthRef`` names one of the user's."""
    if spec.source.get("localAuthRef"):
        return Credentials({}, needs_key=False)
    if spec.source_kind == "GitRepository":
        return _git(spec, protected)
    if spec.source_kind == "Bucket":
        return _bucket(spec, protected)
    if spec.source_kind == "AzureBlob":
        return _azure_blob(spec, protected)
    return Credentials({}, needs_key=False)  # OCI: a docker-config Secret of the user's, by localAuthRef
