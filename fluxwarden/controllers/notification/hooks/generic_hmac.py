"""``generic-hmac``: ``X-Signature: sha1|sha256|sha512=<hex HMAC of the body keyed with the token>``.

No event filter (Flux ignores ``spec.events`` for this type).
"""

from __future__ import annotations

from collections.abc import Sequence

from fluxwarden.controllers.notification.hooks.base import ALGORITHMS, Hook, Verdict, verify_hmac

HEADER = "X-Signature"


def check(hook: Hook, token: bytes, events: Sequence[str]) -> Verdict:
    verify_hmac(hook, token, HEADER, ALGORITHMS)
    return Verdict()
