"""The part of CEL that ``spec.commitStatusExpr`` needs, evaluated as Flux does (cel-go, string output).

Supported: string literals ('x', "x"), the variables ``event``, ``provider`` and ``alert`` (the objects as
JSON maps), field selection (``event.metadata.env``) and indexing (``event.metadata['k8s/env']``),
``+`` on strings, parentheses, and the string methods ``lowerAscii()``, ``upperAscii()``, ``trim()``
and ``replace(old, new)``. Anything else is refused when the Provider is resolved (:class:`CelError`
naming what), so an expression never silently means something other than in Flux.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

VARIABLES = ("event", "provider", "alert")
_TOKEN = re.compile(
    r"""\s*(?:(?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[.+()\[\],]))"""
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
_METHODS: dict[str, tuple[int, Callable[..., str]]] = {
    "lowerAscii": (0, lambda s: "".join(c.lower() if c.isascii() else c for c in s)),
    "upperAscii": (0, lambda s: "".join(c.upper() if c.isascii() else c for c in s)),
    "trim": (0, str.strip),
    "replace": (2, lambda s, old, new: s.replace(old, new)),
}


class CelError(ValueError):
    """The expression is not in the supported subset, or does not evaluate to a string."""


Node = tuple[Any, ...]


@dataclass(frozen=True)
class Expression:
    text: str
    tree: Node

    def evaluate(self, variables: dict[str, Any]) -> str:
        value = _eval(self.tree, variables)
        if not isinstance(value, str):
            raise CelError(f"evaluates to {type(value).__name__}, not a string")
        return value


def compile_expression(text: str) -> Expression:
    parser = _Parser(_tokens(text))
    tree = parser.sum()
    if parser.peek() is not None:
        raise CelError(f"unexpected {parser.peek()[1]!r}")  # type: ignore[index]
    return Expression(text, tree)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise CelError(f"{text[position:].strip()[:20]!r} is beyond the CEL fluxwarden evaluates")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        position = match.end()
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.at = tokens, 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise CelError(f"expected {value or 'more'}, found {token[1] if token else 'the end'!r}")
        self.at += 1
        return token

    def sum(self) -> Node:
        node = self.postfix()
        while (token := self.peek()) is not None and token[1] == "+":
            self.take("+")
            node = ("+", node, self.postfix())
        return node

    def postfix(self) -> Node:
        node = self.primary()
        while (token := self.peek()) is not None and token[1] in (".", "["):
            if self.take()[1] == "[":
                node = ("index", node, self.sum())
                self.take("]")
                continue
            kind, name = self.take()
            if kind != "ident":
                raise CelError(f"expected a field or method name after '.', found {name!r}")
            if (after := self.peek()) is not None and after[1] == "(":
                node = ("call", name, node, self.arguments())
            else:
                node = ("field", node, name)
        return node

    def arguments(self) -> tuple[Node, ...]:
        self.take("(")
        found: list[Node] = []
        while (token := self.peek()) is not None and token[1] != ")":
            found.append(self.sum())
            if (token := self.peek()) is not None and token[1] == ",":
                self.take(",")
        self.take(")")
        return tuple(found)

    def primary(self) -> Node:
        kind, value = self.take()
        if kind == "string":
            return ("literal", _unquote(value))
        if kind == "ident":
            if value not in VARIABLES:
                raise CelError(f"undeclared reference to {value!r} (the variables are event, provider and alert)")
            return ("variable", value)
        if value == "(":
            node = self.sum()
            self.take(")")
            return node
        raise CelError(f"unexpected {value!r}")


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body)


def _eval(node: Node, variables: dict[str, Any]) -> Any:
    kind = node[0]
    if kind == "literal":
        return node[1]
    if kind == "variable":
        if node[1] not in variables:
            raise CelError(f"{node[1]} is not known here")
        return variables[node[1]]
    if kind in ("field", "index"):
        base = _eval(node[1], variables)
        key = node[2] if kind == "field" else _eval(node[2], variables)
        if not isinstance(base, dict) or key not in base:
            raise CelError(f"no such key: {key}")
        return base[key]
    if kind == "+":
        left, right = _eval(node[1], variables), _eval(node[2], variables)
        if not isinstance(left, str) or not isinstance(right, str):
            raise CelError("'+' joins strings only here")
        return left + right
    name, target, arguments = node[1], _eval(node[2], variables), [_eval(a, variables) for a in node[3]]
    if name not in _METHODS:
        raise CelError(f"method {name}() is beyond the CEL fluxwarden evaluates")
    arity, method = _METHODS[name]
    if not isinstance(target, str) or len(arguments) != arity or not all(isinstance(a, str) for a in arguments):
        raise CelError(f"{name}() takes a string and {arity} string argument(s)")
    return method(target, *arguments)


def check(expression: Expression) -> None:
    """Refuse unknown methods at resolve time, before any event: walk the tree once."""

    def walk(node: Node) -> None:
        if node[0] == "call":
            if node[1] not in _METHODS:
                raise CelError(f"method {node[1]}() is beyond the CEL fluxwarden evaluates")
            walk(node[2])
            for argument in node[3]:
                walk(argument)
        elif node[0] in ("field", "+", "index"):
            walk(node[1])
            if node[0] != "field":
                walk(node[2])

    walk(expression.tree)
