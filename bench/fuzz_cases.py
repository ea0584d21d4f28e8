"""Seeded malformed and mutated AdmissionReviews for ``bench.fuzz_webhook``: one idea, the cases.

Case ``i`` of seed ``s`` is a pure function of ``(s, i)`` (its own ``random.Random``), so any case a
run reports is re-made alone with :func:`case`. The starting points are the benchmark's realistic
Flux reviews (:mod:`bench.payloads`) and the TENANCY.md reference HelmRelease. The families:

- ``random-bytes``, ``truncated``, ``byte-flip``: not JSON, or broken JSON;
- ``type-swap``: one value (often ``request``, ``object``, ``metadata``, a reference) of another type;
- ``deep``: arrays or objects nested 50 to 50,000 levels, at a field the rules read or anywhere;
- ``huge-string``: one string grown to between 1 KB and 2.5 MB (under the 3 MB body limit);
- ``numbers``: integers of 5,000 digits, ``NaN``, ``Infinity``, ``1e999`` where values go;
- ``unicode``: lone surrogates, NUL, invalid UTF-8 inside strings, a BOM, UTF-16 bodies;
- ``delete``, ``duplicate-key``: a key removed, or set twice;
- ``valid``: a well-formed review with real-world changes (namespaces, service accounts, versions,
  operations, exempt users): it must be answered 200 with an AdmissionReview of the same uid.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from bench import payloads
from tests.support.reviews import admission_review, legacy_helmrelease

ROUTES = payloads.ROUTES
HOLE = "\x00fuzz-hole\x00"  # a string no seed contains: replaced by raw JSON text after dumping
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Case:
    """One request: which family made it, the route, the body, and whether it is a valid review."""

    index: int
    family: str
    route: str
    body: bytes
    valid: bool = False
    uid: str | None = None  # the request uid of a valid case, echoed in the answer


@cache
def seeds() -> tuple[bytes, ...]:
    """The valid reviews every mutation starts from (bodies, parsed afresh per case)."""
    reference = admission_review(legacy_helmrelease(), uid="fuzz-reference")
    return (*(review.body for review in payloads.reviews()), json.dumps(reference).encode())


# Paths the webhook and the rules read: type swaps and deep nesting aim here half of the time.
READ_PATHS: tuple[Path, ...] = (
    (),
    ("apiVersion",),
    ("kind",),
    ("request",),
    ("request", "uid"),
    ("request", "operation"),
    ("request", "namespace"),
    ("request", "dryRun"),
    ("request", "userInfo"),
    ("request", "userInfo", "username"),
    ("request", "userInfo", "groups"),
    ("request", "userInfo", "groups", 0),
    ("request", "object"),
    ("request", "object", "apiVersion"),
    ("request", "object", "kind"),
    ("request", "object", "metadata"),
    ("request", "object", "metadata", "name"),
    ("request", "object", "metadata", "namespace"),
    ("request", "object", "spec"),
    ("request", "object", "spec", "serviceAccountName"),
    ("request", "object", "spec", "sourceRef"),
    ("request", "object", "spec", "sourceRef", "namespace"),
    ("request", "object", "spec", "sourceRef", "name"),
    ("request", "object", "spec", "sourceRef", "kind"),
    ("request", "object", "spec", "chart", "spec", "sourceRef"),
    ("request", "object", "spec", "chart", "spec", "sourceRef", "namespace"),
    ("request", "object", "spec", "chartRef"),
    ("request", "object", "spec", "dependsOn"),
    ("request", "object", "spec", "dependsOn", 0),
    ("request", "object", "spec", "dependsOn", 0, "namespace"),
    ("request", "object", "spec", "eventSources"),
    ("request", "object", "spec", "eventSources", 0, "namespace"),
    ("request", "object", "spec", "kubeConfig"),
)


def _paths(tree: Any) -> list[Path]:
    """Every path of ``tree`` (iterative: the trees are the seeds, not hostile)."""
    found: list[Path] = []
    stack: list[tuple[Path, Any]] = [((), tree)]
    while stack:
        path, node = stack.pop()
        found.append(path)
        if isinstance(node, dict):
            stack.extend(((*path, key), value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend(((*path, index), value) for index, value in enumerate(node))
    return found


def _set(tree: Any, path: Path, value: Any) -> Any:
    """``tree`` with the value at ``path`` set (missing dict keys are added); the root may be replaced."""
    if not path:
        return value
    node = tree
    for step in path[:-1]:
        if isinstance(node, dict) and isinstance(step, str):
            node = node.setdefault(step, {})
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            return tree  # the path runs through a scalar: nothing to set
    last = path[-1]
    settable = isinstance(node, dict) and isinstance(last, str)
    if settable or (isinstance(node, list) and isinstance(last, int) and last < len(node)):
        node[last] = value
    return tree


def _target(rng: random.Random, tree: Any) -> Path:
    return rng.choice(READ_PATHS) if rng.random() < 0.5 else rng.choice(_paths(tree))


def _dump(tree: Any, raw: str | None = None) -> bytes:
    """JSON text of ``tree`` with the ``HOLE`` string replaced by ``raw`` (text ``json`` could not make)."""
    text = json.dumps(tree, separators=(",", ":"))
    if raw is not None:
        text = text.replace(json.dumps(HOLE), raw, 1)
    return text.encode("utf-8", "surrogatepass")


def _scalar(rng: random.Random) -> Any:
    return rng.choice([None, True, False, 0, -1, 2**63, 1.5, "", "x", "flux-system", "../..", "a" * 300])


def _other_type(rng: random.Random, value: Any) -> Any:
    choices: list[Callable[[], Any]] = [
        lambda: None,
        lambda: rng.choice([True, False]),
        lambda: rng.randint(-(2**70), 2**70),
        lambda: rng.random() * 1e6,
        lambda: rng.choice(["", "text", "CREATE", "flux-system", "HelmRelease", "v1"]),
        lambda: [_scalar(rng) for _ in range(rng.randint(0, 3))],
        lambda: {"namespace": _scalar(rng), "name": _scalar(rng), "kind": _scalar(rng)},
        lambda: [[[]]],
        lambda: {},
    ]
    for _ in range(10):
        new = rng.choice(choices)()
        if type(new) is not type(value):
            return new
    return None


def _nested(rng: random.Random, depth: int) -> str:
    shape = rng.choice(("list", "object", "mixed"))
    if shape == "list":
        return "[" * depth + rng.choice(("", "1", '"x"', "{}")) + "]" * depth
    if shape == "object":
        key = rng.choice(("a", "namespace", "spec", ""))
        return f'{{"{key}":' * depth + "null" + "}" * depth
    opens, closes = [], []
    for _ in range(depth):
        if rng.random() < 0.5:
            opens.append("[")
            closes.append("]")
        else:
            opens.append('{"k":')
            closes.append("}")
    return "".join(opens) + "0" + "".join(reversed(closes))


def _huge_string(rng: random.Random) -> str:
    size = int(2 ** rng.uniform(10, 21.2))  # 1 KB .. 2.4 MB, log-uniform
    alphabet = rng.choice(("x", "ab c\n\t", "é漢字🙂", "\\\"'<>&%$ \u2028"))
    return (alphabet * (size // len(alphabet) + 1))[:size]


def _type_swap(rng: random.Random, tree: Any) -> bytes:
    path = _target(rng, tree)
    node: Any = tree
    for step in path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            node = None
            break
    return _dump(_set(tree, path, _other_type(rng, node)))


def _deep(rng: random.Random, tree: Any) -> bytes:
    depth = rng.choice((50, 200, 500, 800, 900, 950, 980, 990, 1000, 1100, 2000, 3500, 10_000, 50_000))
    return _dump(_set(tree, _target(rng, tree), HOLE), _nested(rng, depth))


def _huge(rng: random.Random, tree: Any) -> bytes:
    strings = [p for p in _paths(tree) if p and isinstance(_get(tree, p), str)]
    path = rng.choice(READ_PATHS) if rng.random() < 0.5 or not strings else rng.choice(strings)
    return _dump(_set(tree, path, _huge_string(rng)))


def _get(tree: Any, path: Path) -> Any:
    for step in path:
        tree = tree[step]
    return tree


def _numbers(rng: random.Random, tree: Any) -> bytes:
    raw = rng.choice(("9" * 5000, "-" + "1" * 4400, "NaN", "Infinity", "-Infinity", "1e999", "-0", "1E-400", "0.0"))
    return _dump(_set(tree, _target(rng, tree), HOLE), raw)


def _unicode(rng: random.Random, tree: Any) -> bytes:
    choice = rng.randrange(5)
    if choice == 0:  # a lone surrogate, NUL or line separator in a string the webhook echoes or reads
        raw = json.dumps(rng.choice(("\ud800", "x\udfff", "\x00", "a\u2028b", "\ufeff")))
        return _dump(_set(tree, _target(rng, tree), HOLE), raw)
    if choice == 1:  # invalid UTF-8 inside a string
        body = _dump(tree)
        at = body.index(b'"name":"') + 8 if b'"name":"' in body else len(body) // 2
        return body[:at] + rng.choice((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80")) + body[at:]
    if choice == 2:
        return b"\xef\xbb\xbf" + _dump(tree)
    if choice == 3:
        return json.dumps(tree).encode(rng.choice(("utf-16", "utf-16-le", "utf-32")))
    return _dump(tree).replace(b'"', b"\xe2\x80\x9c", rng.randint(1, 5))  # curly quotes


def _delete(rng: random.Random, tree: Any) -> bytes:
    path = _target(rng, tree)
    if path:
        try:
            parent = _get(tree, path[:-1])
            del parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            pass
    return _dump(tree)


def _duplicate_key(rng: random.Random, tree: Any) -> bytes:
    body = _dump(tree)
    key = rng.choice((b"kind", b"apiVersion", b"request", b"object", b"uid", b"namespace", b"metadata"))
    value = rng.choice((b'"x"', b"null", b"[]", b"{}", b"42"))
    at = body.find(b'"' + key + b'":')
    if at < 0:
        at = 1
    return body[:at] + b'"' + key + b'":' + value + b"," + body[at:]


def _valid(rng: random.Random, tree: Any) -> tuple[bytes, str]:
    """A review the API server could send, with changes the rules care about."""
    request = tree["request"]
    obj = request.get("object") or request.get("oldObject")
    request["object"] = obj
    own = request.get("namespace") or "default"
    for _ in range(rng.randint(1, 4)):
        what = rng.randrange(7)
        if what == 0:
            request["operation"] = rng.choice(("CREATE", "UPDATE", "DELETE", "CONNECT"))
        elif what == 1:
            obj.setdefault("spec", {})["serviceAccountName"] = rng.choice(("", "flux-applier", "admin", "default"))
        elif what == 2:
            group = obj["apiVersion"].rpartition("/")[0]
            obj["apiVersion"] = f"{group}/{rng.choice(('v1', 'v1beta1', 'v1beta2', 'v2', 'v2beta1', 'v1beta3'))}"
        elif what == 3:
            for path in (("spec", "sourceRef"), ("spec", "chart", "spec", "sourceRef")):
                ref = _lookup(obj, path)
                if isinstance(ref, dict):
                    ref["namespace"] = rng.choice((own, "flux-system", "other", ""))
        elif what == 4:
            request["userInfo"]["username"] = rng.choice(("alice", "system:serviceaccount:flux-system:kc", ""))
            request["userInfo"]["groups"] = rng.choice(([], ["system:masters"], ["system:authenticated"]))
        elif what == 5:
            request["namespace"] = obj.setdefault("metadata", {})["namespace"] = rng.choice(
                (own, "flux-system", "team-z")
            )
        else:
            obj["spec"] = {**obj.get("spec", {}), "kubeConfig": {"secretRef": {"name": "remote"}}}
    uid = f"fuzz-{rng.getrandbits(64):016x}"
    request["uid"] = uid
    return _dump(tree), uid


def _lookup(tree: Any, path: Path) -> Any:
    try:
        return _get(tree, path)
    except (KeyError, IndexError, TypeError):
        return None


Mutation = Callable[[random.Random, Any], bytes]
FAMILIES: dict[str, tuple[float, Mutation | None]] = {
    "random-bytes": (6, None),
    "truncated": (8, None),
    "byte-flip": (10, None),
    "type-swap": (22, _type_swap),
    "deep": (10, _deep),
    "huge-string": (2, _huge),
    "numbers": (5, _numbers),
    "unicode": (6, _unicode),
    "delete": (8, _delete),
    "duplicate-key": (3, _duplicate_key),
    "valid": (20, None),
}
_NAMES = tuple(FAMILIES)
_WEIGHTS = tuple(weight for weight, _ in FAMILIES.values())


def case(seed: int, index: int) -> Case:
    """Case ``index`` of the run with ``seed``."""
    rng = random.Random(seed * 1_000_003 + index)
    family = rng.choices(_NAMES, _WEIGHTS)[0]
    route = rng.choice(ROUTES)
    base = rng.choice(seeds())
    if family == "random-bytes":
        prefix = rng.choice((b"", b"{", b'{"apiVersion":"admission.k8s.io/v1",'))
        return Case(index, family, route, prefix + rng.randbytes(rng.randint(0, 4096)))
    if family == "truncated":
        return Case(index, family, route, base[: rng.randrange(1, len(base))])
    if family == "byte-flip":
        flipped = bytearray(base)
        for _ in range(rng.randint(1, 12)):
            flipped[rng.randrange(len(flipped))] = rng.choice((rng.randrange(256), *b'{}[]",:\\0-e'))
        return Case(index, family, route, bytes(flipped))
    tree = json.loads(base)
    if family == "valid":
        body, uid = _valid(rng, tree)
        return Case(index, family, route, body, valid=True, uid=uid)
    mutation = FAMILIES[family][1]
    assert mutation is not None
    return Case(index, family, route, mutation(rng, tree))


def cases(seed: int, count: int, start: int = 0) -> Iterator[Case]:
    for index in range(start, start + count):
        yield case(seed, index)
