"""Walk a field path with ``*`` list wildcards through a plain dict; pure helpers for the rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fluxwarden.tenancy.kinds import WILDCARD

Step = str | int


def walk(obj: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[Step, ...], Any]]:
    """Yield ``(concrete path, value)`` for every place ``path`` reaches; missing parts yield nothing."""
    if not path:
        yield (), obj
        return
    head, rest = path[0], path[1:]
    if head == WILDCARD:
        if isinstance(obj, list):
            for index, item in enumerate(obj):
                for sub, value in walk(item, rest):
                    yield (index, *sub), value
        return
    if isinstance(obj, dict) and head in obj:
        for sub, value in walk(obj[head], rest):
            yield (head, *sub), value


def dotted(steps: tuple[Step, ...]) -> str:
    """``("spec", "resources", 1)`` -> ``"spec.resources[1]"``."""
    out = ""
    for step in steps:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def pointer(steps: tuple[Step, ...]) -> str:
    """The JSON Pointer (RFC 6901) of a concrete path."""
    return "".join("/" + str(s).replace("~", "~0").replace("/", "~1") for s in steps)
