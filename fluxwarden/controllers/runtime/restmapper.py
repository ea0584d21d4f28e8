"""Which REST path serves an ``apiVersion``/``kind``: API discovery, cached per group-version.

The kustomize controller applies kinds it only learns at run time (including CRDs it has just
created), so a miss re-reads that one group-version before giving up.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from fluxwarden.controllers.runtime.kube import Kube, KubeError, NotFound

REFRESH_AFTER = 2.0  # seconds before a group-version that missed a kind is asked again


class NoMatch(KubeError):
    """The API server serves no such kind (a CRD not installed yet, or a typo)."""


@dataclass(frozen=True)
class ApiResource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        scope = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{base}{scope}/{self.plural}" + (f"/{name}" if name else "")


class RestMapper:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._kinds: dict[tuple[str, str], ApiResource] = {}
        self._fetched: dict[str, float] = {}
        self._lock = threading.Lock()

    def _discover(self, api_version: str) -> None:
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        group, _, version = api_version.rpartition("/")
        try:
            listing = self.kube.request("GET", path, what=f"discover {api_version}")
        except NotFound:
            listing = {"resources": []}
        found = {
            (api_version, r["kind"]): ApiResource(group, version, r["kind"], r["name"], bool(r.get("namespaced")))
            for r in listing.get("resources", [])
            if "/" not in r["name"]
        }
        with self._lock:
            self._kinds.update(found)
            self._fetched[api_version] = time.monotonic()

    def resource_for(self, api_version: str, kind: str) -> ApiResource:
        with self._lock:
            known = self._kinds.get((api_version, kind))
            fetched = self._fetched.get(api_version)
        if known is not None:
            return known
        if fetched is None or time.monotonic() - fetched > REFRESH_AFTER:
            self._discover(api_version)
            with self._lock:
                known = self._kinds.get((api_version, kind))
            if known is not None:
                return known
        raise NoMatch(f"no kind {kind} is served by {api_version}; install its CRD first", 404)

    def forget(self, api_version: str) -> None:
        """Drop a group-version so the next lookup rediscovers it (after installing a CRD)."""
        with self._lock:
            self._fetched.pop(api_version, None)
