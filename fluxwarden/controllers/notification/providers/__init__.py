"""Providers: where an Alert's events go (Flux's ``Provider``, v1beta3), one module per type.

``resolve`` turns a Provider and its Secrets into a :class:`Target`; ``deliver`` sends one event to
it over a pooled HTTPS client with Flux's retries; ``close`` ends the pool at shutdown. A config
problem is a :class:`ProviderError`, a failed send a :class:`DeliveryError`: one line each, naming
the Provider, the cause and the fix, never a secret value.
"""

from __future__ import annotations

from fluxwarden.controllers.notification.providers.resolve import resolve, secret_names
from fluxwarden.controllers.notification.providers.send import deliver
from fluxwarden.controllers.notification.providers.target import DeliveryError, ProviderError, Target
from fluxwarden.controllers.notification.providers.transport import close
from fluxwarden.controllers.notification.providers.types import SUPPORTED

__all__ = ["SUPPORTED", "DeliveryError", "ProviderError", "Target", "close", "deliver", "resolve", "secret_names"]
