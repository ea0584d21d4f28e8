"""Deliveries: a bounded queue and a pool of senders on the event server's loop.

``offer`` takes all of one event's deliveries or none (the server then answers 429, so the sender
retries and nothing is half-sent). Each delivery finds its Provider, resolves it (cached), writes
the on-change marks it depends on, and sends. A failure is a Warning event on the Alert
(``NotificationDispatchFailed``) and never holds up another delivery.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from fluxwarden.controllers.notification import providers
from fluxwarden.controllers.notification.api import DISPATCH_FAILED, INVALID_CONFIG
from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.notification.matching import CompiledAlert
from fluxwarden.controllers.notification.onchange import OnChange
from fluxwarden.controllers.notification.targets import Targets
from fluxwarden.controllers.runtime.events import WARNING, EventRecorder
from fluxwarden.controllers.runtime.kube import KubeError

logger = logging.getLogger("fluxwarden.controllers.notification")


@dataclass(frozen=True)
class Delivery:
    alert: CompiledAlert
    notification: Event
    transition: bool = False  # on-change: the marks must be written before it is sent


@dataclass
class Counts:
    accepted: int = 0
    delivered: int = 0
    failed: int = 0
    skipped: int = 0  # no Provider, a suspended one, or a commit-status event without a revision


class Dispatcher:
    def __init__(
        self, targets: Targets, onchange: OnChange, events: EventRecorder, size: int, concurrency: int
    ) -> None:
        self.targets = targets
        self.onchange = onchange
        self.events = events
        self.size = size
        self.concurrency = concurrency
        self.counts = Counts()
        self._queue: asyncio.Queue[Delivery] | None = None
        self._workers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.size)
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.concurrency)]

    def offer(self, deliveries: list[Delivery]) -> bool:
        """Queue all of them, or none when they do not fit (call on the loop)."""
        assert self._queue is not None
        if self._queue.qsize() + len(deliveries) > self.size:
            return False
        for delivery in deliveries:
            self._queue.put_nowait(delivery)
        self.counts.accepted += len(deliveries)
        return True

    def pending(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def stop(self, grace: float) -> None:
        """Send what is queued for up to ``grace`` seconds, then stop the senders."""
        if self._queue is not None:
            try:
                await asyncio.wait_for(self._queue.join(), grace)
            except TimeoutError:
                logger.warning("notification: %d deliveries dropped at shutdown", self._queue.qsize())
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        await providers.close()

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            delivery = await self._queue.get()
            try:
                await self._deliver(delivery)
            except Exception:  # a bug in one delivery must not stop the sender
                logger.exception("notification: delivery for Alert %s/%s failed", *delivery.alert.key)
                self.counts.failed += 1
            finally:
                self._queue.task_done()

    async def _deliver(self, delivery: Delivery) -> None:
        alert, event = delivery.alert, delivery.notification
        provider = self.targets.provider(alert.namespace, alert.provider)
        if provider is None:
            self.counts.skipped += 1
            await self._warn(
                alert,
                INVALID_CONFIG,
                f"spec.providerRef: Provider {alert.namespace}/{alert.provider} not found; create it or fix the name",
            )
            return
        if (provider.get("spec") or {}).get("suspend"):
            self.counts.skipped += 1
            return
        try:
            target = self.targets.cached(provider)
            if target is None:
                target = await asyncio.to_thread(self.targets.resolve, provider)
        except providers.ProviderError as exc:  # the Provider as written cannot send: a config error
            self.counts.failed += 1
            await self._warn(alert, INVALID_CONFIG, str(exc))
            return
        if delivery.transition:
            try:
                await asyncio.to_thread(self.onchange.save, alert)
            except KubeError as exc:
                self.onchange.forget(alert)
                self.counts.failed += 1
                await self._warn(alert, DISPATCH_FAILED, f"on-change state not saved, nothing sent: {exc}")
                return
        try:
            await providers.deliver(target, event)
        except providers.DeliveryError as exc:
            self.counts.failed += 1
            obj = event.involved_object
            await self._warn(alert, DISPATCH_FAILED, f"{obj.kind} {obj.namespace}/{obj.name}: {exc}")
            return
        self.counts.delivered += 1

    async def _warn(self, alert: CompiledAlert, reason: str, message: str) -> None:
        logger.warning("Alert %s/%s: %s", alert.namespace, alert.name, message)
        await asyncio.to_thread(self.events.record, alert.obj, WARNING, reason, message)
