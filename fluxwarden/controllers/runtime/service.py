"""What a server that lives beside the reconcilers is to the runtime (the event and receiver servers).

A service names the kinds it reads (``feeds``); the manager shares one informer per kind with the
controllers, starts the service once it leads and its informers run, and stops it first on the way
out, so no request lands on a stopping process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from fluxwarden.controllers.runtime.informer import Informer
from fluxwarden.controllers.runtime.kube import Resource


@dataclass(frozen=True)
class Feed:
    """A kind a service reads from an informer cache; ``metadata_only`` keeps Secrets' data out of memory."""

    resource: Resource
    metadata_only: bool = False
    cluster_scoped: bool = False


class Service(Protocol):
    name: str
    feeds: tuple[Feed, ...]

    @property
    def url(self) -> str:
        """``http://host:port`` it serves on (the bound port when 0 was asked for); valid after ``start``."""

    def start(self, informers: dict[Feed, Informer], stop: threading.Event) -> None:
        """Bind and serve in the background; return at once. A failure to bind raises."""

    def stop(self) -> None:
        """Stop taking requests and finish in-flight ones (bounded)."""

    def healthy(self) -> bool:
        """Serving (counts toward ``/readyz``)."""
