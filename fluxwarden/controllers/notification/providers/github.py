"""``github``: a commit status (``POST /repos/{owner}/{repo}/statuses/{sha}``) on api.github.com, or
``<host>/api/v3`` for GitHub Enterprise Server; state ``success``/``failure`` from the severity, the
context from ``commit_status``, the reason's words as description. Like Flux it first lists the
commit's statuses and sends nothing when the newest one of that context already says so."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.notification.providers.addresses import Repository, git_repository
from fluxwarden.controllers.notification.providers.metadata import description
from fluxwarden.controllers.notification.providers.request import JSON_TYPE, Request, json_body
from fluxwarden.controllers.notification.providers.target import Target

API_VERSION = "2022-11-28"
STATES = {"info": "success", "error": "failure"}
PER_PAGE = 50  # Flux lists one page of this size


def api_base(repo: Repository) -> str:
    return "https://api.github.com" if repo.host == "github.com" else f"{repo.base}/api/v3"


def owner_repo(target: Target) -> tuple[Repository, str, str]:
    repo = git_repository(target.address)
    if repo is None or repo.path.count("/") != 1:
        raise ValueError("the address is not https://<host>/<owner>/<repository>")
    owner, name = repo.path.split("/")
    return repo, urllib.parse.quote(owner, safe=""), urllib.parse.quote(name, safe="")


def status(event: Event, context: str) -> dict[str, str]:
    return {"state": STATES[event.severity], "description": description(event), "context": context}


def _headers(target: Target) -> dict[str, str]:
    return {
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {target.token}",
        "X-GitHub-Api-Version": API_VERSION,
    }


def listing(target: Target, sha: str) -> Request:
    repo, owner, name = owner_repo(target)
    url = f"{api_base(repo)}/repos/{owner}/{name}/commits/{sha}/statuses?per_page={PER_PAGE}"
    return Request("GET", url, _headers(target), credentials=frozenset({"Authorization"}))


def create(target: Target, event: Event, sha: str, context: str) -> Request:
    repo, owner, name = owner_repo(target)
    url = f"{api_base(repo)}/repos/{owner}/{name}/statuses/{sha}"
    headers = _headers(target) | {"Content-Type": JSON_TYPE}
    return Request("POST", url, headers, json_body(status(event, context)), credentials=frozenset({"Authorization"}))


def duplicate(listed: bytes, wanted: dict[str, Any]) -> bool:
    """The newest status of the same context has the same state and description (GitHub lists newest first)."""
    try:
        statuses = json.loads(listed)
    except ValueError:
        return False
    for item in statuses if isinstance(statuses, list) else []:
        if isinstance(item, dict) and item.get("context") == wanted["context"]:
            return bool(item.get("state") == wanted["state"] and item.get("description") == wanted["description"])
    return False
