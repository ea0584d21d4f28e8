"""The event server: Flux events in, each routed to every matching Alert's delivery queue.

Status codes are Flux's: 202 accepted (with or without a matching Alert), 400 not a Flux event,
413 over 3 MiB, 429 a duplicate within the rate-limit interval. fluxwarden adds 429 when the
delivery queue is full: nothing of the event is kept, so the sender's retry is not a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from fluxwarden.controllers.notification.alerts import AlertIndex
from fluxwarden.controllers.notification.api import (
    ALERT,
    CONTROLLER,
    MAX_EVENT_BYTES,
    METADATA_CONFLICT,
    PROVIDER,
    SECRET,
    SOURCE_FETCH_FAILED,
    NotificationOptions,
)
from fluxwarden.controllers.notification.bodies import CLOSE, TooLarge, TooSlow, read_body, text
from fluxwarden.controllers.notification.dispatch import Delivery, Dispatcher
from fluxwarden.controllers.notification.event import BadEvent, Event, parse
from fluxwarden.controllers.notification.labels import Labels
from fluxwarden.controllers.notification.matching import CompiledAlert
from fluxwarden.controllers.notification.onchange import OnChange
from fluxwarden.controllers.notification.ratelimit import RateLimiter
from fluxwarden.controllers.notification.serving import ThreadedServer
from fluxwarden.controllers.notification.targets import Targets
from fluxwarden.controllers.runtime.events import WARNING, EventRecorder
from fluxwarden.controllers.runtime.informer import Informer
from fluxwarden.controllers.runtime.kube import Kube
from fluxwarden.controllers.runtime.service import Feed

logger = logging.getLogger("fluxwarden.controllers.notification")

ALERTS, PROVIDERS, SECRETS = Feed(ALERT), Feed(PROVIDER), Feed(SECRET, metadata_only=True)
SHUTDOWN_GRACE = 5.0
RETRY_LATER = {"Retry-After": "1"}  # a full queue kept nothing: unlike a duplicate's 429, retry this one
SYNC_WAIT = 5.0  # an event that arrives before the first list of Alerts waits for it, then 503
BLOCKING_THREADS = 8
MAX_PENDING_WARNINGS = 256
T = TypeVar("T")


def _feeds() -> tuple[Feed, ...]:
    return ALERTS, PROVIDERS, SECRETS


class EventRouter:
    """What one event goes through, from body to queued deliveries."""

    def __init__(self, kube: Kube, options: NotificationOptions) -> None:
        self.events = EventRecorder(kube, CONTROLLER)  # Warnings about Alerts: never posted back to us
        self.onchange = OnChange(kube)
        self.alerts = AlertIndex(options.settings, self.events, forget=self.onchange.forget)
        self.limiter = RateLimiter(options.rate_limit_interval)
        self.labels = Labels(kube)
        self.kube = kube
        self.options = options
        # Our own threads for the blocking calls (API reads and writes), apart from everyone else's.
        self.executor = ThreadPoolExecutor(BLOCKING_THREADS, thread_name_prefix="notification")
        self.dispatcher: Dispatcher | None = None
        self._informers: list[Informer] = []
        self._warnings = 0  # Warning events waiting to be written

    def bind(self, informers: dict[Feed, Informer]) -> None:
        targets = Targets(self.kube, informers[PROVIDERS], informers[SECRETS])
        self.dispatcher = Dispatcher(
            targets,
            self.onchange,
            self._warn,
            self.executor,
            self.options.queue_size,
            self.options.delivery_concurrency,
        )
        self.alerts.follow(informers[ALERTS])
        self._informers = [informers[feed] for feed in _feeds()]

    async def _blocking(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, call, *args)

    async def _synced(self) -> bool:
        """Whether Alerts, Providers and Secrets are listed, waiting a little at start (no thread held)."""
        deadline = time.monotonic() + SYNC_WAIT
        while not all(informer.synced.is_set() for informer in self._informers):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def handle(self, request: Request) -> Response:
        try:
            event = parse(await read_body(request, MAX_EVENT_BYTES, self.options.read_timeout))
        except TooLarge:
            return text(413, f"event over {MAX_EVENT_BYTES >> 20} MiB")
        except TooSlow:
            return text(408, "the body did not arrive in time", CLOSE)
        except ClientDisconnect:
            return text(400, "the client went away before sending the whole body")
        except BadEvent as exc:
            return text(400, str(exc))
        if not await self._synced():  # never a 202 for an event routed against an empty index
            return text(503, "Alerts are not listed yet; retry", headers={"Retry-After": "1"})
        if not self.limiter.allow(event):
            return text(429, "duplicate event within the rate-limit interval; discarded")
        admitted, event = event, event.without_internal()  # the limiter's key has the token; sending does not
        matched = await self._matching(event)
        assert self.dispatcher is not None
        if len(matched) + self.dispatcher.pending() > self.options.queue_size:
            self.limiter.forget(admitted)
            return text(429, "delivery queue full; retry later", RETRY_LATER)
        deliveries = await self._deliveries(event, matched)
        if not self.dispatcher.offer(deliveries):  # filled meanwhile, or a lagging Provider's lane is full
            self.limiter.forget(admitted)
            for delivery in deliveries:
                if delivery.transition:
                    self.onchange.undo(delivery.alert, delivery.notification)
            return text(429, "delivery queue full; retry later", RETRY_LATER)
        return Response(status_code=202)

    async def _matching(self, event: Event) -> list[CompiledAlert]:
        candidates = self.alerts.for_namespace(event.involved_object.namespace)
        labels: dict[str, str] | None = None
        needing = [alert for alert in candidates if alert.needs_labels(event)]
        if needing:
            labels = await self._blocking(self.labels.of, event)
            if labels is None:
                obj = event.involved_object
                message = f"error getting source object {obj.kind}/{obj.namespace}/{obj.name}"
                for alert in needing:
                    self._warn(alert, SOURCE_FETCH_FAILED, message)
        return [alert for alert in candidates if alert.matches(event, lambda _: labels)]

    async def _deliveries(self, event: Event, matched: list[CompiledAlert]) -> list[Delivery]:
        deliveries = []
        for alert in matched:
            transition = False
            if alert.on_change:
                if not self.onchange.loaded(alert):
                    await self._blocking(self.onchange.load, alert)
                transition = self.onchange.decide(alert, event)
                if not transition:
                    assert self.dispatcher is not None
                    self.dispatcher.counts.held += 1
                    continue
            notification, conflicts = alert.notification(event)
            if conflicts:
                self._conflicts(alert, conflicts)
            deliveries.append(Delivery(alert, notification, transition))
        return deliveries

    def _conflicts(self, alert: CompiledAlert, conflicts: dict[str, list[str]]) -> None:
        detail = ", ".join(f"{key}: {' and '.join(found)}" for key, found in sorted(conflicts.items()))
        message = (
            "metadata key conflicts detected (please refer to the Alert API docs and Flux RFC 0008 for more "
            f"information): {detail}"
        )
        self._warn(alert, METADATA_CONFLICT, message)

    def _warn(self, alert: CompiledAlert, reason: str, message: str) -> None:
        """A Warning event on the Alert, written off the loop; dropped when too many are waiting
        (the recorder sends one per message in five minutes anyway)."""
        if self._warnings >= MAX_PENDING_WARNINGS:
            return
        self._warnings += 1
        loop = asyncio.get_running_loop()

        def record() -> None:
            try:
                self.events.record(alert.obj, WARNING, reason, message)
            finally:
                loop.call_soon_threadsafe(self._warned)

        self.executor.submit(record)

    def _warned(self) -> None:
        self._warnings -= 1

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        assert self.dispatcher is not None
        try:
            yield
        finally:
            await self.dispatcher.stop(SHUTDOWN_GRACE)
            self.executor.shutdown(wait=False, cancel_futures=True)


class EventService:
    name = "event-server"
    feeds: tuple[Feed, ...] = _feeds()

    def __init__(self, kube: Kube, options: NotificationOptions) -> None:
        self.router = EventRouter(kube, options)
        app = Starlette(
            routes=[Route("/{path:path}", self.router.handle, methods=["POST"])], lifespan=self.router.lifespan
        )
        self.server = ThreadedServer(app, options.event_host, options.event_port, self.name, SHUTDOWN_GRACE)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, informers: dict[Feed, Informer], stop: threading.Event) -> None:
        self.router.bind(informers)
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def healthy(self) -> bool:
        return self.server.healthy()
