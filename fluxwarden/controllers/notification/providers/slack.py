"""``slack``: an attachment coloured by severity, the involved object as author, metadata as fields;
``channel`` and ``username`` (the reporting controller by default); the token as a Bearer header."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.notification.providers.metadata import object_name
from fluxwarden.controllers.notification.providers.request import JSON_TYPE, Request, json_body
from fluxwarden.controllers.notification.providers.target import Target

POST_MESSAGE_PATH = "/api/chat.postMessage"  # Slack's Web API answers 200 even on failure: read "ok"


def payload(event: Event, *, channel: str, username: str, author: str) -> dict[str, Any]:
    """The Slack message as Flux's SlackPayload marshals it (empty channel/icon keys included)."""
    fields = [{"title": k, "value": v, "short": False} for k, v in sorted(event.metadata.items())]
    return {
        "channel": channel,
        "username": username or event.reporting_controller,
        "icon_url": "",
        "icon_emoji": "",
        "attachments": [
            {
                "color": "danger" if event.severity == "error" else "good",
                "author_name": author,
                "text": event.message,
                "mrkdwn_in": ["text"],
                "fields": fields,
            }
        ],
    }


def build(target: Target, event: Event) -> Request:
    body = json_body(payload(event, channel=target.channel, username=target.username, author=object_name(event)))
    headers = {"Content-Type": JSON_TYPE}
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    web_api = urllib.parse.urlsplit(target.address).path.endswith(POST_MESSAGE_PATH)
    return Request(
        "POST",
        target.address,
        headers,
        body,
        credentials=frozenset({"Authorization"}),
        check=check_web_api if web_api else None,
    )


def check_web_api(body: bytes) -> str | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return "Slack's answer is not JSON"
    if isinstance(answer, dict) and answer.get("ok") is True:
        return None
    error = answer.get("error") if isinstance(answer, dict) else None
    return f"Slack answered ok=false: {str(error)[:100]}" if error else "Slack answered without ok=true"
