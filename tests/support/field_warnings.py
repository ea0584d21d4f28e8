"""Catches what Flux's strict CRD schemas would prune without a word.

The API server drops a field that a CRD's structural schema does not know and answers with a
``Warning: unknown field "status.url"`` header (server-side field validation, "Warn" by default). Nothing
fails, so a controller writing such a field, or a test relying on one, would go unnoticed. This records
every such warning seen by the in-process API clients (the tests' and the controllers'); the e2e
conftest fails the test during which one arrived. It observes real responses: nothing is replaced.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes.client import rest

MARKER = "unknown field"


class FieldWarnings:
    """Unknown-field warnings, each with the request that drew it (``PATCH /apis/...: unknown field "x"``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[str] = []

    def record(self, method: str, url: str, response: Any) -> None:
        headers = getattr(getattr(response, "response", None), "headers", None)
        if headers is None:
            return
        values = headers.get_all("Warning") if hasattr(headers, "get_all") else [headers.get("Warning")]
        path = url.split("?", 1)[0].split("://", 1)[-1].partition("/")[2]
        found = [f"{method} /{path}: {value}" for value in values or () if value and MARKER in value]
        if found:
            with self._lock:
                self._seen.extend(found)

    def take(self) -> list[str]:
        """The warnings recorded since the last call."""
        with self._lock:
            seen, self._seen = self._seen, []
        return seen


@contextmanager
def recording() -> Iterator[FieldWarnings]:
    """Record unknown-field warnings of every ``kubernetes`` client request while the block runs."""
    warnings = FieldWarnings()
    original = rest.RESTClientObject.request

    def request(self: rest.RESTClientObject, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = original(self, method, url, *args, **kwargs)
        warnings.record(method, url, response)
        return response

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rest.RESTClientObject, "request", request)
        yield warnings
