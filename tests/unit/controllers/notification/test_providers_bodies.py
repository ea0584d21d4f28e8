"""The chat and webhook providers' requests, parsed and checked against Flux's docs and the services' own
docs (Slack attachments, Discord's Slack-compatible endpoint, Teams Adaptive Cards, Alertmanager API v2).
Expected values are written out here, not read from the modules under test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from fluxwarden.controllers.notification.providers import Target, send
from fluxwarden.controllers.notification.providers.request import Request
from tests.unit.controllers.notification.providers_events import PROVIDER_UID, SHA, as_sent, kustomization_event

REVISION = f"main@sha1:{SHA}"


def target(kind: str, address: str = "https://hooks.example.com/services/T0/B0/x", **extra: object) -> Target:
    return Target(type=kind, namespace="apps", name="team", uid=PROVIDER_UID, address=address, **extra)  # type: ignore[arg-type]


def build(t: Target, **changes: object) -> Request:
    event = as_sent(kustomization_event(**changes))
    return send.BUILDERS[t.type](t, event)


def header(request: Request, name: str) -> str | None:
    found = [v for k, v in request.headers.items() if k.lower() == name.lower()]
    assert len(found) <= 1, f"{name} sent twice: {request.headers}"
    return found[0] if found else None


def test_generic_posts_the_event_json_with_gotk_component() -> None:
    request = build(target("generic", "https://webhook.example.com/flux"))
    assert (request.method, request.url) == ("POST", "https://webhook.example.com/flux")
    assert header(request, "Content-Type") == "application/json"
    assert header(request, "Gotk-Component") == "kustomize-controller"
    body = json.loads(request.body)
    assert body["involvedObject"] == {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "name": "webapp",
        "namespace": "apps",
        "uid": "7d0cdc51-ddcf-4743-b223-83ca5c699632",
    }
    assert (body["severity"], body["reason"], body["timestamp"]) == (
        "info",
        "ReconciliationSucceeded",
        "2022-10-28T07:26:19Z",
    )
    assert body["reportingController"] == "kustomize-controller"
    # Flux's combineEventMetadata strips the involved object's group from the keys.
    assert body["metadata"] == {"revision": REVISION}
    assert header(request, "X-Signature") is None


def test_generic_adds_the_secret_headers_over_its_own() -> None:
    headers = {"Authorization": "Bearer s3cret", "X-Forwarded-Proto": "https", "gotk-component": "mine"}
    request = build(target("generic", headers=headers))
    assert header(request, "Authorization") == "Bearer s3cret"
    assert header(request, "X-Forwarded-Proto") == "https"
    assert header(request, "Gotk-Component") == "mine"  # Header.Set after Flux's own: the Secret wins
    assert {"Authorization", "X-Forwarded-Proto"} <= set(request.credentials)


def test_generic_hmac_signs_the_exact_body_with_the_token() -> None:
    request = build(target("generic-hmac", token="hmac-key"))
    expected = "sha256=" + hmac.new(b"hmac-key", request.body, hashlib.sha256).hexdigest()
    assert header(request, "X-Signature") == expected
    scheme, _, digest = (header(request, "X-Signature") or "").partition("=")
    assert scheme == "sha256" and len(digest) == 64 and int(digest, 16) >= 0
    tampered = request.body.replace(b"webapp", b"webapq")
    assert "sha256=" + hmac.new(b"hmac-key", tampered, hashlib.sha256).hexdigest() != expected


def test_slack_attachment_fields_color_author_and_defaults() -> None:
    request = build(target("slack"), severity="error", message="health check failed")
    assert header(request, "Authorization") is None
    body = json.loads(request.body)
    assert body["channel"] == ""  # the webhook's own channel
    assert body["username"] == "kustomize-controller"  # Flux: the reporting controller by default
    (attachment,) = body["attachments"]
    assert attachment["color"] == "danger"
    assert attachment["author_name"] == "kustomization/webapp.apps"
    assert attachment["text"] == "health check failed"
    assert attachment["mrkdwn_in"] == ["text"]
    assert attachment["fields"] == [{"title": "revision", "value": REVISION, "short": False}]


def test_slack_web_api_channel_username_token_and_ok_check() -> None:
    t = target("slack", "https://slack.com/api/chat.postMessage", channel="general", username="flux", token="xoxb-1")
    request = build(t, metadata={"kustomize.toolkit.fluxcd.io/revision": REVISION, "summary": "us-east-2"})
    body = json.loads(request.body)
    assert (body["channel"], body["username"]) == ("general", "flux")
    assert body["attachments"][0]["color"] == "good"
    titles = {f["title"]: f["value"] for f in body["attachments"][0]["fields"]}
    assert titles == {"revision": REVISION, "summary": "us-east-2"}
    assert header(request, "Authorization") == "Bearer xoxb-1"
    assert request.check is not None
    assert request.check(b'{"ok":true,"channel":"C1"}') is None
    assert "channel_not_found" in (request.check(b'{"ok":false,"error":"channel_not_found"}') or "")
    assert request.check(b"<html>") is not None
    assert build(target("slack")).check is None  # incoming webhooks answer with real status codes


def test_discord_goes_to_the_slack_compatible_endpoint() -> None:
    request = build(target("discord", "https://discord.com/api/webhooks/123/tok"), severity="error")
    assert request.url == "https://discord.com/api/webhooks/123/tok/slack"
    body = json.loads(request.body)
    (attachment,) = body["attachments"]
    assert attachment["color"] == "danger"
    assert attachment["author_name"] == "kustomization/webapp.apps"
    assert attachment["fields"][0]["title"] == "revision"
    assert body["username"] == "kustomize-controller"
    already = build(target("discord", "https://discord.com/api/webhooks/123/tok/slack"))
    assert already.url == "https://discord.com/api/webhooks/123/tok/slack"
    with_query = build(target("discord", "https://discord.com/api/webhooks/1/t?wait=true"))
    assert with_query.url == "https://discord.com/api/webhooks/1/t/slack?wait=true"


def test_msteams_workflows_adaptive_card() -> None:
    address = "https://prod-1.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=x"
    metadata = {"kustomize.toolkit.fluxcd.io/revision": REVISION, "summary": "prod", "env": "eu"}
    request = build(target("msteams", address), severity="error", message="boom", metadata=metadata)
    body = json.loads(request.body)
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    (container,) = card["body"]
    assert container["type"] == "Container"
    title, message, facts = container["items"]
    assert (title["type"], title["text"], title["weight"]) == ("TextBlock", "kustomization/webapp.apps", "bolder")
    assert (message["text"], message["color"], message["wrap"]) == ("boom", "attention", True)
    assert facts["type"] == "FactSet"
    # summary first, then the rest by key
    assert [(f["title"], f["value"]) for f in facts["facts"]] == [
        ("summary", "prod"),
        ("env", "eu"),
        ("revision", REVISION),
    ]
    info = json.loads(build(target("msteams", address)).body)
    assert "color" not in info["attachments"][0]["content"]["body"][0]["items"][1]


def test_msteams_office_connector_message_card() -> None:
    request = build(target("msteams", "https://xyz.webhook.office.com/webhookb2/abc"), severity="error")
    body = json.loads(request.body)
    assert body["@type"] == "MessageCard" and body["themeColor"] == "FF0000"
    (section,) = body["sections"]
    assert section["activitySubtitle"] == "kustomization/webapp.apps"
    assert section["facts"] == [{"name": "revision", "value": REVISION}]


def test_alertmanager_alert_labels_annotations_and_time() -> None:
    metadata = {"kustomize.toolkit.fluxcd.io/revision": REVISION, "summary": "cluster eu"}
    request = build(target("alertmanager", "https://am.example.com/api/v2/alerts"), metadata=metadata, reason="reason")
    (alert,) = json.loads(request.body)
    assert alert["status"] == "firing"
    assert alert["startsAt"] == "2022-10-28T07:26:19Z"
    assert "endsAt" not in alert
    assert alert["annotations"] == {"message": f"Applied revision: {REVISION}", "summary": "cluster eu"}
    assert alert["labels"] == {
        "revision": REVISION,
        "alertname": "FluxKustomizationReason",  # Flux's own test: "Flux" + kind + Title(reason)
        "severity": "info",
        "reason": "reason",
        "kind": "Kustomization",
        "name": "webapp",
        "namespace": "apps",
        "reportingcontroller": "kustomize-controller",
    }
    assert header(request, "Authorization") is None


def test_alertmanager_title_lowers_the_rest_of_the_reason() -> None:
    (alert,) = json.loads(build(target("alertmanager")).body)
    assert alert["labels"]["alertname"] == "FluxKustomizationReconciliationsucceeded"  # cases.Title lowers


def test_alertmanager_basic_auth_wins_over_bearer() -> None:
    basic = build(target("alertmanager", username="am", password="pw", token="tok"))
    scheme, _, pair = (header(basic, "Authorization") or "").partition(" ")
    assert scheme == "Basic" and base64.b64decode(pair) == b"am:pw"
    bearer = build(target("alertmanager", token="tok"))
    assert header(bearer, "Authorization") == "Bearer tok"
    assert "Authorization" in bearer.credentials
