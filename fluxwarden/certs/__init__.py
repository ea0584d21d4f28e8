"""Certificates for the webhook and the test control plane: a CA, leaf certificates, PEM files.

Public surface: :class:`KeyPair`, :func:`generate_ca`, :func:`issue`, :func:`serving_sans`,
:func:`write_pair`, :func:`load_pair`, :func:`ca_bundle`, :func:`expiry`, :func:`ensure_serving_pair`.
"""

from fluxwarden.certs.authority import (
    KeyPair,
    ca_bundle,
    expiry,
    generate_ca,
    issue,
    load_pair,
    serving_sans,
    write_pair,
)
from fluxwarden.certs.files import ServingFiles, ensure_serving_pair

__all__ = [
    "KeyPair",
    "ServingFiles",
    "ca_bundle",
    "ensure_serving_pair",
    "expiry",
    "generate_ca",
    "issue",
    "load_pair",
    "serving_sans",
    "write_pair",
]
