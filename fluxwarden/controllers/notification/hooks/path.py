"""A Receiver's webhook path, exactly as Flux computes it: ``/hook/`` + hex(sha256(token + name + namespace))."""

from __future__ import annotations

import hashlib

PREFIX = "/hook/"


def webhook_path(token: bytes, name: str, namespace: str) -> str:
    return PREFIX + hashlib.sha256(token + name.encode() + namespace.encode()).hexdigest()
