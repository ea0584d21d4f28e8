"""``generic``: any request to the path triggers; the path itself is the secret (Flux's behaviour)."""

from __future__ import annotations

from collections.abc import Sequence

from fluxwarden.controllers.notification.hooks.base import Hook, Verdict


def check(hook: Hook, token: bytes, events: Sequence[str]) -> Verdict:
    return Verdict()
