"""SSH key pairs for a FluxConfig whose ssh URL comes without a key (cryptography, OpenSSH formats)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from fluxwarden.controllers.fluxconfig.api import GENERATED_KEY_LABEL

RSA_BITS = 4096


@dataclass(frozen=True)
class KeyPair:
    private: bytes  # OpenSSH PEM, never logged
    public: str  # one authorized_keys line: "ssh-rsa AAAA... <comment>"


def generate(algorithm: str, comment: str) -> KeyPair:
    """A new key pair; ``algorithm`` is rsa (4096 bits), ecdsa (P-384) or ed25519."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    elif algorithm == "ecdsa":
        key = ec.generate_private_key(ec.SECP384R1())
    elif algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unknown ssh key algorithm {algorithm!r}; use rsa, ecdsa or ed25519")
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return KeyPair(private, f"{public.decode()} {comment}".strip())


def public_of(private: bytes) -> str | None:
    """The OpenSSH public line of a stored private key; None when it does not parse."""
    try:
        key = serialization.load_ssh_private_key(private, password=None)
    except (ValueError, TypeError):
        return None
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode()


def kept(live: dict[str, Any], comment: str) -> dict[str, bytes]:
    """The generated pair kept in our auth Secret (made once: it survives restarts and edits); {} if none."""
    meta = live.get("metadata") or {}
    stored = live.get("data") or {}
    if (meta.get("labels") or {}).get(GENERATED_KEY_LABEL) != "true" or not stored.get("identity"):
        return {}
    private = base64.b64decode(stored["identity"])
    public = public_of(private)
    return {"identity": private, "identity.pub": f"{public} {comment}".encode()} if public else {}


def new(algorithm: str, comment: str) -> dict[str, bytes]:
    pair = generate(algorithm, comment)
    return {"identity": pair.private, "identity.pub": pair.public.encode()}
