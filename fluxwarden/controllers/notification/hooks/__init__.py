"""Receiver types: one module per type with its signature check and event filter.

``verify(type, hook, token, events)`` runs the type's check: a :class:`Verdict`, or :class:`Rejected`
(400). ``SUPPORTED`` are the types fluxwarden serves; Flux's others stall the Receiver.
"""

from __future__ import annotations

from collections.abc import Sequence

from fluxwarden.controllers.notification.hooks import bitbucket, generic, generic_hmac, github, gitlab
from fluxwarden.controllers.notification.hooks.base import Check, Hook, Rejected, Verdict, hook
from fluxwarden.controllers.notification.hooks.path import PREFIX, webhook_path

CHECKS: dict[str, Check] = {
    "generic": generic.check,
    "generic-hmac": generic_hmac.check,
    "github": github.check,
    "gitlab": gitlab.check,
    "bitbucket": bitbucket.check,
}
SUPPORTED = tuple(CHECKS)


def verify(type_: str, request: Hook, token: bytes, events: Sequence[str]) -> Verdict:
    check = CHECKS.get(type_)
    if check is None:
        raise Rejected(f"spec.type '{type_[:40]}' is not served by fluxwarden; use one of {', '.join(SUPPORTED)}")
    return check(request, token, events)


__all__ = ["PREFIX", "SUPPORTED", "Hook", "Rejected", "Verdict", "hook", "verify", "webhook_path"]
