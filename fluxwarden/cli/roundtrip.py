"""Comment-preserving YAML files for ``fluxwarden fix``: read them as documents, edit, render.

Each document is loaded with ruamel.yaml round-trip; a new plain value is applied to the loaded
structure as a minimal edit (set, rename, insert or delete a key), so comments, key order and
quoting survive. A document nothing changed in is rendered back byte for byte.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, StringMark, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString, SingleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

# A line that is only a document marker (and maybe a comment); '---' followed by content is content.
_BARE_MARKER = re.compile(r"(---|\.\.\.)\s*(#.*)?$")
_DOCUMENT_START = re.compile(r"---(\s|$)")
_DOCUMENT_END = re.compile(r"\.\.\.(\s|$)")
_KEY_ONLY = re.compile(r"^[^#]*:\s*(#.*)?$")


@dataclass
class Document:
    """One YAML document of a file: the text around it is kept verbatim, ``body`` is ruamel's to dump.

    ``head`` holds comments, blank lines, directives and the ``---`` line before the first content
    line, ``tail`` the blank lines and column-0 comments after the last one; ``start`` is the body's
    first line (0-based) in the file.
    """

    start: int
    head: str
    body: str
    tail: str
    data: Any = None
    changed: bool = False


@dataclass
class SourceFile:
    path: Path
    text: str  # newlines normalised to \n; written back with ``newline``
    newline: str
    documents: list[Document] = field(default_factory=list)
    faithful: bool = True  # the documents, parsed one by one, are what the whole text holds


# ---- reading: split into documents (YAML forbids '---'/'...' at column 0 inside content), parse each


def _yaml() -> YAML:
    yaml = YAML()  # round-trip
    yaml.preserve_quotes = True
    yaml.width = 1 << 16  # never re-wrap a long line
    return yaml


def _is_head_filler(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#") or line.startswith("%") or bool(_BARE_MARKER.match(line))


def _is_tail_filler(line: str) -> bool:
    # Only column-0 comments: an indented '#' line may be part of a block scalar.
    return not line.strip() or line.startswith("#") or bool(_DOCUMENT_END.match(line))


def _segments(lines: list[str]) -> list[tuple[int, list[str]]]:
    segments: list[tuple[int, list[str]]] = [(0, [])]
    for number, line in enumerate(lines):
        if _DOCUMENT_START.match(line) and segments[-1][1]:
            segments.append((number, []))
        segments[-1][1].append(line)
        if _DOCUMENT_END.match(line):
            segments.append((number + 1, []))
    return [s for s in segments if s[1]]


def parse_documents(text: str) -> list[Document]:
    """The documents of ``text``; raises ``YAMLError`` with file line numbers."""
    documents = []
    for first, lines in _segments(text.splitlines(keepends=True)):
        begin = next((i for i, line in enumerate(lines) if not _is_head_filler(line)), len(lines))
        end = len(lines)
        while end > begin and _is_tail_filler(lines[end - 1]):
            end -= 1
        while end < len(lines) and not lines[end].strip():
            end += 1  # blank lines may belong to a '|+' block scalar: ruamel keeps them
        doc = Document(first + begin, "".join(lines[:begin]), "".join(lines[begin:end]), "".join(lines[end:]))
        if doc.body:
            try:
                doc.data = _yaml().load(doc.body)
            except YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                if mark is not None:
                    mark.line += doc.start
                raise
        documents.append(doc)
    return documents


def read_source(path: Path) -> SourceFile:
    """Raises ``OSError``, ``UnicodeDecodeError`` or ``YAMLError``."""
    raw = path.read_bytes().decode("utf-8")
    newline = "\r\n" if "\r\n" in raw else "\n"
    source = SourceFile(path, raw.replace("\r\n", "\n"), newline)
    source.documents = parse_documents(source.text)
    source.faithful = rendered_faithfully(source, source.text)
    return source


def _values(text: str) -> list[Any]:
    """Every non-empty document of ``text`` as plain data, parsed as one stream."""
    return [plain(v) for v in _yaml().load_all(text) if v is not None]


def rendered_faithfully(source: SourceFile, text: str) -> bool:
    """Whether ``text``, read as one stream, holds exactly the (edited) documents of ``source``.

    Run on the new text before it is written: the splitting and the dump must change nothing but
    the fixes (a document ending in a ``|+`` block scalar, say, cannot be split off safely).
    """
    try:
        return _values(text) == [plain(d.data) for d in source.documents if d.data is not None]
    except YAMLError:
        return False


# ---- plain values, lines


def plain(value: Any) -> Any:
    """``value`` with ruamel's types turned into dict, list, str, int, float and bool."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool | ScalarBoolean):
        return bool(value)
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def line_of(data: Any, steps: tuple[str | int, ...]) -> int:
    """The 0-based line of the field at ``steps`` in a loaded document, or of its nearest parent."""
    line: int = getattr(getattr(data, "lc", None), "line", None) or 0
    node = data
    for step in steps:
        try:
            if isinstance(node, CommentedMap) and step in node:
                line, node = node.lc.key(step)[0], node[step]
            elif isinstance(node, CommentedSeq) and isinstance(step, int) and step < len(node):
                line, node = node.lc.item(step)[0], node[step]
            else:
                break
        except (KeyError, TypeError):  # no position recorded
            break
    return line


