"""``bitbucket`` (Bitbucket Server / Data Center): ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the
body>``, the event in ``X-Event-Key`` (``repo:refs_changed``...) matched against ``spec.events``.

Its "Test connection" (``diagnostics:ping``) is answered 200 and reconciles nothing, like GitHub's ping.
Bitbucket Cloud signs nothing: use a ``generic`` Receiver there, as Flux advises.
"""

from __future__ import annotations

from collections.abc import Sequence

from fluxwarden.controllers.notification.hooks.base import Hook, Verdict, allow_event, require_payload_type, verify_hmac

SIGNATURE = "X-Hub-Signature"
EVENT = "X-Event-Key"
PING = "diagnostics:ping"


def check(hook: Hook, token: bytes, events: Sequence[str]) -> Verdict:
    require_payload_type(hook, "Bitbucket Server")
    verify_hmac(hook, token, SIGNATURE, ("sha256",))
    event = hook.header(EVENT)
    if event == PING:
        return Verdict(event, trigger=False)
    allow_event(event, events, EVENT)
    return Verdict(event)
