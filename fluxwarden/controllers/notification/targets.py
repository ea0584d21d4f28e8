"""Providers as senders: looked up in the informer cache, resolved with their Secrets, cached exactly.

A resolved :class:`~providers.Target` is kept under the Provider's uid and resourceVersion and the
resourceVersions of the Secrets it reads (from a metadata-only Secret informer): a rotated token or a
new address is used from the next event on, and an unchanged Provider costs no API call.
"""

from __future__ import annotations

import threading
from typing import Any

from fluxwarden.controllers.notification import providers
from fluxwarden.controllers.runtime.informer import Informer
from fluxwarden.controllers.runtime.kube import Kube

Version = tuple[str, ...]


class Targets:
    def __init__(self, kube: Kube, providers_cache: Informer, secrets_cache: Informer) -> None:
        self.kube = kube
        self.providers = providers_cache
        self.secrets = secrets_cache
        self._resolved: dict[tuple[str, str], tuple[Version, providers.Target]] = {}
        self._lock = threading.Lock()
        providers_cache.add_handler(self._on_provider)

    def _on_provider(self, event_type: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        """A deleted Provider's credentials leave memory with it."""
        if event_type == "DELETED":
            meta = new.get("metadata") or {}
            with self._lock:
                self._resolved.pop((str(meta.get("namespace")), str(meta.get("name"))), None)

    def provider(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.providers.get((namespace, name))

    def _version(self, provider: dict[str, Any]) -> Version:
        meta = provider.get("metadata") or {}
        namespace = str(meta.get("namespace"))
        secrets = [self.secrets.get((namespace, name)) for name in providers.secret_names(provider)]
        rvs = [str((s or {}).get("metadata", {}).get("resourceVersion", "absent")) for s in secrets]
        return (str(meta.get("uid")), str(meta.get("resourceVersion")), *rvs)

    def cached(self, provider: dict[str, Any]) -> providers.Target | None:
        meta = provider.get("metadata") or {}
        with self._lock:
            found = self._resolved.get((str(meta.get("namespace")), str(meta.get("name"))))
        return found[1] if found is not None and found[0] == self._version(provider) else None

    def resolve(self, provider: dict[str, Any]) -> providers.Target:
        """Read the Secrets and build the sender (blocking: run off the event loop); ProviderError."""
        version = self._version(provider)
        target = providers.resolve(self.kube, provider)
        meta = provider.get("metadata") or {}
        with self._lock:
            self._resolved[(str(meta.get("namespace")), str(meta.get("name")))] = (version, target)
        return target