# ---- editing: apply a new plain value onto the loaded structure, keeping comments

_SLOT = {CommentedMap: 2, CommentedSeq: 0}  # where ruamel keeps the comment after an item's value


def _is_block(value: Any) -> bool:
    return isinstance(value, CommentedMap | CommentedSeq) and len(value) > 0 and not value.fa.flow_style()


def _trailing_slot(container: Any, key: Any) -> tuple[Any, Any]:
    """The (container, key) whose comment slot holds the comments that follow ``container[key]``."""
    while _is_block(container[key]):
        container = container[key]
        key = next(reversed(container)) if isinstance(container, CommentedMap) else len(container) - 1
    return container, key


def _take_following(container: Any, key: Any) -> list[str]:
    """Detach the comment lines after ``container[key]`` (not its end-of-line comment) and return them."""
    inner, inner_key = _trailing_slot(container, key)
    slot = _SLOT[type(inner)]
    entry = inner.ca.items.get(inner_key)
    token = entry[slot] if entry else None
    if not isinstance(token, CommentToken):
        return []
    first, _, rest = token.value.partition("\n")
    if not rest:
        return []
    if first:
        token.value = first + "\n"
    else:
        entry[slot] = None
    return rest.split("\n")[:-1]


def _before_tokens(lines: list[str]) -> list[CommentToken]:
    return [
        CommentToken(line.lstrip() + "\n", CommentMark(len(line) - len(line.lstrip())))
        if line.strip()
        else CommentToken("\n", CommentMark(0))
        for line in lines
    ]


def _put_before(container: Any, key: Any, lines: list[str]) -> None:
    if lines:
        entry = container.ca.items.setdefault(key, [None, None, None, None])
        entry[1] = _before_tokens(lines) + (entry[1] or [])


def _put_after(container: Any, key: Any, lines: list[str]) -> None:
    if not lines:
        return
    inner, inner_key = _trailing_slot(container, key)
    slot = _SLOT[type(inner)]
    entry = inner.ca.items.setdefault(inner_key, [None, None, None, None])
    text = "".join(line + "\n" for line in lines)
    if isinstance(entry[slot], CommentToken):
        entry[slot].value += text
    else:
        entry[slot] = CommentToken("\n" + text, CommentMark(0))


def _neighbours(container: Any, key: Any) -> tuple[Any, Any]:
    keys = list(container) if isinstance(container, CommentedMap) else list(range(len(container)))
    at = keys.index(key)
    return (keys[at - 1] if at > 0 else None), (keys[at + 1] if at + 1 < len(keys) else None)


