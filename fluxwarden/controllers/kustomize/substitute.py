"""Flux post-build variable substitution (``spec.postBuild``) over built objects.

Owns the ``${var}`` language of Flux's envsubst fork (fluxcd/pkg/envsubst) and how variables are
merged. Called by the kustomize reconciler after ``build.build``: ``variables_from`` merges the
``substituteFrom`` data and ``substitute``; ``substitute`` expands the strings of every object.

Expressions, as Flux's parser accepts them:

- ``${var}``; defaults ``${var:=word}``, ``${var:-word}``, ``${var=word}`` -- all three use ``word``
  when ``var`` is unset *or empty* (Flux's semantics); ``word`` may hold ``${...}`` and is only
  evaluated when used;
- ``${#var}`` (length), ``${var^}`` ``${var^^}`` ``${var,}`` ``${var,,}`` (case),
  ``${var:offset}`` ``${var:offset:length}``, ``${var/pat/rep}`` ``${var//pat/rep}``
  ``${var/#pat/rep}`` ``${var/%pat/rep}`` (plain text; ``\\/`` is a slash), ``${var#glob}``
  ``${var##glob}`` ``${var%glob}`` ``${var%%glob}``;
- ``$$`` is a literal ``$`` (so ``$${var}`` gives ``${var}``); ``$var`` without braces is left alone.
- Refused with an error: ``${var-word}`` (Flux's parser fails on it too), ``${var:?word}`` and
  ``${var:+word}`` (Flux silently treats them as ``:-``), variable names outside
  ``[_a-zA-Z][_a-zA-Z0-9]*``.

Flux expands the YAML text of each object and parses it again. Here each string is expanded on its
own, so no value can break the YAML (``a: b``, quotes, ``#``) and the result is always valid; then a
one-line string that held an expression is typed the way Flux's re-parse of a plain scalar would:
``3`` -> int, ``true`` -> bool, empty -> null, ``"123"`` (Flux's ``${quote}`` idiom) -> the string
``123``, ``[...]``/``{...}`` -> list/map. Any other result stays the string it became, where Flux
would fail or cut it at a ``#``. Multi-line strings (block scalars) stay strings, as in Flux. Quotes
written around ``"${var}"`` in the sources do not survive ``kustomize build``, in Flux as here.

Values may come from Secrets: no message ever includes a value, only variable names, the object
(``Kind/namespace/name``) and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import yaml

from fluxwarden.controllers.kustomize.build import ManifestLoader

SUBSTITUTE_KEY = "kustomize.toolkit.fluxcd.io/substitute"
DISABLED = "disabled"
VAR_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_DEFAULT_OPS = (":=", ":-", "=")
_NULLS = ("", "~", "null", "Null", "NULL")
_FRAGMENT = 40  # characters of a broken expression quoted in an error


class SubstitutionError(Exception):
    """Substitution failed; the one-line message names the variable, object and field, never a value."""


def variables_from(substitute: dict[str, str] | None, sources: list[dict[str, str]]) -> dict[str, str]:
    """The variables of ``postBuild``: ``sources`` (the ``substituteFrom`` data, in order, later ones
    winning), then ``substitute`` over them, as Flux merges them. Newlines are removed from values,
    as Flux does, so a value can never span lines."""
    merged: dict[str, str] = {}
    for data in sources:
        merged.update(data)
    merged.update(substitute or {})
    variables = {str(name): str(value).replace("\n", "") for name, value in merged.items()}
    _check_names(variables)
    return variables


def substitute(
    objects: list[dict[str, Any]], variables: dict[str, str], *, strict: bool = True
) -> list[dict[str, Any]]:
    """Expand ``${...}`` in every string (keys included) of ``objects``; new objects, inputs untouched.

    Objects labelled or annotated ``kustomize.toolkit.fluxcd.io/substitute: disabled`` are returned
    as they are. With no variables at all nothing is substituted, as in Flux. ``strict``: a variable
    that is unset and has no default is an error (Flux's ``StrictPostBuildSubstitutions``); otherwise
    it expands to the empty string.
    """
    if not variables:
        return list(objects)
    _check_names(variables)
    expander = _Expander(variables, strict)
    result = []
    for obj in objects:
        if _disabled(obj):
            result.append(obj)
            continue
        expander.object_id = object_id(obj)
        expanded = expander.value(obj, "")
        _check_identity(obj, expanded, expander.object_id)
        result.append(expanded)
    return result


def object_id(obj: dict[str, Any]) -> str:
    """``Kind/namespace/name``, or ``Kind/name`` for an object without a namespace."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    parts = [str(obj.get("kind") or "?"), str(meta.get("namespace") or ""), str(meta.get("name") or "?")]
    return "/".join(part for part in parts if part)


def _check_names(variables: dict[str, str]) -> None:
    invalid = sorted(name for name in variables if not VAR_NAME.fullmatch(name))
    if invalid:
        raise SubstitutionError(
            f"variable name '{invalid[0]}' is invalid: it must match ^[_a-zA-Z][_a-zA-Z0-9]*$ "
            "(rename the key in postBuild.substitute or the substituteFrom ConfigMap/Secret)"
        )


def _disabled(obj: dict[str, Any]) -> bool:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return False
    return any(
        isinstance(meta.get(field), dict) and meta[field].get(SUBSTITUTE_KEY) == DISABLED
        for field in ("labels", "annotations")
    )


def _check_identity(before: dict[str, Any], after: dict[str, Any], where: str) -> None:
    """A substituted object must still be an object the API server can address."""
    for field in ("apiVersion", "kind"):
        if not (isinstance(after.get(field), str) and after[field]):
            raise SubstitutionError(f"{where}: {field} is not a non-empty string after substitution")
    meta = after.get("metadata")
    had_name = isinstance(before.get("metadata"), dict) and before["metadata"].get("name")
    if had_name and not (isinstance(meta, dict) and isinstance(meta.get("name"), str) and meta["name"]):
        raise SubstitutionError(f"{where}: metadata.name is not a non-empty string after substitution")


# The parsed form of a string: literal text and expressions, in order.
@dataclass(frozen=True)
class _Expr:
    name: str
    op: str  # "" | "len" | ":=" ":-" "=" | "^" "^^" "," ",," | ":" | "/" "//" "/#" "/%" | "#" "##" "%" "%%"
    args: tuple[_Parts, ...] = ()


_Parts = tuple[str | _Expr, ...]


class _SyntaxError(Exception):
    """A malformed expression; the message quotes the manifest text (never a value)."""


class _Unset(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Parser:
    """Recursive descent over one string, following the grammar of Flux's envsubst scanner."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> _Parts:
        return self._parts(stops="", backslash=False)

    def _parts(self, stops: str, backslash: bool) -> _Parts:
        """Text and expressions up to (not including) the first unescaped character of ``stops``."""
        text = self.text
        out: list[str | _Expr] = []
        chunk: list[str] = []
        while self.pos < len(text):
            two = text[self.pos : self.pos + 2]
            if two == "$$":
                chunk.append("$")
                self.pos += 2
            elif two == "${":
                if chunk:
                    out.append("".join(chunk))
                    chunk = []
                self.pos += 2
                out.append(self._expr(self.pos - 2))
            elif backslash and two in ("\\/", "\\\\"):
                chunk.append(two[1])
                self.pos += 2
            elif text[self.pos] in stops:
                break
            else:
                chunk.append(text[self.pos])
                self.pos += 1
        if chunk:
            out.append("".join(chunk))
        return tuple(out)

    def _expr(self, start: int) -> _Expr:
        if self._peek() == "#":
            self.pos += 1
            return self._close(start, _Expr(self._name(start), "len"))
        name = self._name(start)
        char, after = self._peek(), self._peek(1)
        if char == "}":
            self.pos += 1
            return _Expr(name, "")
        if char == ":" and after in ("=", "-"):
            self.pos += 2
            return self._close(start, _Expr(name, ":" + after, (self._parts("}", False),)))
        if char == ":" and after in ("?", "+"):
            raise _SyntaxError(f"'${{{name}:{after}...}}' is not supported; use ${{{name}:-default}}")
        if char == ":":
            self.pos += 1
            offset = self._parts(":}", False)
            if self._peek() != ":":
                return self._close(start, _Expr(name, ":", (offset,)))
            self.pos += 1
            return self._close(start, _Expr(name, ":", (offset, self._parts("}", False))))
        if char == "=":
            self.pos += 1
            return self._close(start, _Expr(name, "=", (self._parts("}", False),)))
        if char in (",", "^", "#", "%"):
            op = char * 2 if after == char else char
            self.pos += len(op)
            glob = (self._parts("}", False),) if char in "#%" else ()
            return self._close(start, _Expr(name, op, glob))
        if char == "/":
            op = "/" + after if after in ("/", "#", "%") else "/"
            self.pos += len(op)
            pattern = self._parts("/", True)
            self._expect(start, "/")
            return self._close(start, _Expr(name, op, (pattern, self._parts("}", True))))
        if char == "":
            raise _SyntaxError(f"missing '}}' in {self._fragment(start)}")
        if char == "-":
            raise _SyntaxError(f"'${{{name}-...}}' is not supported; use ${{{name}:-default}}")
        raise _SyntaxError(f"bad substitution {self._fragment(start)}")

    def _name(self, start: int) -> str:
        match = VAR_NAME.match(self.text, self.pos)
        if match is None:
            raise _SyntaxError(f"bad variable name in {self._fragment(start)}")
        self.pos = match.end()
        return match.group()

    def _close(self, start: int, expr: _Expr) -> _Expr:
        self._expect(start, "}")
        return expr

    def _expect(self, start: int, char: str) -> None:
        if self.pos >= len(self.text):
            raise _SyntaxError(f"missing '{char}' in {self._fragment(start)}")
        if self.text[self.pos] != char:
            raise _SyntaxError(f"bad substitution {self._fragment(start)}")
        self.pos += 1

    def _peek(self, ahead: int = 0) -> str:
        return self.text[self.pos + ahead : self.pos + ahead + 1]

    def _fragment(self, start: int) -> str:
        fragment = self.text[start : start + _FRAGMENT]
        return repr(fragment + ("..." if len(self.text) > start + _FRAGMENT else ""))


class _Expander:
    """Expands the strings of one object after another; ``object_id`` names the current one in errors."""

    def __init__(self, variables: dict[str, str], strict: bool) -> None:
        self.variables = variables
        self.strict = strict
        self.object_id = ""

    def value(self, value: Any, field: str) -> Any:
        if isinstance(value, str):
            return self.string(value, field, typed=True)
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                path = f"{field}.{key}" if field else str(key)
                new_key = self.string(key, path, typed=False) if isinstance(key, str) else key
                out[new_key] = self.value(item, path)
            return out
        if isinstance(value, list):
            return [self.value(item, f"{field}[{index}]") for index, item in enumerate(value)]
        return value

    def string(self, text: str, field: str, *, typed: bool) -> Any:
        if "$" not in text:
            return text
        try:
            parts = _Parser(text).parse()
            expanded = self._parts(parts)
        except _SyntaxError as exc:
            raise SubstitutionError(f"{self.object_id}: {field}: {exc}") from None
        except _Unset as exc:
            raise SubstitutionError(
                f"{self.object_id}: variable '{exc.name}' is not set (field {field}); define it in "
                f"postBuild.substitute or substituteFrom, or give a default: ${{{exc.name}:=default}}"
            ) from None
        if typed and "\n" not in text and "\n" not in expanded and any(isinstance(p, _Expr) for p in parts):
            return _plain_scalar(expanded)
        return expanded

    def _parts(self, parts: _Parts) -> str:
        return "".join(part if isinstance(part, str) else self._expr(part) for part in parts)

    def _expr(self, expr: _Expr) -> str:
        value = self.variables.get(expr.name)
        if expr.op in _DEFAULT_OPS:
            return value if value else self._parts(expr.args[0])
        if value is None:
            if self.strict:
                raise _Unset(expr.name)
            value = ""
        return _apply(expr.op, value, [self._parts(arg) for arg in expr.args])


def _apply(op: str, value: str, args: list[str]) -> str:
    match op:
        case "":
            return value
        case "len":
            return str(len(value))
        case "^":
            return value[:1].upper() + value[1:]
        case "^^":
            return value.upper()
        case ",":
            return value[:1].lower() + value[1:]
        case ",,":
            return value.lower()
        case ":":
            return _substring(value, args)
        case "/":
            return value.replace(args[0], args[1], 1)
        case "//":
            return value.replace(args[0], args[1])
        case "/#":
            return args[1] + value[len(args[0]) :] if value.startswith(args[0]) else value
        case "/%":
            return value[: len(value) - len(args[0])] + args[1] if value.endswith(args[0]) else value
        case _:
            return _trim(op, value, args[0])


def _substring(value: str, args: list[str]) -> str:
    """``${var:offset[:length]}`` as Flux computes it: negative offsets count from the end, a
    negative length stops that far from the end, an unparsable number leaves the value whole."""
    try:
        offset = int(args[0])
    except ValueError:
        return value
    if offset < 0:
        offset = max(len(value) + offset, 0)
    if len(args) == 1:
        return value[offset:]
    try:
        length = int(args[1])
    except ValueError:
        return value
    if length < 0:
        end = len(value) + length
        return value[offset:end] if end >= offset else ""
    return value[offset : offset + length]


def _trim(op: str, value: str, pattern: str) -> str:
    """Remove the shortest (``#``, ``%``) or longest (``##``, ``%%``) prefix or suffix matching a glob."""
    size = len(value)
    lengths = range(size + 1) if op in ("#", "%") else range(size, -1, -1)
    for length in lengths:
        if op.startswith("#") and fnmatchcase(value[:length], pattern):
            return value[length:]
        if op.startswith("%") and fnmatchcase(value[size - length :], pattern):
            return value[: size - length]
    return value


def _plain_scalar(text: str) -> Any:
    """What a YAML plain scalar ``text`` means where Flux's re-parse would give it a type; else ``text``."""
    try:
        value = yaml.load(text, Loader=ManifestLoader)
    except yaml.YAMLError:
        return text
    if value is None:
        return None if text.strip() in _NULLS else text  # '# note' is a comment to YAML, not a null here
    if isinstance(value, bool | int | float):
        return value
    start = text.lstrip()[:1]
    if isinstance(value, str) and start in ("'", '"'):
        return value  # a quoted scalar, e.g. ${quote}${id}${quote}
    if isinstance(value, list | dict) and start in ("[", "{"):
        return value  # a flow collection
    return text
