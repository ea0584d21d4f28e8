"""The Receiver reconciler (placeholder until the receivers work lands): stalls every Receiver."""

from __future__ import annotations

from typing import Any

from fluxwarden.controllers.notification.api import RECEIVER, NotificationOptions
from fluxwarden.controllers.runtime.controller import Context, Success
from fluxwarden.controllers.runtime.errors import Stalling
from fluxwarden.controllers.runtime.kube import Kube

FINALIZER = "finalizers.fluxcd.io"


class ReceiverReconciler:
    name = "notification-controller"
    resource = RECEIVER
    finalizer = FINALIZER

    def __init__(self, kube: Kube, options: NotificationOptions) -> None:
        self.options = options

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        raise Stalling("UnsupportedField", "spec: Receivers are not served yet")

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        return None