def _take_before(container: Any, key: Any) -> list[str]:
    """Detach the comment lines ruamel keeps in front of ``container[key]`` and return them."""
    entry = container.ca.items.get(key)
    tokens = (entry[1] or []) if entry else []
    if entry:
        entry[1] = None
    return [" " * t.column + t.value.rstrip("\n") if t.value.strip() else "" for t in tokens]


def _eol(container: Any, key: Any) -> CommentToken | None:
    """The token holding the comment at the end of ``container[key]``'s first line."""
    value = container[key]
    if _is_block(value):
        token = value.ca.comment[0] if value.ca.comment else None
    else:
        entry = container.ca.items.get(key)
        token = entry[_SLOT[type(container)]] if entry else None
    return token if isinstance(token, CommentToken) and token.value.startswith("#") else None


def _put_eol(container: Any, key: Any, text: str, column: int) -> None:
    token = CommentToken(text + "\n", CommentMark(column))
    if _is_block(container[key]):
        container[key].ca.comment = [token, None]  # ruamel reads it from here, or from the item's slot
    container.ca.items.setdefault(key, [None, None, None, None])[_SLOT[type(container)]] = token


def _delete(target: CommentedMap, key: Any) -> None:
    # Its own comments go with it; the lines that followed it are about what follows.
    _take_before(target, key)
    lines = _take_following(target, key)
    before, after = _neighbours(target, key)
    del target[key]
    target.ca.items.pop(key, None)
    if after is not None:
        _put_before(target, after, lines)
    elif before is not None:
        _put_after(target, before, lines)


def _fresh(value: Any) -> Any:
    """A new value in ruamel's types: block style, multi-line strings as literal blocks."""
    if isinstance(value, dict):
        return CommentedMap((k, _fresh(v)) for k, v in value.items())
    if isinstance(value, list):
        return CommentedSeq(_fresh(v) for v in value)
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    return value


def _styled(old: Any, new: Any) -> Any:
    # A quoted value stays quoted the same way.
    quoted = isinstance(old, DoubleQuotedScalarString | SingleQuotedScalarString)
    if quoted and isinstance(new, str) and "\n" not in new:
        return type(old)(new)
    return _fresh(new)


def _set(container: Any, key: Any, value: Any) -> None:
    """Replace ``container[key]``; comments that followed a replaced block move on with the next item."""
    previous = container[key]
    lines = _take_following(container, key) if _is_block(previous) else []
    eol = None if _is_block(previous) or _is_block(value) else _eol(container, key)
    container[key] = value
    if eol is not None and isinstance(eol.start_mark, CommentMark | StringMark):
        # Keep the gap before an end-of-line comment when the value grows or shrinks.
        eol.start_mark.column = max(0, eol.start_mark.column + len(str(value)) - len(str(previous)))
    _, after = _neighbours(container, key)
    if after is not None:
        _put_before(container, after, lines)
    else:
        _put_after(container, key, lines)


def _apply(target: Any, new: Any) -> Any:
    """``target`` edited into ``new``, in place when it is a collection; else the value to store."""
    if isinstance(target, CommentedMap) and isinstance(new, dict):
        apply_map(target, new)
        return target
    if isinstance(target, CommentedSeq) and isinstance(new, list) and _apply_seq(target, new):
        return target
    return target if plain(target) == new else _styled(target, new)


def _apply_seq(target: CommentedSeq, new: list[Any]) -> bool:
    """Edit item by item when the lengths match, or insert around the old items; False: replace all."""
    if len(target) == len(new):
        for index, item in enumerate(new):
            value = _apply(target[index], item)
            if value is not target[index]:
                _set(target, index, value)
        return True
    old = plain(target)
    for at in range(len(new) - len(old) + 1):
        if new[at : at + len(old)] == old:
            for offset, item in enumerate(new[:at]):
                target.insert(offset, _fresh(item))
            for item in new[at + len(old) :]:
                target.append(_fresh(item))
            return True
    return False


