"""Spec fields that fluxwarden does not implement yet: find the first one an object sets.

A controller declares a :class:`Table` (in its ``api.py``); the prologue checks it before the work,
so an object that asks for something fluxwarden would silently ignore is Stalled with reason
``UnsupportedField`` and a message naming the field, and is never Ready while the field is set.
Pure functions over plain dicts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

REASON = "UnsupportedField"


@dataclass(frozen=True)
class Rule:
    """``path`` (``spec.verify``, ``spec.dependsOn[].readyExpr``) is unsupported unless unset or ``allowed``.

    Unset means absent, ``null``, ``""``, ``[]`` or ``{}``. ``allowed`` lists the values that are
    implemented (Flux's default among them), compared as written. ``hint`` replaces the default
    advice ("remove it").
    """

    path: str
    allowed: tuple[Any, ...] = ()
    hint: str = ""
    skip_cleanup: bool = False  # deleting an object that sets it must not run the finalizer's cleanup


@dataclass(frozen=True)
class Table:
    """The rules of one kind, and which Flux controller implements them (named in the message)."""

    flux_controller: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Finding:
    rule: Rule
    where: str  # the path with list indices: spec.dependsOn[1].readyExpr
    value: Any
    flux_controller: str  # named in the message: what runs this object today

    @property
    def message(self) -> str:
        # Name the value of an enum-like field (deletionPolicy 'Orphan'), never free text (a CEL expression).
        shown = f" '{self.value}'" if self.rule.allowed and isinstance(self.value, str) else ""
        hint = self.rule.hint or "remove it"
        return (
            f"{self.where}{shown} is not supported by fluxwarden yet; {hint} or run Flux's "
            f"{self.flux_controller} for this object"
        )


def _unset(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _values(node: Any, steps: list[str], where: str) -> Iterator[tuple[str, Any]]:
    """Every value at ``steps`` under ``node``, with its concrete path; ``name[]`` walks a list."""
    if not steps:
        yield where, node
        return
    step, rest = steps[0], steps[1:]
    if not isinstance(node, dict):
        return
    if step.endswith("[]"):
        key = step[:-2]
        items = node.get(key)
        for index, item in enumerate(items if isinstance(items, list) else []):
            yield from _values(item, rest, f"{where}.{key}[{index}]")
    elif step in node:
        yield from _values(node[step], rest, f"{where}.{step}")


def _allowed(value: Any, allowed: tuple[Any, ...]) -> bool:
    # ``True == 1`` in Python: compare types too, so ``allowed=(False,)`` does not accept ``0``.
    return any(type(value) is type(a) and value == a for a in allowed)


def find(obj: dict[str, Any], table: Table) -> Finding | None:
    """The first rule of ``table`` that ``obj`` breaks, in table order; None when all are honoured."""
    for rule in table.rules:
        for where, value in _values(obj, rule.path.split("."), ""):
            if not _unset(value) and not _allowed(value, rule.allowed):
                return Finding(rule, where.lstrip("."), value, table.flux_controller)
    return None
