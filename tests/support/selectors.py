"""A Kubernetes ``LabelSelector`` as the query string the API server evaluates (``?labelSelector=``).

Tests list real objects with it, so the API server, not a re-implementation, decides what matches.
"""

from __future__ import annotations

from typing import Any

_OPERATORS = {"In": "in", "NotIn": "notin"}


def selector_string(selector: dict[str, Any]) -> str:
    """``matchLabels`` and ``matchExpressions`` joined with commas; an empty selector matches all."""
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        if operator in _OPERATORS:
            parts.append(f"{key} {_OPERATORS[operator]} ({','.join(expression['values'])})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise ValueError(f"label selector operator {operator!r} is not one of In, NotIn, Exists, DoesNotExist")
    return ",".join(parts)