def apply_map(target: CommentedMap, new: dict[str, Any]) -> None:
    for key in [k for k in target if k in new]:
        value = _apply(target[key], new[key])
        if value is not target[key]:
            _set(target, key, value)
    # A removed key whose place a new key takes, under a kindred name, is renamed (valuesFile ->
    # valuesFiles): it keeps its place and comments. Other removed keys go, new keys are inserted.
    removed: dict[Any, list[Any]] = {}
    anchor = None
    for key in list(target):
        if key in new:
            anchor = key
        else:
            removed.setdefault(anchor, []).append(key)
    anchor, last = None, None
    for key, value in new.items():
        if key in target:
            anchor = last = key
            continue
        renamed = _renamed_from(removed.get(anchor, []), key)
        if renamed is not None:
            removed[anchor].remove(renamed)
            _rename(target, renamed, key, _fresh(value))
        else:
            _insert(target, 0 if last is None else list(target).index(last) + 1, key, _fresh(value))
        last = key
    for keys in removed.values():
        for key in keys:
            _delete(target, key)


def _renamed_from(candidates: list[Any], key: Any) -> Any:
    """The removed key ``key`` replaces: the one sharing the longest stem, at least half the shorter name."""
    best, best_length = None, 0
    for candidate in candidates:
        old, new = str(candidate), str(key)
        length = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new)))
        if length * 2 >= min(len(old), len(new)) and length > best_length:
            best, best_length = candidate, length
    return best


def _rename(target: CommentedMap, old: Any, key: Any, value: Any) -> None:
    """``key: value`` in place of ``old``, with the comments above, on and after ``old``."""
    position = list(target).index(old)
    before = _take_before(target, old)
    following = _take_following(target, old)
    eol = _eol(target, old)
    column = target.lc.key(old)[1] if old in target.lc.data else 0
    del target[old]
    target.ca.items.pop(old, None)
    target.insert(position, key, value)
    _put_before(target, key, before)
    if eol is not None:
        width = len(str(key)) + 1 + (0 if _is_block(value) else 1 + len(str(value)))  # "key:" or "key: value"
        _put_eol(target, key, eol.value.split("\n")[0], column + width + 2)
    _, after = _neighbours(target, key)
    if after is not None:
        _put_before(target, after, following)
    else:
        _put_after(target, key, following)


def _insert(target: CommentedMap, position: int, key: Any, value: Any) -> None:
    # Comment lines after the previous item are about the next one: they stay in front of it.
    keys = list(target)
    lines = _take_following(target, keys[position - 1]) if 0 < position <= len(keys) else []
    target.insert(position, key, value)
    if position + 1 < len(target):
        _put_before(target, list(target)[position + 1], lines)
    elif lines:
        _put_after(target, key, lines)


# ---- writing


def _indentation(body: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) for ``YAML.indent``, guessed from the first nested block of each."""
    mapping: int | None = None
    offset: int | None = None
    previous = None
    for line in body.splitlines():
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        if previous is not None and _KEY_ONLY.match(previous):
            parent = len(previous) - len(previous.lstrip(" -"))
            indent = len(line) - len(stripped)
            if stripped.startswith("- ") or stripped == "-":
                offset = indent - parent if offset is None and indent >= parent else offset
            elif mapping is None and indent > parent:
                mapping = indent - parent
        if mapping is not None and offset is not None:
            break
        previous = line
    mapping = mapping or 2
    offset = offset or 0
    return mapping, max(mapping, offset + 2), offset


def render(source: SourceFile) -> str:
    """The file's new text: changed documents dumped by ruamel, everything else as it was."""
    parts = []
    for doc in source.documents:
        body = doc.body
        if doc.changed:
            yaml = _yaml()
            mapping, sequence, offset = _indentation(doc.body)
            yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
            yaml.explicit_start = doc.body.startswith("---")
            out = io.StringIO()
            yaml.dump(doc.data, out)
            body = out.getvalue()
        parts.append(doc.head + body + doc.tail)
    text = "".join(parts)
    return text if source.text.endswith("\n") or not text.endswith("\n") else text[:-1]
