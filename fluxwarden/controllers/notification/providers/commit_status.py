"""The commit status identifier (GitHub's ``context``, GitLab's ``name``): Flux's default
``<kind>/<name>/<provider uid prefix>``, or ``spec.commitStatusExpr`` evaluated over the event, the
Provider and the Alert (see ``cel``)."""

from __future__ import annotations

import functools
from typing import Any

from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.notification.providers import cel
from fluxwarden.controllers.notification.providers.metadata import default_commit_status
from fluxwarden.controllers.notification.providers.target import DeliveryError, Target


@functools.lru_cache(maxsize=256)
def compiled(text: str) -> cel.Expression:
    expression = cel.compile_expression(text)
    cel.check(expression)
    return expression


def identifier(target: Target, event: Event, alert: dict[str, Any] | None) -> str:
    if not target.commit_status_expr:
        return default_commit_status(target.uid, event)
    variables = {"event": event.body(), "provider": target.provider_object}
    if alert is not None:
        variables["alert"] = alert
    try:
        value = compiled(target.commit_status_expr).evaluate(variables)
    except cel.CelError as exc:
        raise DeliveryError(
            target.redactor()(
                f"{target.ref} ({target.type}): spec.commitStatusExpr failed for this event: {exc}; fix the "
                "expression, or give the event the key (an annotation event.toolkit.fluxcd.io/<key> on the object, "
                "or the Alert's spec.eventMetadata)"
            )
        ) from None
    if not value:
        raise DeliveryError(f"{target.ref} ({target.type}): spec.commitStatusExpr gave an empty string; fix it")
    return value
