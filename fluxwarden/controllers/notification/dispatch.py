"""Deliveries: one lane per Provider, sent on the event server's loop, so one dead Provider delays no other.

Flux starts one goroutine per notification; here each delivery is a task too, with two bounds:
``PER_PROVIDER`` sends in flight per Provider (a Provider that times out holds only its own lane)
and ``concurrency`` per namespace (a tenant with many hanging Providers holds only its own share).

``offer`` takes all of one event's deliveries or none (the server then answers 429: nothing
half-sent, and the retry is not a duplicate). A Provider whose backlog is full (``LANE_LIMIT``) and
whose last send failed is not answering: it loses that delivery, with a Warning, and the event's
other deliveries still go. A full lane that answers (only slow to drain) refuses the event instead,
so nothing promised with a 202 is dropped. A failure is a Warning on the Alert
(``NotificationDispatchFailed``, Flux's wording) and, in the on-change mode, undoes its transition.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from fluxwarden.controllers.notification import providers
from fluxwarden.controllers.notification.api import DISPATCH_FAILED
from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.notification.matching import CompiledAlert
from fluxwarden.controllers.notification.onchange import OnChange
from fluxwarden.controllers.notification.targets import Targets
from fluxwarden.controllers.runtime.kube import KubeError

logger = logging.getLogger("fluxwarden.controllers.notification")

PER_PROVIDER = 4  # sends in flight to one Provider (its pooled client has 8 connections per origin)
LANE_LIMIT = 1000  # deliveries waiting for one Provider; beyond, it is not keeping up: drop, warn
Lane = tuple[str, str]  # the Provider's namespace and name


@dataclass(frozen=True)
class Delivery:
    alert: CompiledAlert
    notification: Event
    transition: bool = False  # on-change: the marks must be written before it is sent, undone if it fails

    @property
    def lane(self) -> Lane:
        return self.alert.namespace, self.alert.provider

    @property
    def subject(self) -> str:
        obj = self.notification.involved_object
        return f"{obj.kind}/{obj.namespace}/{obj.name}"


@dataclass
class Counts:
    accepted: int = 0
    delivered: int = 0
    failed: int = 0
    skipped: int = 0  # no Provider, a suspended one, or a lane that was full
    held: int = 0  # on-change: not a transition


class Dispatcher:
    def __init__(
        self,
        targets: Targets,
        onchange: OnChange,
        warn: Callable[[CompiledAlert, str, str], None],
        executor: Executor,
        size: int,
        concurrency: int,
    ) -> None:
        self.targets = targets
        self.onchange = onchange
        self.warn = warn
        self.executor = executor
        self.size = size
        self.concurrency = concurrency
        self.counts = Counts()
        self._lanes: dict[Lane, collections.deque[Delivery]] = {}
        self._busy: collections.Counter[Lane] = collections.Counter()
        self._busy_in: collections.Counter[str] = collections.Counter()  # by namespace
        self._waiting = 0
        self._failing: set[Lane] = set()  # lanes whose last send failed
        self._running: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def pending(self) -> int:
        """Deliveries accepted and not yet started."""
        return self._waiting

    def busy(self) -> bool:
        """Any delivery waiting or in flight (readable from another thread: two plain reads)."""
        return bool(self._waiting or self._running)

    def offer(self, deliveries: list[Delivery]) -> bool:
        """Queue all of them, or none when they do not fit (call on the loop)."""
        if self._waiting + len(deliveries) > self.size:
            return False
        if any(self._full(d.lane) and d.lane not in self._failing for d in deliveries):
            return False  # a lane that answers but lags: the sender retries later, nothing lost
        for delivery in deliveries:
            lane = self._lanes.setdefault(delivery.lane, collections.deque())
            if len(lane) >= LANE_LIMIT:
                self.counts.skipped += 1
                self._undo(delivery)
                self.warn(
                    delivery.alert,
                    DISPATCH_FAILED,
                    f"failed to dispatch notification for {delivery.subject}: Provider {delivery.lane[0]}/"
                    f"{delivery.lane[1]} has {LANE_LIMIT} deliveries waiting (it is not answering); dropped",
                )
                continue
            lane.append(delivery)
            self._waiting += 1
            self.counts.accepted += 1
        self._pump()
        return True

    def _full(self, key: Lane) -> bool:
        lane = self._lanes.get(key)
        return lane is not None and len(lane) >= LANE_LIMIT

    def _pump(self) -> None:
        """Start what the bounds allow, lane by lane, so a busy lane never blocks another."""
        for key, lane in list(self._lanes.items()):
            while lane and self._busy[key] < PER_PROVIDER and self._busy_in[key[0]] < self.concurrency:
                delivery = lane.popleft()
                self._waiting -= 1
                self._busy[key] += 1
                self._busy_in[key[0]] += 1
                task = asyncio.get_running_loop().create_task(self._run(delivery))
                self._running.add(task)
                self._idle.clear()
            if not lane and not self._busy[key]:
                del self._lanes[key]
                del self._busy[key]
                self._failing.discard(key)

    async def _run(self, delivery: Delivery) -> None:
        try:
            await self._deliver(delivery)
        except Exception as exc:  # a bug in one delivery must not stop the others; say so on the Alert
            logger.exception("notification: delivery for Alert %s/%s failed", *delivery.alert.key)
            self.counts.failed += 1
            self._undo(delivery)
            self.warn(
                delivery.alert,
                DISPATCH_FAILED,
                f"failed to send notification for {delivery.subject}: internal error ({exc.__class__.__name__})",
            )
        finally:
            self._busy[delivery.lane] -= 1
            self._busy_in[delivery.lane[0]] -= 1
            if not self._busy_in[delivery.lane[0]]:
                del self._busy_in[delivery.lane[0]]
            task = asyncio.current_task()
            if task is not None:
                self._running.discard(task)
            self._pump()
            if not self._running and not self._waiting:
                self._idle.set()

    async def stop(self, grace: float) -> None:
        """Send what is queued for up to ``grace`` seconds, then cancel the rest."""
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            logger.warning(
                "notification: %d deliveries dropped at shutdown (%d in flight)", self._waiting, len(self._running)
            )
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await providers.close()

    async def _blocking(self, call: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, call, *args)

    async def _deliver(self, delivery: Delivery) -> None:
        alert, event = delivery.alert, delivery.notification
        provider = self.targets.provider(alert.namespace, alert.provider)
        if provider is None:
            self._failed(delivery, "failed to dispatch", f"failed to read provider: Provider {alert.namespace}/"
                         f"{alert.provider} not found; create it or fix spec.providerRef")  # fmt: skip
            return
        if (provider.get("spec") or {}).get("suspend"):
            self.counts.skipped += 1
            self._undo(delivery)
            return
        try:
            target = self.targets.cached(provider)
            if target is None:
                target = await self._blocking(self.targets.resolve, provider)
        except providers.ProviderError as exc:  # the Provider as written cannot send
            self._failed(delivery, "failed to dispatch", str(exc))
            return
        if delivery.transition:
            try:
                await self._blocking(self.onchange.save, alert)
            except KubeError as exc:
                self._failed(delivery, "failed to dispatch", f"on-change state not saved, nothing sent: {exc}")
                return
        try:
            await providers.deliver(target, event, alert=alert.obj)
        except providers.DeliveryError as exc:
            self._failed(delivery, "failed to send", str(exc))
            return
        self.counts.delivered += 1
        self._failing.discard(delivery.lane)

    def _failed(self, delivery: Delivery, what: str, cause: str) -> None:
        self.counts.failed += 1
        self._failing.add(delivery.lane)
        self._undo(delivery)
        logger.warning("Alert %s/%s: %s notification for %s: %s", *delivery.alert.key, what, delivery.subject, cause)
        self.warn(delivery.alert, DISPATCH_FAILED, f"{what} notification for {delivery.subject}: {cause}")

    def _undo(self, delivery: Delivery) -> None:
        """A transition that was not sent did not happen: the next event of its kind tries again."""
        if delivery.transition:
            self.onchange.undo(delivery.alert, delivery.notification)
            self.executor.submit(self._save_quietly, delivery.alert)

    def _save_quietly(self, alert: CompiledAlert) -> None:
        try:
            self.onchange.save(alert)
        except KubeError as exc:
            logger.warning("on-change state of Alert %s/%s not saved: %s", *alert.key, exc)
