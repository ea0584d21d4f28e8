"""``gitlab``: a commit status (``POST /api/v4/projects/{url-encoded path}/statuses/{sha}``, the token
as ``PRIVATE-TOKEN``); state ``success``/``failed``, the status ``name`` from ``commit_status``.
Like Flux it first lists the commit's statuses of that name and sends nothing when one already says so."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.notification.providers.addresses import git_repository
from fluxwarden.controllers.notification.providers.metadata import description
from fluxwarden.controllers.notification.providers.request import JSON_TYPE, Request, json_body
from fluxwarden.controllers.notification.providers.target import Target

STATES = {"info": "success", "error": "failed"}
TOKEN_HEADER = "PRIVATE-TOKEN"


def project(target: Target) -> tuple[str, str]:
    """The API base and the project id: its path, every ``/`` encoded (or a numeric id as it is)."""
    repo = git_repository(target.address)
    if repo is None:
        raise ValueError("the address is not https://<host>/<group>/<project>")
    return f"{repo.base}/api/v4", urllib.parse.quote(repo.path, safe="")


def status(event: Event, name: str) -> dict[str, str]:
    return {"state": STATES[event.severity], "name": name, "description": description(event)}


def listing(target: Target, sha: str, name: str) -> Request:
    base, pid = project(target)
    url = f"{base}/projects/{pid}/repository/commits/{sha}/statuses?name={urllib.parse.quote(name, safe='')}"
    return Request("GET", url, {TOKEN_HEADER: target.token}, credentials=frozenset({TOKEN_HEADER}))


def create(target: Target, event: Event, sha: str, name: str) -> Request:
    base, pid = project(target)
    headers = {TOKEN_HEADER: target.token, "Content-Type": JSON_TYPE}
    body = json_body(status(event, name))
    return Request(
        "POST", f"{base}/projects/{pid}/statuses/{sha}", headers, body, credentials=frozenset({TOKEN_HEADER})
    )


def duplicate(listed: bytes, wanted: dict[str, Any], sha: str) -> bool:
    """Any listed status for this sha with the same name, state and description (Flux's check)."""
    try:
        statuses = json.loads(listed)
    except ValueError:
        return False
    return any(
        isinstance(item, dict)
        and item.get("sha") == sha
        and item.get("status") == wanted["state"]
        and item.get("description") == wanted["description"]
        and item.get("name") == wanted["name"]
        for item in (statuses if isinstance(statuses, list) else [])
    )
