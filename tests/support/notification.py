"""The notification controller in-process for e2e tests: start it, post Flux events, make its objects, watch it.

``start_notification`` runs the real event server (and receiver server) beside the reconcilers on
loopback ports the kernel picks. ``Notifications`` makes Providers, Alerts and Secrets in one namespace
in their Flux v1beta3 shapes, reads the Kubernetes Events on an Alert, and ``settled()`` waits until the
event server's informers have seen (and its handlers have processed) what a test just wrote, so an
event posted next is routed by the current configuration, not a stale one. Deliveries land on a
``tests.support.recorder.Recorder``.
"""

from __future__ import annotations

import base64
import datetime
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.notification.api import ALERT, PROVIDER, NotificationOptions
from fluxwarden.controllers.runtime.informer import Informer
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.tenancy.settings import Settings
from tests.support.wait import until

SHARD = "sharding.fluxcd.io/key"

# The apiVersion Flux's controllers put in involvedObject, per kind (what the event's group comes from).
API_VERSIONS = {
    "GitRepository": "source.toolkit.fluxcd.io/v1",
    "HelmRepository": "source.toolkit.fluxcd.io/v1",
    "HelmChart": "source.toolkit.fluxcd.io/v1",
    "Bucket": "source.toolkit.fluxcd.io/v1",
    "OCIRepository": "source.toolkit.fluxcd.io/v1beta2",
    "Kustomization": "kustomize.toolkit.fluxcd.io/v1",
    "HelmRelease": "helm.toolkit.fluxcd.io/v2",
    "ImageRepository": "image.toolkit.fluxcd.io/v1beta2",
    "ImagePolicy": "image.toolkit.fluxcd.io/v1beta2",
    "ImageUpdateAutomation": "image.toolkit.fluxcd.io/v1beta2",
}


def start_notification(
    start_reconcilers: Callable[..., Reconcilers],
    *,
    rate_limit_interval: float = 300.0,
    queue_size: int = 10_000,
    delivery_concurrency: int = 32,
    read_timeout: float = 30.0,
    settings: Settings | None = None,
    controllers: tuple[str, ...] = ("notification",),
    shard: str | None = None,
    **options: Any,
) -> Reconcilers:
    """The notification controller (and ``controllers``) on 127.0.0.1, ports picked by the kernel.

    Its reconcilers (Receivers) watch only objects labelled ``sharding.fluxcd.io/key=<shard>`` (default: a
    fresh shard nobody uses), so two instances never reconcile one Receiver; the event server reads every
    Alert and Provider, as Flux's does.
    """
    notification = NotificationOptions(
        event_host="127.0.0.1",
        event_port=0,
        receiver_host="127.0.0.1",
        receiver_port=0,
        rate_limit_interval=rate_limit_interval,
        queue_size=queue_size,
        delivery_concurrency=delivery_concurrency,
        read_timeout=read_timeout,
        settings=settings or Settings(),
    )
    selector = f"{SHARD}={shard or 'nt-' + uuid.uuid4().hex[:8]}"
    return start_reconcilers(controllers, label_selector=selector, notification=notification, **options)


def event_url(reconcilers: Reconcilers) -> str:
    return reconcilers.service_url("event-server")


def deliveries_done(reconcilers: Reconcilers | None, timeout: float = 30.0) -> None:
    """Wait until the event server has no delivery waiting or in flight: every event it answered 202 was
    sent (or failed). After this, what a recorder has not received was never sent."""
    assert reconcilers is not None, "no event server to wait for"
    service = next(s for s in reconcilers.manager.services if s.name == "event-server")
    dispatcher = service.router.dispatcher  # type: ignore[attr-defined]
    until(dispatcher.busy, lambda busy: not busy, timeout=timeout, what="the event server's deliveries")


def flux_event(
    namespace: str,
    name: str = "app",
    kind: str = "Kustomization",
    *,
    severity: str = "info",
    message: str = "Reconciliation finished",
    reason: str = "ReconciliationSucceeded",
    metadata: dict[str, str] | None = None,
    api_version: str | None = None,
    uid: str | None = None,
    controller: str = "kustomize-controller",
) -> dict[str, Any]:
    """A Flux event (``fluxcd/pkg/apis/event/v1beta1``) as an upstream controller posts it."""
    body: dict[str, Any] = {
        "involvedObject": {
            "kind": kind,
            "namespace": namespace,
            "name": name,
            "uid": uid or str(uuid.uuid4()),
            "apiVersion": api_version or API_VERSIONS.get(kind, "example.com/v1"),
            "resourceVersion": "1",
        },
        "severity": severity,
        "timestamp": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "message": message,
        "reason": reason,
        "reportingController": controller,
        "reportingInstance": "test",
    }
    if metadata is not None:
        body["metadata"] = metadata
    return body


