"""Reading a custom object's ``spec`` safely: maps that may be missing or mistyped, Go durations.

The API types of every controller (``source/api.py``, ``kustomize/api.py``) read specs through
these, so a malformed field becomes ``Stalling("InvalidSpec")`` naming it, never an exception.
"""

from __future__ import annotations

from typing import Any

from fluxwarden.controllers.runtime.durations import parse_duration
from fluxwarden.controllers.runtime.errors import Stalling


def mapping(value: Any) -> dict[str, Any]:
    """``value`` when it is a map, else an empty one (a missing or mistyped field)."""
    return value if isinstance(value, dict) else {}


def spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    return mapping(obj.get("spec"))


def duration(spec: dict[str, Any], field: str, default: float) -> float:
    """``spec[field]`` in seconds, ``default`` when unset; a malformed value stalls the object."""
    raw = spec.get(field)
    if raw in (None, ""):
        return default
    try:
        return parse_duration(str(raw))
    except ValueError as exc:
        raise Stalling("InvalidSpec", f"spec.{field}: {exc}") from None
