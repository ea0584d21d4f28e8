"""A Provider resolved with its Secrets (:class:`Target`), and the two errors a send can end in."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from fluxwarden.controllers.apply.redact import Redactor

DEFAULT_TIMEOUT = 15.0  # Flux's Provider.GetTimeout() default


class ProviderError(Exception):
    """The Provider cannot be used as written: one line naming it, the field and the fix."""


class DeliveryError(Exception):
    """The send failed (after retries where they help): one line, every secret value redacted."""


@dataclass(frozen=True)
class Target:
    """Everything one send needs. Secret values are kept out of ``repr`` (a Target may be logged)."""

    type: str
    namespace: str
    name: str
    uid: str
    address: str = field(default="", repr=False)
    channel: str = ""
    username: str = ""
    token: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False, hash=False, compare=False)
    proxy: str = field(default="", repr=False)
    timeout: float = DEFAULT_TIMEOUT
    ssl: ssl.SSLContext | None = field(default=None, repr=False, hash=False, compare=False)
    commit_status_expr: str = ""
    # Beyond the contract: what the transport and the error messages need.
    address_from_secret: bool = False  # then the address is a secret too: never shown
    tls_key: str = field(default="", repr=False)  # digest of the CA/client pair/proxy: one pooled client per value
    secret_values: tuple[str, ...] = field(default=(), repr=False)
    # The Provider as commitStatusExpr's ``provider`` variable sees it (metadata and spec, no Secret data).
    provider_object: dict[str, Any] = field(default_factory=dict, repr=False, hash=False, compare=False)

    @property
    def ref(self) -> str:
        return f"Provider {self.namespace}/{self.name}"

    def redactor(self) -> Redactor:
        return Redactor(self.secret_values)
