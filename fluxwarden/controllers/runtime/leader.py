"""Leader election on a ``coordination.k8s.io/v1`` Lease, as controller-runtime does it.

The holder renews every ``retry_period``; if it cannot renew within ``renew_deadline`` it gives up
and the process exits (a restarted pod rejoins as a candidate). Others take over once the lease
is ``lease_duration`` old. Optimistic concurrency (resourceVersion) settles races.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

UNREACHABLE = (urllib3.exceptions.HTTPError, OSError)

logger = logging.getLogger("fluxwarden.controllers.leader")


class LeaderElector:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        self.leases = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period

    def _now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)

    def try_acquire_or_renew(self) -> bool:
        now = self._now()
        try:
            lease = self.leases.read_namespaced_lease(self.name, self.namespace)
        except UNREACHABLE as exc:  # the API server is away (restart, network): not leading this round
            logger.warning("cannot read lease %s/%s: %s", self.namespace, self.name, exc.__class__.__name__)
            return False
        except ApiException as exc:
            if exc.status != 404:
                logger.warning("cannot read lease %s/%s: %s", self.namespace, self.name, exc.reason)
                return False
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=self._spec(now, now, 0),
            )
            return self._write(lambda: self.leases.create_namespaced_lease(self.namespace, body))
        spec = lease.spec or client.V1LeaseSpec()
        held_by_me = spec.holder_identity == self.identity
        renewed = spec.renew_time or spec.acquire_time
        expired = renewed is None or now - renewed > datetime.timedelta(seconds=spec.lease_duration_seconds or 0)
        if not held_by_me and not expired:
            return False
        transitions = (spec.lease_transitions or 0) + (0 if held_by_me else 1)
        acquired = spec.acquire_time if held_by_me and spec.acquire_time else now
        lease.spec = self._spec(acquired, now, transitions)
        return self._write(lambda: self.leases.replace_namespaced_lease(self.name, self.namespace, lease))

    def _spec(self, acquired: datetime.datetime, renewed: datetime.datetime, transitions: int) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=int(self.lease_duration),
            acquire_time=acquired,
            renew_time=renewed,
            lease_transitions=transitions,
        )

    def _write(self, call: Callable[[], object]) -> bool:
        try:
            call()
            return True
        except UNREACHABLE as exc:
            logger.warning("cannot write lease %s/%s: %s", self.namespace, self.name, exc.__class__.__name__)
            return False
        except ApiException as exc:
            if exc.status not in (409, 422):
                logger.warning("cannot write lease %s/%s: %s", self.namespace, self.name, exc.reason)
            return False

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this process leads (True) or ``stop`` is set (False)."""
        logger.info("waiting for leadership of lease %s/%s as %s", self.namespace, self.name, self.identity)
        while not stop.is_set():
            if self.try_acquire_or_renew():
                logger.info("became leader of lease %s/%s", self.namespace, self.name)
                return True
            stop.wait(self.retry_period)
        return False

    def keep(self, stop: threading.Event, on_lost: Callable[[], None]) -> None:
        """Renew until ``stop``; call ``on_lost`` when renewal failed for ``renew_deadline``."""
        last = time.monotonic()
        while not stop.wait(self.retry_period):
            if self.try_acquire_or_renew():
                last = time.monotonic()
            elif time.monotonic() - last > self.renew_deadline:
                logger.error("lost leadership of lease %s/%s", self.namespace, self.name)
                on_lost()
                return
