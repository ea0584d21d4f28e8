"""The opt-in "on change" mode: an Alert sends transitions only, and remembers them across restarts.

Per involved object: the first error is sent and the object is marked failing; later errors are held
back; the first info after that is the recovery, sent once, and the mark is cleared. Infos about an
object that is not failing are held back too. Trace events never change anything. A transition
whose notification could not be sent is undone, so the next event of its kind carries it again.

The marks of one Alert live in a ConfigMap beside it (``fluxwarden-onchange-<alert>``, owned by the
Alert, with its uid: an Alert made again under the same name starts clean), written before the
notification that depends on them is sent: after a restart a recovery still finds the failure it ends.

Two locks: ``_state`` guards the marks in memory and is only ever held for dict work (the event loop
takes it); ``_writing`` orders one Alert's ConfigMap writes and is only taken in worker threads.
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
UID_KEY = "alert-uid"
FIELD_MANAGER = "notification-controller"
ALERT_LABEL = "notification.fluxwarden.io/alert"
MAX_MARKS = 5000  # failing objects kept per Alert (a ConfigMap holds 1 MiB); the oldest go first


def object_key(event: Event) -> str:
    obj = event.involved_object
    return f"{obj.kind}/{obj.namespace}/{obj.name}"


def config_map_name(alert_name: str) -> str:
    return (CONFIG_MAP_PREFIX + alert_name)[:253]


class OnChange:
    """The failing marks of every on-change Alert, loaded lazily from their ConfigMaps."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._failing: dict[str, dict[str, None]] = {}  # alert uid -> object keys, oldest first
        self._state = threading.Lock()
        self._writers: dict[str, threading.Lock] = {}

    def loaded(self, alert: CompiledAlert) -> bool:
        return alert.uid in self._failing

    def load(self, alert: CompiledAlert) -> None:
        """Read the Alert's ConfigMap once (blocking: a worker thread, never the event loop)."""
        if self.loaded(alert):
            return
        marks = self._read(alert)
        with self._state:
            self._failing.setdefault(alert.uid, marks)

    def decide(self, alert: CompiledAlert, event: Event) -> bool:
        """Whether ``event`` is a transition to send (and the mark is moved); False: hold it back.

        Needs :meth:`load` first; memory only, so the event loop may call it.
        """
        key = object_key(event)
        with self._state:
            failing = self._failing.setdefault(alert.uid, {})
            if event.severity == "error" and key not in failing:
                failing[key] = None
                while len(failing) > MAX_MARKS:
                    del failing[next(iter(failing))]
                return True
            if event.severity == "info" and key in failing:
                del failing[key]
                return True
            return False

    def undo(self, alert: CompiledAlert, event: Event) -> None:
        """Move the mark back: the transition was not sent."""
        key = object_key(event)
        with self._state:
            failing = self._failing.setdefault(alert.uid, {})
            if event.severity == "error":
                failing.pop(key, None)
            elif event.severity == "info":
                failing[key] = None

    def save(self, alert: CompiledAlert) -> None:
        """Write the current marks (server-side apply) before the notification that moved them is sent.

        The marks as they are when the write starts, not those of one event: writes of one Alert are
        ordered, so the last one always holds the newest state. Raises KubeError.
        """
        with self._state:
            writer = self._writers.setdefault(alert.uid, threading.Lock())
        with writer:
            with self._state:
                marks = sorted(self._failing.get(alert.uid, {}))
            name = config_map_name(alert.name)
            self.kube.request(
                "PATCH",
                f"/api/v1/namespaces/{alert.namespace}/configmaps/{name}",
                query={"fieldManager": FIELD_MANAGER, "force": "true"},
                body=self._config_map(alert, marks),
                content_type="application/apply-patch+yaml",
                what=f"apply ConfigMap {alert.namespace}/{name}",
            )

    def forget(self, uid: str) -> None:
        """The Alert is gone: drop its marks from memory."""
        with self._state:
            self._failing.pop(uid, None)
            self._writers.pop(uid, None)

    def _read(self, alert: CompiledAlert) -> dict[str, None]:
        name = config_map_name(alert.name)
        try:
            data = self.kube.config_map_data(alert.namespace, name)
        except NotFound:
            return {}
        except KubeError as exc:
            # Unreadable: start clean rather than never send again; the next transition rewrites it.
            logger.warning("on-change state of Alert %s/%s not read: %s", alert.namespace, alert.name, exc)
            return {}
        if data.get(UID_KEY) != alert.uid:
            return {}  # a former Alert of the same name left it
        try:
            return dict.fromkeys(str(k) for k in json.loads(data.get(STATE_KEY) or "[]"))
        except (ValueError, TypeError):
            logger.warning("on-change state of Alert %s/%s is not a JSON list; starting clean", *alert.key)
            return {}

    @staticmethod
    def _config_map(alert: CompiledAlert, marks: list[str]) -> dict[str, Any]:
        owner = {"apiVersion": alert.obj.get("apiVersion"), "kind": "Alert", "name": alert.name, "uid": alert.uid}
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": config_map_name(alert.name),
                "namespace": alert.namespace,
                "labels": {"app.kubernetes.io/managed-by": "fluxwarden", ALERT_LABEL: alert.name},
                "ownerReferences": [owner],
            },
            "data": {STATE_KEY: json.dumps(marks), UID_KEY: alert.uid},
        }
