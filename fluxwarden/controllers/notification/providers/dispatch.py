"""``deliver``: one event to one resolved Provider, with Flux's skips, through the pooled transport."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

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
from fluxwarden.controllers.notification.providers.metadata import (
    PROGRESSING,
    commit_sha,
    commit_status_update,
    flat,
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


def notification(event: Event) -> Event:
    """The event as Flux's notifiers see it: metadata keys flattened by Flux's precedence."""
    return replace(event, metadata=flat(event))


def skipped(target: Target, event: Event) -> bool:
    """Flux's rules: a commit-status update only goes to commit-status types; those need a commit,
    skip Progressing events, and (here) events whose severity has no commit state (trace)."""
    if target.type not in COMMIT_STATUS:
        return commit_status_update(event)
    return event.reason == PROGRESSING or event.severity not in ("info", "error") or commit_sha(event) is None


async def deliver(target: Target, event: Event) -> None:
    if skipped(target, event):
        return
    note = notification(event)
    if target.type == "github":
        await _github(target, note)
    elif target.type == "gitlab":
        await _gitlab(target, note)
    else:
        await transport.send(target, BUILDERS[target.type](target, note))


async def _github(target: Target, event: Event) -> None:
    sha = commit_sha(event) or ""
    listed = await transport.send(target, github.listing(target, sha))
    if not github.duplicate(listed.body, github.status(target, event)):
        await transport.send(target, github.create(target, event, sha))


async def _gitlab(target: Target, event: Event) -> None:
    sha = commit_sha(event) or ""
    listed = await transport.send(target, gitlab.listing(target, event, sha))
    if not gitlab.duplicate(listed.body, gitlab.status(target, event), sha):
        await transport.send(target, gitlab.create(target, event, sha))
