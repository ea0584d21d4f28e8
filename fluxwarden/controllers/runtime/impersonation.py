"""API clients that act as a tenant's service account (``Impersonate-User``), one per identity.

The API server adds the service account's groups itself, so RBAC sees exactly what a pod running
as that account would. Clients are kept (they hold connection pools) and shared between threads.
"""

from __future__ import annotations

import threading

from kubernetes import client

from fluxwarden.controllers.runtime.kube import Kube


class Impersonator:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._clients: dict[str, Kube] = {}
        self._lock = threading.Lock()

    def client_for(self, user: str | None) -> Kube:
        """A client impersonating ``user``; the controller's own client when ``user`` is None."""
        if user is None:
            return self.kube
        with self._lock:
            found = self._clients.get(user)
            if found is None:
                api = client.ApiClient(self.kube.api.configuration, header_name="Impersonate-User", header_value=user)
                found = self._clients[user] = Kube(api)
            return found

    def close(self) -> None:
        with self._lock:
            for kube in self._clients.values():
                kube.api.close()
            self._clients.clear()
