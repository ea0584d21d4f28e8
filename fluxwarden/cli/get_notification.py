"""``fluxwarden get alerts|alert-providers|receivers``: the notification kinds, as ``flux get`` lists them.

Receivers have a Ready condition (the webhook path in its message). v1beta3 Alerts and Providers have no
status: where ``flux`` prints a constant "is Ready", this says what is wrong with one: an Alert whose
pattern does not compile (the controller's InvalidConfig) or whose Provider is missing, a Provider of a
type fluxwarden cannot send.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fluxwarden.cli.objects import Row, rows, table
from fluxwarden.controllers.notification import providers
from fluxwarden.controllers.notification.api import ALERT, PROVIDER, RECEIVER
from fluxwarden.controllers.notification.matching import compile_alert
from fluxwarden.controllers.runtime.kube import Kube, Resource
from fluxwarden.tenancy.settings import Settings

# Only the Alert's own fields are judged here; the tenancy rules depend on the controller's settings.
_NO_TENANCY = Settings(enforce=False)


def alert_row(obj: dict[str, Any], provider_names: set[tuple[str, str]]) -> Row:
    """READY False with the first problem (a bad pattern, a missing Provider), else Flux's "Alert is Ready"."""
    compiled = compile_alert(obj, _NO_TENANCY)
    ready, message = "True", "Alert is Ready"
    if compiled.problems:
        ready, message = "False", compiled.problems[0]
    elif (compiled.namespace, compiled.provider) not in provider_names:
        ready, message = "False", f"spec.providerRef: Provider '{compiled.provider}' not found in {compiled.namespace}"
    return Row(compiled.namespace, compiled.name, "", compiled.suspended, ready, message)


def provider_row(obj: dict[str, Any]) -> Row:
    meta, spec = obj["metadata"], obj.get("spec") or {}
    kind = str(spec.get("type") or "")
    ready, message = "True", "Provider is Ready"
    if kind not in providers.SUPPORTED:
        supported = ", ".join(sorted(providers.SUPPORTED))
        ready, message = "False", f"spec.type '{kind}' is not supported by fluxwarden; supported: {supported}"
    return Row(meta.get("namespace", ""), meta["name"], "", bool(spec.get("suspend")), ready, message)


def _listed(kube: Kube, resource: Resource, namespace: str | None) -> list[dict[str, Any]]:
    items, _ = kube.list(resource, namespace)
    return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))


def alerts(kube: Kube, namespace: str | None) -> str:
    names = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in _listed(kube, PROVIDER, namespace)}
    found = [alert_row(obj, names) for obj in _listed(kube, ALERT, namespace)]
    return table(found, namespace is None, revision=False)


def alert_providers(kube: Kube, namespace: str | None) -> str:
    found = [provider_row(obj) for obj in _listed(kube, PROVIDER, namespace)]
    return table(found, namespace is None, revision=False)


def receivers(kube: Kube, namespace: str | None) -> str:
    return table(rows(kube, RECEIVER, namespace), namespace is None, revision=False)


Lister = Callable[[Kube, str | None], str]
# What ``fluxwarden get`` registers (flux.py): the word, its aliases (flux's words too), help, the lister.
KINDS: dict[str, tuple[list[str], str, Lister]] = {
    "alerts": (["alert"], "Alerts (v1beta3) and what stops them", alerts),
    "alert-providers": (["alert-provider", "providers", "provider"], "Providers (v1beta3)", alert_providers),
    "receivers": (["receiver"], "Receivers (v1) and their webhook paths", receivers),
}
