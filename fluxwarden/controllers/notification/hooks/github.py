"""``github`` (also Gitea): ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``, the event
in ``X-GitHub-Event`` matched against ``spec.events``.

Only the SHA-256 header is accepted: GitHub and Gitea send it beside the SHA-1 one, so there is no
reason to accept the weaker one alone (Flux falls back to it). A ``ping`` (sent when the webhook is
created) is answered 200 and reconciles nothing, whatever ``spec.events`` says: it carries no change.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from fluxwarden.controllers.notification.hooks.base import (
    JSON,
    Hook,
    Rejected,
    Verdict,
    allow_event,
    media_type,
    require_payload_type,
    verify_hmac,
)

SIGNATURE = "X-Hub-Signature-256"
EVENT = "X-GitHub-Event"
PING = "ping"


def check(hook: Hook, token: bytes, events: Sequence[str]) -> Verdict:
    require_payload_type(hook, "GitHub")
    verify_hmac(hook, token, SIGNATURE, ("sha256",))
    event = hook.header(EVENT)
    if media_type(hook) == JSON:
        try:
            json.loads(hook.body)
        except (ValueError, RecursionError):
            raise Rejected("the body is not JSON, though Content-Type says it is") from None
    if event == PING:
        return Verdict(event, trigger=False)
    allow_event(event, events, EVENT)
    return Verdict(event)
