"""The event server (first cut: parses and accepts; routing lands next)."""

from __future__ import annotations

import threading

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fluxwarden.controllers.notification.api import ALERT, PROVIDER, NotificationOptions
from fluxwarden.controllers.notification.event import BadEvent, parse
from fluxwarden.controllers.notification.serving import ThreadedServer
from fluxwarden.controllers.runtime.informer import Informer
from fluxwarden.controllers.runtime.kube import Kube
from fluxwarden.controllers.runtime.service import Feed


async def _event(request: Request) -> Response:
    try:
        parse(await request.body())
    except BadEvent as exc:
        return PlainTextResponse(f"{exc}\n", status_code=400)
    return Response(status_code=202)


class EventService:
    name = "event-server"
    feeds: tuple[Feed, ...] = (Feed(ALERT), Feed(PROVIDER))

    def __init__(self, kube: Kube, options: NotificationOptions) -> None:
        app = Starlette(routes=[Route("/{path:path}", _event, methods=["POST"])])
        self.server = ThreadedServer(app, options.event_host, options.event_port, self.name)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, informers: dict[Feed, Informer], stop: threading.Event) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def healthy(self) -> bool:
        return self.server.healthy()