def post(url: str, event: dict[str, Any] | bytes, *, path: str = "/", timeout: float = 10.0) -> httpx.Response:
    """POST one event (a dict as JSON, bytes as they are) to the event server."""
    if isinstance(event, bytes):
        return httpx.post(url + path, content=event, headers={"Content-Type": "application/json"}, timeout=timeout)
    return httpx.post(url + path, json=event, timeout=timeout)


@dataclass
class Notifications:
    """Providers, Alerts and Secrets in one namespace, and the Events the controller records on them."""

    api: client.ApiClient
    namespace: str
    reconcilers: Reconcilers | None = None  # whose event server settled() waits for
    _written: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (plural, ns, name) -> rv
    _deleted: set[tuple[str, str, str]] = field(default_factory=set)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def secret(
        self,
        name: str,
        data: dict[str, str | bytes] | None = None,
        *,
        namespace: str | None = None,
        **more: str | bytes,
    ) -> None:
        """An Opaque Secret; keys with dots (``ca.crt``) go in ``data``, the others may be keywords."""
        encoded = {
            key: base64.b64encode(value if isinstance(value, bytes) else value.encode()).decode()
            for key, value in {**(data or {}), **more}.items()
        }
        self.core.create_namespaced_secret(
            namespace or self.namespace, {"metadata": {"name": name}, "type": "Opaque", "data": encoded}
        )

    def provider(
        self,
        name: str,
        *,
        type: str = "generic",
        address: str | None = None,
        secret: str | None = None,
        cert_secret: str | None = None,
        namespace: str | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"type": type, **spec}
        if address is not None:
            body["address"] = address
        if secret is not None:
            body["secretRef"] = {"name": secret}
        if cert_secret is not None:
            body["certSecretRef"] = {"name": cert_secret}
        return self._create(PROVIDER, name, body, namespace)

    def alert(
        self,
        name: str,
        provider: str,
        sources: list[dict[str, Any]] | None = None,
        *,
        namespace: str | None = None,
        annotations: dict[str, str] | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        """An Alert; ``sources`` default to every Kustomization in the namespace (``name: "*"``)."""
        body = {
            "providerRef": {"name": provider},
            "eventSources": sources if sources is not None else [{"kind": "Kustomization", "name": "*"}],
            **spec,
        }
        return self._create(ALERT, name, body, namespace, annotations)

    def patch(
        self, resource: Resource, name: str, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        ns = namespace or self.namespace
        obj: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            resource.group, resource.version, ns, resource.plural, name, body,
            _content_type="application/merge-patch+json",
        )  # fmt: skip
        self._written[(resource.plural, ns, name)] = obj["metadata"]["resourceVersion"]
        return obj

    def delete(self, resource: Resource, name: str, namespace: str | None = None) -> None:
        ns = namespace or self.namespace
        self.custom.delete_namespaced_custom_object(resource.group, resource.version, ns, resource.plural, name)
        self._written.pop((resource.plural, ns, name), None)
        self._deleted.add((resource.plural, ns, name))

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            resource.group, resource.version, namespace or self.namespace, resource.plural, name
        )
        return obj

    def _create(
        self,
        resource: Resource,
        name: str,
        spec: dict[str, Any],
        namespace: str | None,
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        ns = namespace or self.namespace
        meta: dict[str, Any] = {"name": name, "namespace": ns}
        if annotations:
            meta["annotations"] = annotations
        body = {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": meta, "spec": spec}
        obj: dict[str, Any] = self.custom.create_namespaced_custom_object(
            resource.group, resource.version, ns, resource.plural, body
        )
        self._deleted.discard((resource.plural, ns, name))
        self._written[(resource.plural, ns, name)] = obj["metadata"]["resourceVersion"]
        return obj

    def settled(self, timeout: float = 20.0) -> None:
        """Wait until the event server has taken in every Provider and Alert written (or deleted) through this."""
        if self.reconcilers is None:
            raise RuntimeError("Notifications.settled() needs the reconcilers whose event server to wait for")
        seen = Seen.of(self.reconcilers)
        pending = dict(self._written)
        for (plural, namespace, name), version in pending.items():
            seen.wait(plural, namespace, name, version, timeout)
        for plural, namespace, name in list(self._deleted):
            seen.gone(plural, namespace, name, timeout)

    # -- Kubernetes Events on an object --------------------------------------------------------------

    def events_on(self, name: str, kind: str = "Alert", namespace: str | None = None) -> list[client.CoreV1Event]:
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        items = self.core.list_namespaced_event(namespace or self.namespace, field_selector=selector).items
        return list(items)

    def wait_event(
        self,
        name: str,
        reason: str,
        *,
        kind: str = "Alert",
        type: str = "Warning",
        contains: str = "",
        timeout: float = 30.0,
        namespace: str | None = None,
    ) -> client.CoreV1Event:
        """The first Event of ``reason`` (and ``type``) on the object whose message contains ``contains``."""

        def matching(events: list[client.CoreV1Event]) -> list[client.CoreV1Event]:
            return [e for e in events if e.reason == reason and e.type == type and contains in (e.message or "")]

        found = until(
            lambda: self.events_on(name, kind, namespace),
            lambda events: bool(matching(events)),
            timeout=timeout,
            what=f"a {type} event {reason} on {kind} {namespace or self.namespace}/{name}",
        )
        return matching(found)[0]


class Seen:
    """What the event server's informers have handed to every handler: (plural, namespace, name) -> rv.

    A handler added after the service's own runs after them for each change, so once it has seen a
    resourceVersion the service has processed that version too.
    """

    _by_manager: ClassVar[dict[int, Seen]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, informers: list[Informer]) -> None:
        self.versions: dict[tuple[str, str, str], str | None] = {}
        self.changed = threading.Condition()
        for informer in informers:
            informer.add_handler(self._handler(informer.resource.plural))

    @classmethod
    def of(cls, reconcilers: Reconcilers) -> Seen:
        manager = reconcilers.manager
        with cls._lock:
            if id(manager) not in cls._by_manager:
                feeds: dict[int, dict[Any, Informer]] = manager._feeds
                services = [s for s in manager.services if s.name == "event-server"]
                if not services:
                    raise RuntimeError("these reconcilers run no event server")
                informers = list(feeds[id(services[0])].values())
                seen = cls(informers)
                for informer in informers:
                    for obj in informer.items():  # cached before the handler was added: handled already
                        seen._record(informer.resource.plural, obj, "LISTED")
                cls._by_manager[id(manager)] = seen
            return cls._by_manager[id(manager)]

    def _handler(self, plural: str) -> Callable[[str, dict[str, Any], dict[str, Any] | None], None]:
        def handle(event_type: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
            self._record(plural, new, event_type)

        return handle

    def _record(self, plural: str, obj: dict[str, Any], event_type: str) -> None:
        meta = obj.get("metadata") or {}
        key = (plural, str(meta.get("namespace", "")), str(meta.get("name", "")))
        with self.changed:
            self.versions[key] = None if event_type == "DELETED" else str(meta.get("resourceVersion", ""))
            self.changed.notify_all()

    def wait(self, plural: str, namespace: str, name: str, version: str, timeout: float = 20.0) -> None:
        """Until the informer of ``plural`` has handled ``version`` (or a later one) of the object."""
        deadline = time.monotonic() + timeout
        key = (plural, namespace, name)
        with self.changed:
            while not _at_least(self.versions.get(key), version):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"the event server has not seen {plural} {namespace}/{name} at resourceVersion {version} "
                        f"after {timeout}s (it has {self.versions.get(key)!r})"
                    )
                self.changed.wait(left)

    def gone(self, plural: str, namespace: str, name: str, timeout: float = 20.0) -> None:
        """Until the informer of ``plural`` has handled the deletion of the object."""
        deadline = time.monotonic() + timeout
        key = (plural, namespace, name)
        with self.changed:
            while self.versions.get(key, "") is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the event server still has {plural} {namespace}/{name} after {timeout}s")
                self.changed.wait(left)


def _at_least(seen: str | None, want: str) -> bool:
    if seen is None:
        return False
    if seen == want:
        return True
    try:
        return int(seen) >= int(want)
    except ValueError:
        return False


def bodies_by_name(received: Iterator[Any] | list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Generic provider bodies grouped by involvedObject name (for tables of events)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for item in received:
        body = item.json()
        out.setdefault(body["involvedObject"]["name"], []).append(body)
    return out
