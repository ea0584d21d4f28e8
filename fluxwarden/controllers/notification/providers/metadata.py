"""What the notifiers read from an event, computed as Flux's notification-controller does.

The event server has already combined the metadata in Flux's order (``matching``); these read it.
"""

from __future__ import annotations

import re

from fluxwarden.controllers.notification.event import Event

PROGRESSING = "Progressing"  # Flux's commit-status notifiers skip events with this reason
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_HASH_LENGTHS = (40, 64)  # sha1, sha256


def commit_status_update(event: Event) -> bool:
    """Flux's ``<group>/commit_status: update`` marker: only commit-status providers take such events."""
    return event.meta("commit_status") == "update"


def commit_sha(event: Event) -> str | None:
    """The commit a commit status is for: ``commit`` metadata, else the hash in ``revision``; None if neither."""
    commit = event.meta("commit")
    if commit and _HEX.match(commit.strip()):
        return commit.strip().lower()
    revision = event.meta("revision")
    return parse_revision(revision) if revision else None


def parse_revision(revision: str) -> str | None:
    """The hash of a Flux revision: ``main@sha1:<hex>``, ``sha1:<hex>``, ``<hex>``, legacy ``main/<hex>``."""
    text = revision.strip().rpartition("@")[2]
    if ":" in text:
        algorithm, _, text = text.partition(":")
        if algorithm not in ("sha1", "sha256"):
            return None
    elif "/" in text:
        text = text.rpartition("/")[2]
    if len(text) in _HASH_LENGTHS and _HEX.match(text):
        return text.lower()
    return None


def split_camelcase(text: str) -> list[str]:
    """Words of a CamelCase reason as Flux's splitCamelcase: ``HealthCheckFailed`` -> Health, Check, Failed."""
    runs: list[list[str]] = []
    last = 0
    for char in text:
        kind = 1 if char.islower() else 2 if char.isupper() else 3 if char.isdigit() else 4
        if kind == last:
            runs[-1].append(char)
        else:
            runs.append([char])
        last = kind
    for i in range(len(runs) - 1):  # "PDFL" + "oader" -> "PDF" + "Loader"
        if runs[i] and runs[i + 1] and runs[i][0].isupper() and runs[i + 1][0].islower():
            runs[i + 1].insert(0, runs[i].pop())
    return ["".join(run) for run in runs if run]


def description(event: Event) -> str:
    """A commit status's description: the reason's words, lower case (``reconciliation succeeded``)."""
    return " ".join(split_camelcase(event.reason)).lower()


def object_name(event: Event) -> str:
    """``kustomization/webapp.apps``: the author/title line of chat notifiers."""
    obj = event.involved_object
    return f"{obj.kind.lower()}/{obj.name}.{obj.namespace}"


def default_commit_status(provider_uid: str, event: Event) -> str:
    """Flux's commit status context without commitStatusExpr: ``<kind>/<name>/<uid prefix>`` lower case."""
    obj = event.involved_object
    return f"{obj.kind}/{obj.name}/{provider_uid.split('-')[0]}".lower()
