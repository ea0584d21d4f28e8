"""Flux's notification kinds, the names fluxwarden adds, and the process's options."""

from __future__ import annotations

from dataclasses import dataclass, field

from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.tenancy.kinds import NOTIFICATION
from fluxwarden.tenancy.settings import Settings

ALERT = Resource(NOTIFICATION, "v1beta3", "alerts", "Alert")
PROVIDER = Resource(NOTIFICATION, "v1beta3", "providers", "Provider")
RECEIVER = Resource(NOTIFICATION, "v1", "receivers", "Receiver")
SECRET = Resource("", "v1", "secrets", "Secret")

CONTROLLER = "notification-controller"  # the reportingController of its own events, as Flux's
EVENT_GROUP = "event.toolkit.fluxcd.io"  # metadata keys under this prefix always survive cleaning

# Beyond Flux: an Alert annotated so forwards transitions only (first failure, then one recovery).
MODE_ANNOTATION = "notification.fluxwarden.io/mode"
ON_CHANGE = "on-change"

# Event reasons on an Alert, as Flux's.
DISPATCH_FAILED = "NotificationDispatchFailed"
INVALID_CONFIG = "InvalidConfig"
METADATA_CONFLICT = "MetadataAppendFailed"
SOURCE_FETCH_FAILED = "SourceFetchFailed"

MAX_EVENT_BYTES = 3 << 20  # 3 MiB, Flux's limit: 413 above


@dataclass(frozen=True)
class NotificationOptions:
    event_host: str = "0.0.0.0"
    event_port: int = 9091  # Flux's is :9090, which the artifact server holds in fluxwarden's one pod
    receiver_host: str = "0.0.0.0"
    receiver_port: int = 9292  # Flux's --receiverAddr
    rate_limit_interval: float = 300.0  # Flux's --rate-limit-interval 5m
    queue_size: int = 10_000  # deliveries waiting; a full queue answers 429 and keeps nothing
    read_timeout: float = 30.0  # Flux's ReadTimeout: a body not in by then is answered 408
    delivery_concurrency: int = 64  # sends in flight per namespace (and at most 4 per Provider: dispatch.py)
    # Whether an Alert may take events from another namespace (Flux's --no-cross-namespace-refs)
    settings: Settings = field(default_factory=Settings)
