"""``gitlab``: ``X-Gitlab-Token`` carries the token itself; the event in ``X-Gitlab-Event``
(``Push Hook``, ``Tag Push Hook``...) is matched against ``spec.events``."""

from __future__ import annotations

from collections.abc import Sequence

from fluxwarden.controllers.notification.hooks.base import Hook, Rejected, Verdict, allow_event, token_matches

TOKEN = "X-Gitlab-Token"
EVENT = "X-Gitlab-Event"


def check(hook: Hook, token: bytes, events: Sequence[str]) -> Verdict:
    value = hook.header(TOKEN)
    if not value:
        raise Rejected(f"{TOKEN} is missing; set the webhook's secret token to the Receiver's token")
    if not token_matches(value, token):
        raise Rejected(f"{TOKEN} does not match the Receiver's token")
    event = hook.header(EVENT)
    allow_event(event, events, EVENT)
    return Verdict(event)
