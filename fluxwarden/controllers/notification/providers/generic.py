"""``generic`` and ``generic-hmac``: the event's JSON, ``Gotk-Component``, the Secret's headers, and for
``generic-hmac`` ``X-Signature: sha256=<hex HMAC-SHA256 of the body keyed by the token>``."""

from __future__ import annotations

import hashlib
import hmac

from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.notification.providers.request import JSON_TYPE, Request, json_body, merge_headers
from fluxwarden.controllers.notification.providers.target import Target

COMPONENT_HEADER = "Gotk-Component"
SIGNATURE_HEADER = "X-Signature"


def signature(body: bytes, key: str) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def build(target: Target, event: Event) -> Request:
    body = json_body(event.body())
    # Flux sets Gotk-Component first, then the Secret's headers over it, then the signature.
    headers = merge_headers(
        [("Content-Type", JSON_TYPE), (COMPONENT_HEADER, event.reporting_controller)],
        target.headers.items(),
        [(SIGNATURE_HEADER, signature(body, target.token))] if target.type == "generic-hmac" else [],
    )
    return Request("POST", target.address, headers, body, credentials=frozenset({*target.headers, SIGNATURE_HEADER}))
