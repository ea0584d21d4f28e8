"""The receiver server (Flux's ``--receiverAddr``): webhooks from git hosts ask sources to reconcile at once.

``POST /hook/<digest>``: the Receiver whose ``status.webhookPath`` it is (an index over the shared
informer cache, no API call); 404 none, 503 suspended or not Ready, 413 a body over 3 MiB, 400 a
request its type's check rejects (nothing triggered), 200 once every ``spec.resources[]`` object
carries a new ``reconcile.fluxcd.io/requestedAt``, 500 if one could not be annotated (the others
still are), as Flux. The Secret read and the patches are sync Kube calls: they run in threads.
Answers are one line of text; the token and signatures never appear in them or in the log.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fluxwarden.controllers.notification.api import MAX_EVENT_BYTES, RECEIVER, NotificationOptions
from fluxwarden.controllers.notification.bodies import CLOSE, TooLarge, TooSlow, read_body
from fluxwarden.controllers.notification.bodies import text as _text
from fluxwarden.controllers.notification.hooks import Rejected, hook, verify
from fluxwarden.controllers.notification.receiver import TOKEN_KEY, secret_name
from fluxwarden.controllers.notification.receiver_index import ReceiverIndex
from fluxwarden.controllers.notification.receiver_targets import annotate, rfc3339_nano, targets
from fluxwarden.controllers.notification.serving import ThreadedServer
from fluxwarden.controllers.runtime.conditions import is_true
from fluxwarden.controllers.runtime.controller import Cache
from fluxwarden.controllers.runtime.informer import Informer
from fluxwarden.controllers.runtime.kube import Kube, KubeError, NotFound, key_of
from fluxwarden.controllers.runtime.restmapper import RestMapper
from fluxwarden.controllers.runtime.service import Feed

logger = logging.getLogger("fluxwarden.controllers.notification")

MAX_BODY_BYTES = MAX_EVENT_BYTES  # Flux's maxRequestSizeBytes, the same for both servers: 413 above
FEED = Feed(RECEIVER)


async def _not_found(request: Request) -> PlainTextResponse:
    return _text(404, "no Receiver at this path; webhook paths are /hook/<digest> (a Receiver's status.webhookPath)")


class ReceiverService:
    name = "receiver-server"
    feeds: tuple[Feed, ...] = (FEED,)

    def __init__(self, kube: Kube, options: NotificationOptions) -> None:
        self.kube = kube
        self.mapper = RestMapper(kube)
        self.index = ReceiverIndex()
        self.read_timeout = options.read_timeout
        self.cache: Cache | None = None
        app = Starlette(
            routes=[
                Route("/hook/{digest}", self._hook, methods=["POST"]),
                Route("/{path:path}", _not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            ]
        )
        self.server = ThreadedServer(app, options.receiver_host, options.receiver_port, self.name)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, informers: dict[Feed, Informer], stop: threading.Event) -> None:
        informer = informers[FEED]
        informer.add_handler(self.index.handle)  # first, so no event falls between the fill and the handler
        self.index.fill(informer.items())
        self.cache = informer
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def healthy(self) -> bool:
        return self.server.healthy()

    def _token(self, receiver: dict[str, Any]) -> bytes:
        namespace = str(receiver["metadata"]["namespace"])
        secret = secret_name(receiver)
        try:
            data = self.kube.secret_data(namespace, secret)
        except NotFound:
            raise Rejected(f"its Secret {namespace}/{secret} is gone; create it with a 'token' key") from None
        if TOKEN_KEY not in data:
            raise Rejected(f"its Secret {namespace}/{secret} has no '{TOKEN_KEY}' key; add one")
        return data[TOKEN_KEY]

    async def _hook(self, request: Request) -> PlainTextResponse:
        receiver = self.index.find(request.url.path, self.cache) if self.cache is not None else None
        if receiver is None:
            return await _not_found(request)
        namespace, name = key_of(receiver)
        where = f"Receiver {namespace}/{name}"
        spec = receiver.get("spec") or {}
        if spec.get("suspend"):
            return _text(503, f"{where} is suspended; resume it to take webhooks")
        if not is_true(receiver):
            return _text(503, f"{where} is not ready; see its Ready condition")
        try:
            body = await read_body(request, MAX_BODY_BYTES, self.read_timeout)
        except TooSlow:
            return _text(408, "the body did not arrive in time", CLOSE)
        except TooLarge:
            return _text(413, f"the body is over {MAX_BODY_BYTES >> 20} MiB, the most a Receiver takes")
        except ClientDisconnect:
            return _text(400, "the client went away before sending the whole body")
        try:
            token = await asyncio.to_thread(self._token, receiver)
            events = [str(e) for e in spec.get("events") or []]
            verdict = verify(str(spec.get("type") or ""), hook(request.headers.items(), body), token, events)
        except Rejected as exc:
            logger.warning("%s refused a webhook: %s", where, exc)
            return _text(400, f"{where}: {exc}")
        except KubeError as exc:
            logger.warning("%s cannot read its token: %s", where, exc)
            return _text(500, f"{where}: cannot read its token Secret: {exc}")
        if not verdict.trigger:
            logger.info("%s answered a %s event; nothing to reconcile", where, verdict.event)
            return _text(200, f"{where} answered {verdict.event}; nothing to reconcile")
        stamp = rfc3339_nano()
        outcome = await asyncio.to_thread(annotate, self.kube, self.mapper, targets(receiver), stamp)
        event = f" ({verdict.event})" if verdict.event else ""
        if outcome.annotated:
            logger.info("%s%s requested a reconcile of %s", where, event, ", ".join(outcome.annotated))
        if outcome.errors:
            for error in outcome.errors:
                logger.error("%s could not annotate %s", where, error)
            return _text(
                500,
                f"{where}: {outcome.errors[0]}"
                + (f" (and {len(outcome.errors) - 1} more)" if len(outcome.errors) > 1 else ""),
            )
        return _text(200, f"{where} requested a reconcile of {len(outcome.annotated)} object(s) at {stamp}")
