"""The labels of an event's involved object, for sources that select by ``matchLabels``.

Read from the API (any kind, through discovery) and cached by uid and resourceVersion, which the
event carries: a relabelled object has a new resourceVersion, so the cache is never stale for it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.runtime.kube import Kube, KubeError
from fluxwarden.controllers.runtime.restmapper import RestMapper

_KEEP = 4096


class Labels:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.mapper = RestMapper(kube)
        self._cache: OrderedDict[tuple[str, ...], dict[str, str] | None] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, event: Event) -> dict[str, str] | None:
        """The object's labels; None when it cannot be read (gone, or no such kind): then no label matches."""
        obj = event.involved_object
        key = (obj.api_version, obj.kind, obj.namespace, obj.name, obj.uid, obj.resource_version)
        with self._lock:
            if key in self._cache and obj.resource_version:
                return self._cache[key]
        try:
            found = self.mapper.resource_for(obj.api_version, obj.kind)
            live = self.kube.request("GET", found.path(obj.namespace, obj.name), what=f"get {obj.kind}")
            labels: dict[str, str] | None = dict((live.get("metadata") or {}).get("labels") or {})
        except KubeError:
            labels = None
        with self._lock:
            self._cache[key] = labels
            while len(self._cache) > _KEEP:
                self._cache.popitem(last=False)
        return labels
