"""The Starlette application: ``POST /validate``, ``POST /mutate``, ``GET /healthz``, ``GET /readyz``.

Routes read the body (bounded in size and time), hand it to :mod:`review`, and log and count the
decision. Errors are :class:`~fluxwarden.webhook.errors.WebhookError` values turned into JSON
responses by one handler.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from fluxwarden.logs import log_fields
from fluxwarden.tenancy import Settings, cut
from fluxwarden.webhook.errors import BadReview, InternalError, PayloadTooLarge, RequestTimeout, WebhookError
from fluxwarden.webhook.metrics import WebhookMetrics
from fluxwarden.webhook.review import AdmissionRequest, Decision, decide, parse_review

logger = logging.getLogger("fluxwarden.webhook")

MAX_BODY_BYTES = 3 * 1024 * 1024
REQUEST_TIMEOUT_SECONDS = 4.0  # the API server gives up after timeoutSeconds (5 in our manifests)
LOGGED_TEXT_LIMIT = 253  # a Kubernetes name's maximum; a longer value in a review is cut in the log


@dataclass(frozen=True)
class WebhookConfig:
    """What the application needs: the tenancy settings and its input limits."""

    settings: Settings
    max_body_bytes: int = MAX_BODY_BYTES
    request_timeout: float = REQUEST_TIMEOUT_SECONDS


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body, or :class:`PayloadTooLarge` / :class:`RequestTimeout` / :class:`BadReview`.

    Reads ASGI messages directly (no async generator): this runs once per review on the hot path.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body is {declared} bytes; AdmissionReviews over {limit} bytes are refused")
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise BadReview("client disconnected before sending the whole body")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body is over {limit} bytes; AdmissionReviews that large are refused")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise RequestTimeout(f"body not received within {timeout:g}s") from None
    if not size:
        raise BadReview("body is empty; send an admission.k8s.io/v1 AdmissionReview")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class ReviewResponse(JSONResponse):
    """JSON with ASCII escapes: a lone surrogate (valid JSON, not UTF-8) echoed in a uid cannot fail the answer."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


def _short(value: str) -> str:
    return cut(value, LOGGED_TEXT_LIMIT)


def _log_decision(route: str, review: AdmissionRequest, decision: Decision, seconds: float) -> None:
    log_fields(
        logger,
        "admission",
        route=route,
        uid=_short(review.uid),
        operation=review.operation,
        kind=_short(review.kind),
        namespace=_short(review.namespace),
        name=_short(review.name),
        user=_short(review.requester.username),
        dry_run=review.dry_run,
        allowed=decision.allowed,
        rules=decision.rules,
        patched=len(decision.patch),
        reason=decision.message or None,
        ms=round(seconds * 1000, 3),
    )


def create_app(
    config: WebhookConfig,
    metrics: WebhookMetrics | None = None,
    ready: Callable[[], bool] = lambda: True,
) -> Starlette:
    """Build the webhook application; ``ready`` says whether certificates are loaded."""
    meter = metrics or WebhookMetrics()

    async def admission(request: Request, route: str, mutating: bool) -> Response:
        started = time.perf_counter()
        body = await read_body(request, config.max_body_bytes, config.request_timeout)
        review = parse_review(body)
        try:
            decision = decide(review, config.settings, mutating=mutating)
            answer = ReviewResponse(decision.to_review())
        except Exception as exc:
            # A bug, not bad input: answered (500) on a connection that stays open, logged in full.
            logger.exception("review failed", extra={"fields": {"route": route, "uid": _short(review.uid)}})
            raise InternalError(f"the webhook failed on this review ({exc.__class__.__name__}); see its log") from None
        seconds = time.perf_counter() - started
        meter.observe(route, review.kind, review.operation, str(decision.allowed).lower(), seconds)
        _log_decision(route, review, decision, seconds)
        return answer

    async def validate(request: Request) -> Response:
        return await admission(request, "validate", mutating=False)

    async def mutate(request: Request) -> Response:
        return await admission(request, "mutate", mutating=True)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        if ready():
            return PlainTextResponse("ok")
        return PlainTextResponse("certificates not loaded", status_code=503)

    async def webhook_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WebhookError)
        route = request.url.path.strip("/")
        meter.observe(route, "", "", "error", 0.0)
        log_fields(logger, "bad request", logging.WARNING, route=route, status=exc.status_code, error=exc.detail)
        return ReviewResponse({"error": exc.detail, "code": exc.status_code}, status_code=exc.status_code)

    routes = [
        Route("/validate", validate, methods=["POST"]),
        Route("/mutate", mutate, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={WebhookError: webhook_error})
