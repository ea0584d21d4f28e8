"""The notification controller's servers: events in (to Alerts) and Receivers' webhooks."""

from __future__ import annotations

from fluxwarden.controllers.notification.api import NotificationOptions
from fluxwarden.controllers.notification.event_service import EventService
from fluxwarden.controllers.notification.receiver_service import ReceiverService
from fluxwarden.controllers.runtime.kube import Kube
from fluxwarden.controllers.runtime.manager import ManagerOptions
from fluxwarden.controllers.runtime.service import Service


def notification_services(kube: Kube, options: NotificationOptions, manager: ManagerOptions) -> list[Service]:
    return [EventService(kube, options), ReceiverService(kube, options)]
