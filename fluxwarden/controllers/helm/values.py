"""A HelmRelease's values: ``valuesFrom`` in order, inline ``values`` on top, and their config digest.

Flux's order and quirks are kept: a ``targetPath`` entry is set in ``--set`` syntax (typed as helm
types ``--set`` values, quotes making a string) after merging the inline values so far, and
``optional`` tolerates a missing object or key. Secret-sourced values are returned for redaction.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from fluxwarden.controllers.runtime.kube import Kube, KubeError, NotFound
from fluxwarden.controllers.runtime.values import merge_values

DEFAULT_KEY = "values.yaml"
MAX_INDEX = 65536  # helm's own bound on a --set list index


class ValuesError(Exception):
    """A values reference could not be resolved; the message is Flux's ``could not resolve ...``."""


@dataclass
class Values:
    merged: dict[str, Any]
    secrets: list[str] = field(default_factory=list)  # values read from Secrets: masked in every message

    @property
    def digest(self) -> str:
        return config_digest(self.merged)


class ValuesLoader(yaml.SafeLoader):
    """YAML as helm reads values (go-yaml, YAML 1.2-like): no timestamps, no base-60 numbers."""


ValuesLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:int")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ValuesLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
ValuesLoader.add_implicit_resolver(  # go-yaml reads 1e3 as a float; PyYAML's YAML 1.1 needs a dot
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def load_values(text: str) -> Any:
    return yaml.load(text, Loader=ValuesLoader)


def _canonical(value: Any) -> Any:
    """Numbers as helm's JSON record holds them: an integral float is an integer (``2.0`` is ``2``)."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def config_digest(values: dict[str, Any] | None) -> str:
    """``sha256:<hex>`` of the values in a canonical form (sorted keys), equal for equal values."""
    canonical = json.dumps(_canonical(values or {}), sort_keys=True, separators=(",", ":"), default=str).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def _leaves(value: Any) -> list[str]:
    """Every string and number inside ``value``: what a message could echo from a Secret's values."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [str(value)] if isinstance(value, (str, int, float)) and not isinstance(value, bool) else []


def _describe(ref: dict[str, Any], namespace: str, reason: str) -> str:
    optional = " optional" if ref.get("optional") else ""
    key = ref.get("valuesKey") or DEFAULT_KEY
    return (
        f"could not resolve{optional} {ref.get('kind')} chart values reference "
        f"'{namespace}/{ref.get('name')}' with key '{key}': {reason}"
    )


def compose(kube: Kube, namespace: str, inline: dict[str, Any] | None, refs: list[dict[str, Any]]) -> Values:
    """Resolve ``refs`` (``spec.valuesFrom``) in ``namespace`` and merge them with ``inline``."""
    inline = copy.deepcopy(inline or {})
    result: dict[str, Any] = {}
    secrets: list[str] = []
    for ref in refs:
        kind, name = ref.get("kind"), str(ref.get("name") or "")
        key = str(ref.get("valuesKey") or DEFAULT_KEY)
        try:
            if kind == "Secret":
                data = {k: v.decode("utf-8", "replace") for k, v in kube.secret_data(namespace, name).items()}
            elif kind == "ConfigMap":
                data = kube.config_map_data(namespace, name)
            else:
                raise ValuesError(_describe(ref, namespace, "unsupported values reference kind"))
        except NotFound:
            if ref.get("optional"):
                continue
            raise ValuesError(_describe(ref, namespace, "resource not found")) from None
        except KubeError as exc:  # forbidden, or the API failing: Flux's ValuesError, naming the object
            raise ValuesError(_describe(ref, namespace, str(exc))) from None
        if key not in data:
            if ref.get("optional"):
                continue
            raise ValuesError(_describe(ref, namespace, "key not found"))
        text = data[key]
        if kind == "Secret":
            secrets.append(text)
            with contextlib.suppress(yaml.YAMLError):
                secrets.extend(_leaves(load_values(text)) if not ref.get("targetPath") else [])
        if ref.get("targetPath"):
            result = merge_values(result, inline)
            try:
                set_path(result, str(ref["targetPath"]), text)
            except ValueError as exc:
                raise ValuesError(_describe(ref, namespace, f"failed to merge value: {exc}")) from None
            continue
        try:
            parsed = load_values(text) if text.strip() else {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ValuesError(_describe(ref, namespace, f"failed to read values data: invalid YAML{where}")) from None
        if not isinstance(parsed, dict):
            raise ValuesError(_describe(ref, namespace, "failed to read values data: not a map of values"))
        result = merge_values(result, parsed)
    return Values(merge_values(result, inline), secrets)


# -- ``--set`` paths (helm's strvals) ------------------------------------------------------------------

_INDEX = re.compile(r"^(.*)\[(\d+)\]$")


def _keys(path: str) -> list[str]:
    """Split ``a.b\\.c[0].d`` at unescaped dots; ``\\`` escapes the next character."""
    keys, current, escaped = [], "", False
    for char in path:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            keys.append(current)
            current = ""
        else:
            current += char
    keys.append(current)
    if any(k == "" for k in keys):
        raise ValueError(f"targetPath '{path}' has an empty key")
    return keys


def _typed(value: str) -> Any:
    """``--set`` typing: true/false, null, base-10 integers; anything else (or quoted) is a string."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    if value in ("true", "false"):
        return value == "true"
    if value == "null":
        return None
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", value):
        return int(value)
    if value.startswith("{") and value.endswith("}"):
        return [_typed(v) for v in value[1:-1].split(",")] if value[1:-1] else []
    return value


def set_path(values: dict[str, Any], path: str, raw: str) -> None:
    """Set ``path`` (``--set`` syntax: dots, ``[i]`` list indices) in ``values`` to the typed ``raw``."""
    keys = _keys(path)
    node: Any = values
    for position, key in enumerate(keys):
        last = position == len(keys) - 1
        indices: list[int] = []
        while match := _INDEX.match(key):
            key, index = match.group(1), int(match.group(2))
            indices.insert(0, index)
        if "[" in key or "]" in key:
            raise ValueError(f"targetPath '{path}' has a malformed list index in '{key}'")
        if any(i > MAX_INDEX for i in indices):
            raise ValueError(f"targetPath '{path}' has a list index above {MAX_INDEX}")
        if not key:
            raise ValueError(f"targetPath '{path}' has a list index without a key")
        if not isinstance(node, dict):
            raise ValueError(f"targetPath '{path}': '{key}' is not inside a map")
        if not indices:
            if last:
                node[key] = _typed(raw)
            else:
                child = node.get(key)
                if not isinstance(child, dict):  # helm replaces a scalar on the way with a map
                    child = node[key] = {}
                node = child
            continue
        holder: Any = node
        slot: Any = key
        for depth, index in enumerate(indices):
            current = holder.get(slot) if isinstance(holder, dict) else holder[slot]
            if not isinstance(current, list):
                current = []
            current.extend([None] * (index + 1 - len(current)))
            holder[slot] = current
            deepest = depth == len(indices) - 1
            if deepest and last:
                current[index] = _typed(raw)
            elif deepest:
                if not isinstance(current[index], dict):
                    current[index] = {}
                node = current[index]
            holder, slot = current, index
