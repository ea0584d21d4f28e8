"""Polling for state that a real apiserver reaches shortly, not at once (e.g. RBAC informer caches)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    attempt: Callable[[], T],
    *,
    retry_on: Callable[[BaseException], bool],
    timeout: float = 10.0,
    interval: float = 0.1,
) -> T:
    """Call ``attempt`` until it returns; retry only errors ``retry_on`` accepts, re-raise the last one."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt()
        except Exception as error:
            if not retry_on(error) or time.monotonic() > deadline:
                raise
        time.sleep(interval)


def until(
    read: Callable[[], T], ready: Callable[[T], bool], *, timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """Poll ``read`` until ``ready(value)``; on timeout fail with the last value, so the test says why."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if ready(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or 'a condition'}; last: {value!r}")
        time.sleep(interval)
