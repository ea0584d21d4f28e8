"""A field's value as text, safe for any JSON: what rules compare names with and quote in messages.

Kubernetes sends strings where names belong, but a broken or hostile review may put a list or an
object there, nested thousands of levels deep. ``str()`` of that recurses (RecursionError) and can
be megabytes long, so containers are named by their type instead of printed.
"""

from __future__ import annotations

from typing import Any


def text(value: Any) -> str:
    """``value`` itself when it is a string, its ``str()`` when a scalar, a placeholder for a container."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "<object>"
    if isinstance(value, list | tuple | set):
        return "<list>"
    return str(value)


def cut(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, the cut marked with an ellipsis."""
    return value if len(value) <= limit else value[: limit - 1] + "…"
