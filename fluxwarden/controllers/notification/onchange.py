"""The opt-in "on change" mode: an Alert sends transitions only, and remembers them across restarts.

Per involved object: the first error is sent and the object is marked failing; later errors are held
back; the first info after that is the recovery, sent once, and the mark is cleared. Infos about an
object that is not failing are held back too. Trace events never change anything.

The marks of one Alert live in a ConfigMap beside it (``fluxwarden-onchange-<alert>``, owned by the
Alert), written before the notification that depends on them is sent: after a restart a recovery
still finds the failure it ends.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.notification.matching import CompiledAlert
from fluxwarden.controllers.runtime.kube import Kube, KubeError, NotFound

logger = logging.getLogger("fluxwarden.controllers.notification")

CONFIG_MAP_PREFIX = "fluxwarden-onchange-"
STATE_KEY = "failing.json"
FIELD_MANAGER = "notification-controller"
ALERT_LABEL = "notification.fluxwarden.io/alert"


def object_key(event: Event) -> str:
    obj = event.involved_object
    return f"{obj.kind}/{obj.namespace}/{obj.name}"


def config_map_name(alert_name: str) -> str:
    return (CONFIG_MAP_PREFIX + alert_name)[:253]


class OnChange:
    """The failing marks of every on-change Alert, loaded lazily from their ConfigMaps."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._failing: dict[str, set[str]] = {}  # alert uid -> object keys
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, uid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(uid, threading.Lock())

    def loaded(self, alert: CompiledAlert) -> bool:
        """Whether ``decide`` can answer without reading the API (the event loop may call it then)."""
        return alert.uid in self._failing

    def decide(self, alert: CompiledAlert, event: Event) -> bool:
        """Whether ``event`` is a transition to send (and the mark is moved); False: hold it back."""
        with self._lock(alert.uid):
            failing = self._load(alert)
            key = object_key(event)
            if event.severity == "error" and key not in failing:
                failing.add(key)
            elif event.severity == "info" and key in failing:
                failing.discard(key)
            else:
                return False
            return True

    def forget(self, alert: CompiledAlert) -> None:
        """Drop the marks in memory (a write failed): the next event reads the ConfigMap again."""
        with self._lock(alert.uid):
            self._failing.pop(alert.uid, None)

    def save(self, alert: CompiledAlert) -> None:
        """Write the current marks (server-side apply) before the notification that moved them is sent.

        The latest marks, not those of one event: two transitions saved out of order still leave the
        newest state. Raises KubeError; the caller then sends nothing.
        """
        with self._lock(alert.uid):
            config_map = self._config_map(alert, self._failing.get(alert.uid, set()))
            name = config_map["metadata"]["name"]
            path = f"/api/v1/namespaces/{alert.namespace}/configmaps/{name}"
            self.kube.request(
                "PATCH",
                path,
                query={"fieldManager": FIELD_MANAGER, "force": "true"},
                body=config_map,
                content_type="application/apply-patch+yaml",
                what=f"apply ConfigMap {alert.namespace}/{name}",
            )

    def _load(self, alert: CompiledAlert) -> set[str]:
        if alert.uid in self._failing:
            return self._failing[alert.uid]
        name = config_map_name(alert.name)
        try:
            data = self.kube.config_map_data(alert.namespace, name)
            failing = set(json.loads(data.get(STATE_KEY) or "[]"))
        except NotFound:
            failing = set()
        except (KubeError, ValueError, TypeError) as exc:
            # Unreadable: start clean rather than never send again; the next transition rewrites it.
            logger.warning("on-change state of Alert %s/%s not read: %s", alert.namespace, alert.name, exc)
            failing = set()
        self._failing[alert.uid] = failing
        return failing

    @staticmethod
    def _config_map(alert: CompiledAlert, failing: set[str]) -> dict[str, Any]:
        owner = {"apiVersion": alert.obj.get("apiVersion"), "kind": "Alert", "name": alert.name, "uid": alert.uid}
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": config_map_name(alert.name),
                "namespace": alert.namespace,
                "labels": {
                    "app.kubernetes.io/managed-by": "fluxwarden",
                    "notification.fluxwarden.io/alert": alert.name,
                },
                "ownerReferences": [owner],
            },
            "data": {STATE_KEY: json.dumps(sorted(failing))},
        }
