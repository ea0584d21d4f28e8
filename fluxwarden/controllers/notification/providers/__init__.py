"""Providers (placeholder until the providers work lands): ``generic`` only, address from spec or Secret."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

import httpx

from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.runtime.kube import Kube, KubeError

SUPPORTED = frozenset({"generic"})


class ProviderError(Exception):
    """The Provider cannot be used as written."""


class DeliveryError(Exception):
    """The send failed."""


@dataclass(frozen=True)
class Target:
    type: str
    namespace: str
    name: str
    uid: str
    address: str
    headers: dict[str, str] = field(default_factory=dict)
    token: str = ""
    timeout: float = 15.0
    ssl: ssl.SSLContext | None = None


def secret_names(provider: dict[str, Any]) -> tuple[str, ...]:
    ref = ((provider.get("spec") or {}).get("secretRef") or {}).get("name")
    return (str(ref),) if ref else ()


def resolve(kube: Kube, provider: dict[str, Any]) -> Target:
    meta, spec = provider.get("metadata") or {}, provider.get("spec") or {}
    where = f"Provider {meta.get('namespace')}/{meta.get('name')}"
    kind = str(spec.get("type") or "")
    if kind not in SUPPORTED:
        raise ProviderError(f"{where}: spec.type {kind!r} is not supported yet; use generic")
    address = str(spec.get("address") or "")
    for name in secret_names(provider):
        try:
            data = kube.secret_data(str(meta.get("namespace")), name)
        except KubeError as exc:
            raise ProviderError(f"{where}: spec.secretRef: {exc}") from None
        address = data.get("address", address.encode()).decode()
    if not address:
        raise ProviderError(f"{where}: no address; set spec.address or the Secret's address key")
    return Target(kind, str(meta.get("namespace")), str(meta.get("name")), str(meta.get("uid")), address)


async def deliver(target: Target, event: Event) -> None:
    headers = {"Gotk-Component": event.reporting_controller}
    try:
        async with httpx.AsyncClient(timeout=target.timeout) as client:
            response = await client.post(target.address, json=event.body(), headers=headers)
            response.raise_for_status()
    except httpx.HTTPError as exc:
        raise DeliveryError(f"Provider {target.namespace}/{target.name}: {exc.__class__.__name__}") from None


async def close() -> None:
    return None
