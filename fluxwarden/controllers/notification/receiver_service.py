"""The receiver server (placeholder until the receivers work lands): every path is 404."""

from __future__ import annotations

import threading

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fluxwarden.controllers.notification.api import RECEIVER, NotificationOptions
from fluxwarden.controllers.notification.serving import ThreadedServer
from fluxwarden.controllers.runtime.informer import Informer
from fluxwarden.controllers.runtime.kube import Kube
from fluxwarden.controllers.runtime.service import Feed


async def _not_found(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no receiver at this path\n", status_code=404)


class ReceiverService:
    name = "receiver-server"
    feeds: tuple[Feed, ...] = (Feed(RECEIVER),)

    def __init__(self, kube: Kube, options: NotificationOptions) -> None:
        app = Starlette(routes=[Route("/{path:path}", _not_found, methods=["GET", "POST"])])
        self.server = ThreadedServer(app, options.receiver_host, options.receiver_port, self.name)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, informers: dict[Feed, Informer], stop: threading.Event) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def healthy(self) -> bool:
        return self.server.healthy()
