"""Run controllers: one informer, one queue and N workers per kind; leader election; probes.

``Manager.start()`` returns once everything runs; ``stop()`` drains the workers. ``run()`` does
both around SIGTERM/SIGINT, for the CLI.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import start_http_server

from fluxwarden.controllers.runtime.controller import Controller, Key, Watch
from fluxwarden.controllers.runtime.events import EventRecorder
from fluxwarden.controllers.runtime.informer import Informer
from fluxwarden.controllers.runtime.kube import Kube, KubeError, Resource, key_of
from fluxwarden.controllers.runtime.leader import LeaderElector
from fluxwarden.controllers.runtime.metadata import MetadataKube
from fluxwarden.controllers.runtime.metrics import ControllerMetrics
from fluxwarden.controllers.runtime.prologue import REQUESTED_AT, Runtime, run_once
from fluxwarden.controllers.runtime.queue import WorkQueue
from fluxwarden.controllers.runtime.service import Feed, Service

logger = logging.getLogger("fluxwarden.controllers")


@dataclass(frozen=True)
class ManagerOptions:
    concurrency: int = 4
    namespace: str | None = None  # watch one namespace; None: all
    label_selector: str | None = None  # sharding: e.g. sharding.fluxcd.io/key=shard1
    events_addr: str | None = None
    leader_election: bool = False
    lease_namespace: str = "flux-system"
    lease_name: str = "fluxwarden-controllers"
    metrics_port: int = 0  # 0: off
    health_port: int = 0  # 0: off
    watch_timeout: int = 300
    backoff_base: float = 1.0


def needs_reconcile(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """A watch event that asks for work: a new object, a spec change, a reconcile request, deletion."""
    if old is None:
        return True
    new_meta, old_meta = new.get("metadata") or {}, old.get("metadata") or {}
    if new_meta.get("uid") != old_meta.get("uid"):
        return True  # deleted and created again (say, during a watch outage): a new object
    if new_meta.get("generation") != old_meta.get("generation"):
        return True
    if (new_meta.get("annotations") or {}).get(REQUESTED_AT) != (old_meta.get("annotations") or {}).get(REQUESTED_AT):
        return True
    return bool(new_meta.get("deletionTimestamp")) and not old_meta.get("deletionTimestamp")


@dataclass
class _Loop:
    """One controller's moving parts."""

    controller: Controller
    runtime: Runtime
    queue: WorkQueue
    informer: Informer
    watches: list[Informer] = field(default_factory=list)


