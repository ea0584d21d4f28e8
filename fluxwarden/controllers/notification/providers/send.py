"""``deliver``: one event to one resolved Provider, with Flux's skips, through the pooled transport."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.notification.providers import (
    alertmanager,
    discord,
    generic,
    github,
    gitlab,
    msteams,
    slack,
    transport,
)
from fluxwarden.controllers.notification.providers.commit_status import identifier
from fluxwarden.controllers.notification.providers.metadata import (
    PROGRESSING,
    commit_sha,
    commit_status_update,
)
from fluxwarden.controllers.notification.providers.request import Request
from fluxwarden.controllers.notification.providers.target import Target
from fluxwarden.controllers.notification.providers.types import COMMIT_STATUS

BUILDERS: dict[str, Callable[[Target, Event], Request]] = {
    "generic": generic.build,
    "generic-hmac": generic.build,
    "slack": slack.build,
    "discord": discord.build,
    "msteams": msteams.build,
    "alertmanager": alertmanager.build,
}


def skipped(target: Target, event: Event) -> bool:
    """Flux's rules: a commit-status update only goes to commit-status types; those need a commit,
    skip Progressing events, and (here) events whose severity has no commit state (trace)."""
    if target.type not in COMMIT_STATUS:
        return commit_status_update(event)
    return event.reason == PROGRESSING or event.severity not in ("info", "error") or commit_sha(event) is None


async def deliver(target: Target, event: Event, *, alert: dict[str, Any] | None = None) -> None:
    """Send ``event`` (metadata already combined for its Alert); ``alert``, the Alert object, is only
    read by a ``spec.commitStatusExpr`` that names it. :class:`DeliveryError` when the send failed."""
    if skipped(target, event):
        return
    note = event  # its metadata is already combined in Flux's order (matching.CompiledAlert.notification)
    if target.type == "github":
        await _github(target, note, identifier(target, note, alert))
    elif target.type == "gitlab":
        await _gitlab(target, note, identifier(target, note, alert))
    else:
        await transport.send(target, BUILDERS[target.type](target, note))


async def _github(target: Target, event: Event, context: str) -> None:
    sha = commit_sha(event) or ""
    listed = await transport.send(target, github.listing(target, sha))
    if not github.duplicate(listed.body, github.status(event, context)):
        await transport.send(target, github.create(target, event, sha, context))


async def _gitlab(target: Target, event: Event, name: str) -> None:
    sha = commit_sha(event) or ""
    listed = await transport.send(target, gitlab.listing(target, sha, name))
    if not gitlab.duplicate(listed.body, gitlab.status(event, name), sha):
        await transport.send(target, gitlab.create(target, event, sha, name))
