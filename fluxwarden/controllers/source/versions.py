"""Semver selection for Flux: the highest tag or chart version that satisfies a constraint.

Owns the constraint language of ``GitRepository.spec.ref.semver`` and ``HelmChart.spec.version``.
Called by the source reconcilers (``best_match``). Pure: no I/O.

Flux evaluates these with Masterminds/semver (v3), whose rules differ from both npm's and
``semantic_version.SimpleSpec``'s (``^0``, ``1.x``, space-separated ANDs, ``~>``, prereleases), so
the clauses are parsed and checked here, with the same meanings; ``semantic_version.Version``
supplies parsing and semver 2.0 precedence. The language:

- ``||`` separates alternatives; inside one, clauses separated by commas or spaces must all hold;
- ``A - B`` is ``>= A, <= B``;
- operators ``=`` (or none), ``!=``, ``>``, ``<``, ``>=`` (``=>``), ``<=`` (``=<``), ``~`` (``~>``), ``^``;
- versions may start with ``v`` and may be partial or wildcarded (``1``, ``1.2``, ``1.x``, ``1.2.*``, ``*``):
  ``1.2.x`` and ``~1.2`` mean ``>=1.2.0 <1.3.0``; ``^1.2.3`` means ``>=1.2.3 <2.0.0``, ``^0.2.3``
  ``>=0.2.3 <0.3.0``, ``^0.0.3`` ``>=0.0.3 <0.0.4``;
- a prerelease version satisfies a clause only if that clause's version has a prerelease itself,
  so ``>=1.0.0`` never picks ``1.1.0-rc.1`` while ``>=1.0.0-0`` does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from semantic_version import Version  # type: ignore[import-untyped, unused-ignore]

_PART = r"(?:\d+|[xX*])"
_PRE = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_VERSION = rf"v?{_PART}(?:\.{_PART})?(?:\.{_PART})?(?:-{_PRE})?(?:\+{_PRE})?"
_OPERATORS = ("!=", ">=", "=>", "<=", "=<", "~>", "=", ">", "<", "~", "^")
_OP = "|".join(re.escape(op) for op in _OPERATORS)
_CLAUSE = re.compile(rf"\s*({_OP})?\s*({_VERSION})\s*")
_HYPHEN_RANGE = re.compile(rf"(?<![\w.+-])({_VERSION})\s+-\s+({_VERSION})(?![\w.+-])")
_CLAUSE_PARTS = re.compile(rf"v?({_PART})(?:\.({_PART}))?(?:\.({_PART}))?(?:-({_PRE}))?(?:\+({_PRE}))?")
_CANDIDATE = re.compile(rf"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-({_PRE}))?(?:\+({_PRE}))?")


@dataclass(frozen=True)
class Clause:
    """One comparison, e.g. ``>=1.2`` or ``~1.x``, with Masterminds' notion of wildcard positions."""

    op: str
    version: Version
    major_wild: bool = False
    minor_wild: bool = False
    patch_wild: bool = False

    @property
    def wild(self) -> bool:
        return self.major_wild or self.minor_wild or self.patch_wild

    def allows(self, v: Version) -> bool:
        if v.prerelease and not self.version.prerelease and not (self.op == "!=" and not self.wild):
            return False  # prereleases only when the clause asks for them
        return _CHECKS[self.op](self, v)


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint: alternatives (OR) of clause lists (AND)."""

    text: str
    alternatives: tuple[tuple[Clause, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Constraint:
        """Parse a Masterminds-style constraint; ValueError with the reason when it is not one."""
        if not text or not text.strip():
            raise ValueError(f"invalid semver constraint {text!r}: it is empty")
        rewritten = _HYPHEN_RANGE.sub(r">= \1, <= \2", text)
        alternatives = []
        for alternative in rewritten.split("||"):
            alternatives.append(_parse_and(alternative, text))
        return cls(text, tuple(alternatives))

    def allows(self, v: Version) -> bool:
        return any(all(c.allows(v) for c in clauses) for clauses in self.alternatives)


def parse_version(text: str) -> Version | None:
    """A tag or chart version as semver (``v`` prefix and missing minor/patch allowed), or None."""
    m = _CANDIDATE.fullmatch(text.strip())
    if not m:
        return None
    major, minor, patch, pre, build = m.groups()
    core = f"{int(major)}.{int(minor or 0)}.{int(patch or 0)}"
    try:
        return Version(core + (f"-{pre}" if pre else "") + (f"+{build}" if build else ""))
    except ValueError:
        return None  # e.g. a numeric prerelease identifier with a leading zero


def best_match(constraint: str, candidates: Iterable[str]) -> str | None:
    """The candidate string (as given, e.g. ``v1.2.3``) of the highest version satisfying ``constraint``.

    Candidates that are not semver are ignored; None when nothing matches. Among candidates of equal
    precedence (``v1.2.3`` and ``1.2.3``, or different build metadata) the greatest string wins, so
    the answer does not depend on the order of ``candidates``.
    """
    parsed = Constraint.parse(constraint)
    best: tuple[Version, str] | None = None
    for candidate in candidates:
        version = parse_version(candidate)
        if version is None or not parsed.allows(version):
            continue
        if best is None or _precedes(best, (version, candidate)):
            best = (version, candidate)
    return best[1] if best else None


def _precedes(a: tuple[Version, str], b: tuple[Version, str]) -> bool:
    # semantic_version orders build metadata too; semver precedence ignores it, so compare without.
    ka, kb = _without_build(a[0]), _without_build(b[0])
    return ka < kb or (ka == kb and a[1] < b[1])


def _without_build(v: Version) -> Version:
    return Version(major=v.major, minor=v.minor, patch=v.patch, prerelease=v.prerelease)


def _parse_and(alternative: str, original: str) -> tuple[Clause, ...]:
    """Clauses separated by a comma or by whitespace; anything else is an error."""
    clauses = []
    text = alternative.strip()
    pos = 0
    while True:
        m = _CLAUSE.match(text, pos)
        if not m:
            rest = text[pos:].strip() or "nothing"
            raise ValueError(f"invalid semver constraint {original!r}: expected a version, found {rest!r}")
        clauses.append(_clause(m.group(1) or "=", m.group(2), original))
        pos = m.end()
        if pos == len(text):
            return tuple(clauses)
        if text[pos] == ",":
            pos += 1
        elif not text[pos - 1].isspace():
            raise ValueError(f"invalid semver constraint {original!r}: cannot parse {text[pos:].strip()!r}")


def _clause(op: str, version_text: str, original: str) -> Clause:
    m = _CLAUSE_PARTS.fullmatch(version_text)
    if not m:
        raise ValueError(f"invalid semver constraint {original!r}: bad version {version_text!r}")
    major, minor, patch, pre, build = m.groups()
    op = {"=>": ">=", "=<": "<=", "~>": "~"}.get(op, op)

    def wild(part: str | None) -> bool:
        return part is None or part in ("x", "X", "*")

    major_wild = wild(major)
    minor_wild = not major_wild and wild(minor)
    patch_wild = not major_wild and not minor_wild and wild(patch)
    numbers = [0 if major_wild else int(major), 0, 0]
    if not major_wild and not minor_wild:
        numbers[1] = int(minor)
    if not (major_wild or minor_wild or patch_wild):
        numbers[2] = int(patch)
    text = ".".join(map(str, numbers)) + (f"-{pre}" if pre else "") + (f"+{build}" if build else "")
    try:
        version = Version(text)
    except ValueError as err:
        raise ValueError(f"invalid semver constraint {original!r}: bad version {version_text!r}") from err
    return Clause(op, version, major_wild, minor_wild, patch_wild)


def _eq(c: Clause, v: Version) -> bool:
    return _tilde(c, v) if c.wild else _cmp(v, c.version) == 0


def _ne(c: Clause, v: Version) -> bool:
    if not c.wild:
        return _cmp(v, c.version) != 0
    return not _tilde(c, v)


def _gt(c: Clause, v: Version) -> bool:
    (vmaj, vmin, _), (cmaj, cmin, _) = _nums(v), _nums(c.version)
    if c.major_wild:
        return False  # nothing is above every version
    if c.minor_wild:
        return vmaj > cmaj  # >1.x: 2.0.0 and up
    if c.patch_wild:
        return (vmaj, vmin) > (cmaj, cmin)  # >1.2: 1.3.0 and up
    return _cmp(v, c.version) > 0


def _lt(c: Clause, v: Version) -> bool:
    if c.major_wild:
        return False
    return _cmp(v, c.version) < 0


def _ge(c: Clause, v: Version) -> bool:
    return _cmp(v, c.version) >= 0


def _le(c: Clause, v: Version) -> bool:
    (vmaj, vmin, _), (cmaj, cmin, _) = _nums(v), _nums(c.version)
    if c.major_wild:
        return True  # <=*: anything
    if c.minor_wild:
        return vmaj <= cmaj  # <=1.x: up to the last 1.y.z
    if c.patch_wild:
        return (vmaj, vmin) <= (cmaj, cmin)  # <=1.2: up to the last 1.2.z
    return _cmp(v, c.version) <= 0


def _tilde(c: Clause, v: Version) -> bool:
    # ~1.2.3 and ~1.2: same major.minor; ~1 and ~1.x: same major; ~* and ~0.0.0: anything.
    (vmaj, vmin, _), (cmaj, cmin, cpat) = _nums(v), _nums(c.version)
    if _cmp(v, c.version) < 0:
        return False
    if c.major_wild or (cmaj == cmin == cpat == 0 and not c.wild):
        return True
    if vmaj != cmaj:
        return False
    return c.minor_wild or vmin == cmin


def _caret(c: Clause, v: Version) -> bool:
    # ^1.2.3: same major; ^0.2.3 and ^0.2: same 0.minor; ^0.0.3: exactly 0.0.3; ^0 and ^0.x: 0.y.z; ^0.0: 0.0.z.
    (vmaj, vmin, vpat), (cmaj, cmin, cpat) = _nums(v), _nums(c.version)
    if _cmp(v, c.version) < 0:
        return False
    if c.major_wild:
        return True
    if cmaj > 0 or c.minor_wild:
        return vmaj == cmaj
    if vmaj > 0:
        return False
    if cmin > 0 or c.patch_wild:
        return vmin == cmin
    return vmin == 0 and vpat == cpat


def _nums(v: Version) -> tuple[int, int, int]:
    return int(v.major), int(v.minor), int(v.patch)


def _cmp(a: Version, b: Version) -> int:
    """Semver precedence: -1, 0 or 1, build metadata ignored."""
    ka, kb = _without_build(a), _without_build(b)
    return int(ka > kb) - int(ka < kb)


_CHECKS: dict[str, Callable[[Clause, Version], bool]] = {
    "=": _eq,
    "!=": _ne,
    ">": _gt,
    "<": _lt,
    ">=": _ge,
    "<=": _le,
    "~": _tilde,
    "^": _caret,
}
