"""What every receiver type's check is given (a request's headers and body) and gives back.

A check raises :class:`Rejected` with a one-line reason (the server answers 400 with it) or returns
a :class:`Verdict`. Signatures and tokens are compared with ``hmac.compare_digest`` only, and a
reason never quotes the token or a signature.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

ALGORITHMS = ("sha1", "sha256", "sha512")


class Rejected(ValueError):
    """The request is not from the caller the Receiver trusts, or not for it: 400, nothing triggered."""


@dataclass(frozen=True)
class Hook:
    """A request as the checks see it: header names lower-cased, the first value of each kept."""

    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def hook(headers: Iterable[tuple[str, str]] | Mapping[str, str], body: bytes) -> Hook:
    """A :class:`Hook` from header pairs (Starlette's, decoded latin-1) or a dict, in any case."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    lowered: dict[str, str] = {}
    for name, value in pairs:
        lowered.setdefault(name.lower(), value)  # the first, as Go's Header.Get
    return Hook(lowered, body)


@dataclass(frozen=True)
class Verdict:
    """A request that passed: the event it names (for the log), and whether it asks for a reconcile."""

    event: str = ""
    trigger: bool = True  # False: a ping (a test delivery), answered 200 with nothing reconciled


Check = Callable[[Hook, bytes, Sequence[str]], Verdict]
"""``check(hook, token, events) -> Verdict``; raises :class:`Rejected`."""


def parse_signature(value: str, header: str, allowed: Sequence[str]) -> tuple[str, bytes]:
    """``<algorithm>=<hex>`` from ``header``: the algorithm and the MAC bytes."""
    if not value:
        raise Rejected(f"{header} is missing; sign the body with the Receiver's token")
    algorithm, sep, digest = value.partition("=")
    if not sep or algorithm not in allowed:
        choices = ", ".join(f"{a}=<hex>" for a in allowed)
        raise Rejected(f"{header} must be {choices}")
    try:
        return algorithm, bytes.fromhex(digest)
    except ValueError:
        raise Rejected(f"{header} is not {algorithm}= followed by a hex digest") from None


def hmac_matches(algorithm: str, token: bytes, body: bytes, mac: bytes) -> bool:
    expected = hmac.new(token, body, getattr(hashlib, algorithm)).digest()
    return hmac.compare_digest(expected, mac)


def verify_hmac(hook: Hook, token: bytes, header: str, allowed: Sequence[str]) -> None:
    algorithm, mac = parse_signature(hook.header(header), header, allowed)
    if not hmac_matches(algorithm, token, hook.body, mac):
        raise Rejected(f"{header} does not match the body signed with the Receiver's token")


def token_matches(value: str, token: bytes) -> bool:
    """A header that carries the token itself (GitLab), compared in constant time."""
    return hmac.compare_digest(value.encode("latin-1", "replace"), token)


def allow_event(event: str, events: Sequence[str], header: str) -> None:
    """Flux's filter: with ``spec.events`` set, the event must be one of them (case-insensitive)."""
    if events and not any(event.casefold() == e.casefold() for e in events):
        shown = f"'{event[:100]}'" if event else "no event"
        raise Rejected(f"{header} names {shown}, which is not in the Receiver's spec.events")


JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def media_type(hook: Hook) -> str:
    return hook.header("content-type").split(";", 1)[0].strip().lower()


def require_payload_type(hook: Hook, sender: str) -> None:
    """GitHub and Bitbucket Server post JSON, or a form with the JSON in ``payload`` (go-github's rule)."""
    kind = media_type(hook)
    if kind not in (JSON, FORM):
        shown = f"'{kind[:60]}'" if kind else "missing"
        raise Rejected(f"Content-Type is {shown}; {sender} webhooks send {JSON} (or {FORM})")
