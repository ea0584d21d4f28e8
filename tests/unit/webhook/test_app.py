"""The Starlette app in process: an unexpected failure is a one-line JSON 500, not a dropped connection."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
from starlette.applications import Starlette

from fluxwarden.tenancy import Settings
from fluxwarden.webhook.app import WebhookConfig, create_app
from tests.support.reviews import admission_review, legacy_helmrelease


def post(app: Starlette, route: str, body: bytes) -> httpx.Response:
    async def send() -> httpx.Response:
        # raise_app_exceptions: an exception that escaped the app would fail the test here.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="https://webhook") as client:
            return await client.post(route, content=body)

    return asyncio.run(send())


def test_a_bug_while_judging_is_a_logged_one_line_500(caplog: pytest.LogCaptureFixture) -> None:
    broken = Settings(exempt_namespaces=None)  # type: ignore[arg-type]  # stands in for a bug in a rule
    body = json.dumps(admission_review(legacy_helmrelease(), uid="u-9")).encode()
    with caplog.at_level(logging.ERROR, "fluxwarden.webhook"):
        answer = post(create_app(WebhookConfig(broken)), "/validate", body)
    assert answer.status_code == 500
    assert answer.json() == {"error": "the webhook failed on this review (TypeError); see its log", "code": 500}
    failed = [r for r in caplog.records if r.getMessage() == "review failed"]
    assert failed and failed[0].exc_info is not None, "the traceback is logged"


def test_a_lone_surrogate_in_the_uid_is_echoed_as_an_escape() -> None:
    review = json.dumps(admission_review(legacy_helmrelease(), uid="UID")).replace('"UID"', '"\\ud800"')
    answer = post(create_app(WebhookConfig(Settings())), "/validate", review.encode())
    assert answer.status_code == 200 and b'"uid":"\\ud800"' in answer.content
