"""``discord``: the Slack message, posted to the webhook's Slack-compatible ``/slack`` endpoint."""

from __future__ import annotations

import posixpath
import urllib.parse

from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.notification.providers import slack
from fluxwarden.controllers.notification.providers.metadata import object_name
from fluxwarden.controllers.notification.providers.request import JSON_TYPE, Request, json_body
from fluxwarden.controllers.notification.providers.target import Target


def slack_url(address: str) -> str:
    """``.../webhooks/<id>/<token>`` -> ``.../webhooks/<id>/<token>/slack``, as Flux's NewDiscord."""
    if address.endswith("/slack"):
        return address
    parts = urllib.parse.urlsplit(address)
    return urllib.parse.urlunsplit(parts._replace(path=posixpath.join(parts.path or "/", "slack")))


def build(target: Target, event: Event) -> Request:
    # Discord picks the channel when the webhook is made: Flux sends none.
    body = json_body(slack.payload(event, channel="", username=target.username, author=object_name(event)))
    return Request("POST", slack_url(target.address), {"Content-Type": JSON_TYPE}, body)