class Manager:
    def __init__(
        self,
        kube: Kube,
        controllers: list[Controller],
        options: ManagerOptions = ManagerOptions(),
        services: Sequence[Service] = (),
    ) -> None:
        self.kube = kube
        self.options = options
        self.metrics = ControllerMetrics()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._servers: list[Any] = []
        self._informers: dict[tuple[str, str, str | None, bool], Informer] = {}
        self.loops = [self._loop(c) for c in controllers]
        self.services = list(services)
        self._feeds: dict[int, dict[Feed, Informer]] = {
            id(service): {f: self._informer(f.resource, None, f.metadata_only, f.cluster_scoped) for f in service.feeds}
            for service in self.services
        }
        self.elected = threading.Event()

    def _loop(self, controller: Controller) -> _Loop:
        queue = WorkQueue(backoff_base=self.options.backoff_base)
        events = EventRecorder(self.kube, controller.name, self.options.events_addr)
        runtime = Runtime(self.kube, events, self.metrics)

        def on_event(event_type: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
            key = key_of(new)
            if event_type == "DELETED":
                queue.discard(key)
                self.metrics.forget(controller.resource.kind, *key)
            elif needs_reconcile(new, old):  # a relist (after 410, an outage) skips what did not change
                queue.add(key)

        informer = self._informer(controller.resource, self.options.label_selector)
        informer.add_handler(on_event)
        loop = _Loop(controller, runtime, queue, informer)
        for watch in getattr(controller, "watches", []):
            informer = self._watch(watch, loop)
            loop.watches.append(informer)
            runtime.caches[watch] = informer
        if (bind := getattr(controller, "bind", None)) is not None:
            bind(queue.add, self._stop)  # watches a controller starts itself (kinds known at run time)
        return loop

    def _informer(
        self, resource: Resource, label_selector: str | None, metadata_only: bool = False, cluster_scoped: bool = False
    ) -> Informer:
        """One list+watch and cache per kind, selector and depth, whoever consumes it."""
        key = (resource.group, resource.plural, label_selector, metadata_only)
        if key not in self._informers:
            kube = MetadataKube(self.kube.api) if metadata_only else self.kube
            namespace = None if cluster_scoped else self.options.namespace  # --watch-namespace has no say there
            self._informers[key] = Informer(kube, resource, None, namespace, label_selector, self.options.watch_timeout)
        return self._informers[key]

    def _watch(self, watch: Watch, loop: _Loop) -> Informer:
        def on_event(event_type: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
            for key in watch.mapper(new, None if event_type == "DELETED" else old, loop.informer.items()):
                loop.queue.add(key)

        # Sources and dependencies need not carry this shard's label: watch them unfiltered.
        informer = self._informer(watch.resource, watch.label_selector, watch.metadata_only, watch.cluster_scoped)
        informer.add_handler(on_event)
        return informer

    def _worker(self, loop: _Loop) -> None:
        while True:
            key = loop.queue.get()
            if key is None:
                return
            namespace, name = str(key[0]), str(key[1])  # type: ignore[index]
            try:
                requeue = run_once(loop.controller, loop.runtime, namespace, name)
            except Exception as exc:  # the API failed around the reconcile (finalizer, status write)
                if not isinstance(exc, KubeError):
                    logger.exception("worker of %s failed on %s/%s", loop.controller.name, namespace, name)
                else:
                    logger.warning("%s %s/%s: %s", loop.controller.name, namespace, name, exc)
                loop.queue.add_rate_limited(key)
            else:
                if requeue.backoff:
                    loop.queue.add_rate_limited(key)
                else:
                    loop.queue.forget(key)
                    if requeue.after is not None:
                        loop.queue.add_after(key, requeue.after)
            finally:
                loop.queue.done(key)

    def _spawn(self, target: Any, *args: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def start(self) -> None:
        """Serve probes and metrics, win the lease if asked to, then start informers and workers."""
        self._serve_probes()
        if self.options.leader_election:
            elector = LeaderElector(
                self.kube.api, self.options.lease_namespace, self.options.lease_name,
                f"{socket.gethostname()}_{threading.get_native_id()}",
            )  # fmt: skip
            if not elector.acquire(self._stop):
                return
            self._spawn(elector.keep, self._stop, self._lost_leadership, name="leader")
        self.elected.set()
        for informer in self._informers.values():
            self._spawn(informer.run, self._stop, name=f"informer-{informer.resource.plural}")
        for loop in self.loops:
            for index in range(self.options.concurrency):
                self._spawn(self._worker, loop, name=f"{loop.controller.name}-{index}")
        for service in self.services:
            service.start(self._feeds[id(service)], self._stop)

    def _lost_leadership(self) -> None:
        logger.error("leadership lost: stopping so that a restart rejoins the election")
        self.stop()

    def synced(self) -> bool:
        """Ready: leading, and every informer listed and watching with no failure (``/readyz``)."""
        informers = all(informer.healthy() for informer in self._informers.values())
        # Watches a controller runs itself (kustomize's live drift watches) count too.
        own = all(getattr(loop.controller, "healthy", lambda: True)() for loop in self.loops)
        serving = all(service.healthy() for service in self.services)
        return self.elected.is_set() and informers and own and serving

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking work, let running reconciles finish (up to ``timeout``), close the probes."""
        self._stop.set()
        for service in self.services:  # first: no request may land on a stopping process
            service.stop()
        for loop in self.loops:
            loop.queue.shutdown()
        for server in self._servers:  # before the joins: a serving thread only ends after shutdown()
            server.shutdown()
            server.server_close()
        # Informers block in a watch read until it times out; they are daemons and need no join.
        for thread in self._threads:
            if thread is not threading.current_thread() and not thread.name.startswith("informer-"):
                thread.join(timeout)

    def run(self) -> None:
        """Start, wait for SIGTERM/SIGINT, stop."""
        stopping = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.set())
        self.start()
        while not stopping.wait(1.0) and not self._stop.is_set():
            pass
        self.stop()

    def _serve_probes(self) -> None:
        if self.options.metrics_port:
            metrics_server, _ = start_http_server(self.options.metrics_port, registry=self.metrics.registry)
            self._servers.append(metrics_server)
        if self.options.health_port:
            manager = self

            class Probes(BaseHTTPRequestHandler):
                def do_GET(self) -> None:
                    healthy = self.path == "/healthz" or (self.path == "/readyz" and manager.synced())
                    known = self.path in ("/healthz", "/readyz")
                    self.send_response(200 if healthy else (503 if known else 404))
                    self.end_headers()
                    self.wfile.write(b"ok" if healthy else b"not ready")

                def log_message(self, format: str, *args: Any) -> None:
                    return

            server = ThreadingHTTPServer(("0.0.0.0", self.options.health_port), Probes)
            self._servers.append(server)
            self._spawn(server.serve_forever, name="health")


__all__ = ["Key", "Manager", "ManagerOptions", "needs_reconcile"]
