"""One HTTP request a notifier wants sent: built by the pure per-type modules, sent by ``transport``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # Header names that carry credentials: never sent on a redirect to another origin.
    credentials: frozenset[str] = frozenset()
    # For a 2xx that still means failure (Slack's chat.postMessage answers 200 with ok=false):
    # the one-line reason, or None when the answer is a success.
    check: Callable[[bytes], str | None] | None = field(default=None, compare=False)

    def json(self) -> Any:
        """The body parsed (tests and the GitHub/GitLab listing use it)."""
        return json.loads(self.body)


def json_body(payload: Any) -> bytes:
    """Compact UTF-8 JSON, as Go's encoding/json writes it (no spaces)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def merge_headers(*layers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Later layers win, header names compared without case (Go's Header.Set canonicalises them)."""
    out: dict[str, str] = {}
    for layer in layers:
        for name, value in layer:
            for existing in [k for k in out if k.lower() == name.lower()]:
                del out[existing]
            out[name] = value
    return out
