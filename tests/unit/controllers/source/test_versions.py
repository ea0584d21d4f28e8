"""Semver selection with Masterminds' constraint rules, table-driven."""

from __future__ import annotations

import pytest

from fluxwarden.controllers.source.versions import Constraint, best_match, parse_version

TAGS = [
    "v0.0.3",
    "v0.2.3",
    "v0.2.9",
    "v0.3.0",
    "v1.0.0",
    "v1.1.0",
    "v1.2.0",
    "v1.2.3",
    "v1.2.9",
    "v1.3.0",
    "v1.4.0",
    "v1.5.0-rc.1",
    "v2.0.0-rc.1",
    "v2.0.0",
    "v3.0.0",
    "latest",
    "release-2",
    "v4",  # Masterminds reads it as 4.0.0
]


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        (">=1.0.0 <2.0.0", "v1.4.0"),
        (">=1.0.0, <2.0.0", "v1.4.0"),
        ("~1.2", "v1.2.9"),
        ("~1.2.3", "v1.2.9"),
        ("~>1.2", "v1.2.9"),
        ("~1", "v1.4.0"),
        ("^1.2.3", "v1.4.0"),
        ("^0.2.3", "v0.2.9"),
        ("^0.0.3", "v0.0.3"),
        ("^0", "v0.3.0"),
        ("^0.0", "v0.0.3"),
        ("1.x", "v1.4.0"),
        ("1.2.x", "v1.2.9"),
        ("1.2.*", "v1.2.9"),
        ("*", "v4"),
        ("x", "v4"),
        (">= 1.2, < 1.4", "v1.3.0"),
        ("1.0.0 - 1.2.0", "v1.2.0"),
        ("1.0 - 1.2", "v1.2.9"),  # the upper end is <= 1.2.x
        ("1.2", "v1.2.9"),
        ("=1.2.3", "v1.2.3"),
        ("1.2.3", "v1.2.3"),
        ("v1.2.3", "v1.2.3"),
        (">=v1.0.0 <v1.2.0", "v1.1.0"),
        (">1.2", "v4"),
        (">1.2 <2", "v1.4.0"),
        ("<=1.2", "v1.2.9"),
        ("<1.2", "v1.1.0"),
        ("=>1.0, =<1.1", "v1.1.0"),
        ("!=1.4.0, ~1", "v1.3.0"),
        ("<0.2 || 1.2.x", "v1.2.9"),
        ("~1.2 || ~3", "v3.0.0"),
        (">=5.0.0", None),
        # prereleases: only when the clause itself names one
        (">=1.0.0", "v4"),
        ("~1.5", None),
        ("1.5.0-rc.1", "v1.5.0-rc.1"),
        (">=1.5.0-0 <1.6.0-0", "v1.5.0-rc.1"),
        (">=1.5.0-0 <2.0.0", None),  # per clause: "<2.0.0" names no prerelease, so 1.5.0-rc.1 fails it
        (">=1.4.1-0 <2.0.0 || 1.4.0", "v1.4.0"),
    ],
)
def test_best_match(constraint: str, expected: str | None) -> None:
    assert best_match(constraint, TAGS) == expected


def test_prerelease_wins_only_when_asked_and_highest() -> None:
    tags = ["1.0.0", "1.1.0-beta.1", "1.1.0-beta.2", "1.1.0-alpha.9"]
    assert best_match(">=1.0.0", tags) == "1.0.0"
    assert best_match(">=1.0.0-0", tags) == "1.1.0-beta.2"
    assert best_match("1.1.0-beta.1", tags) == "1.1.0-beta.1"


def test_returns_the_original_string_and_is_order_independent() -> None:
    tags = ["1.2.3", "v1.2.3", "v1.2.3+build.7", "v1.2.2"]
    first = best_match("^1", tags)
    assert first in {"1.2.3", "v1.2.3", "v1.2.3+build.7"}
    assert best_match("^1", list(reversed(tags))) == first


def test_non_semver_candidates_are_ignored() -> None:
    assert best_match("*", ["main", "latest", "v1.2.3.4", "1.0.0-01", "", "2023-01-01"]) is None
    assert best_match("*", ["main", "v0.1"]) == "v0.1"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("v1.2.3", "1.2.3"), ("1.2", "1.2.0"), ("v1", "1.0.0"), ("1.0.0-rc.1+b", "1.0.0-rc.1+b"), ("x1", None)],
)
def test_parse_version(text: str, parsed: str | None) -> None:
    version = parse_version(text)
    assert (str(version) if version else None) == parsed


@pytest.mark.parametrize(
    "constraint",
    ["", "   ", "latest", ">=1.0.0,", "1.0.0 ||", ">=1.0.0<2.0.0", "1.2.3.4", ">>1", "~1.2.3-01", "1.0.0 -", "^"],
)
def test_invalid_constraints(constraint: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid semver constraint ") as caught:
        best_match(constraint, TAGS)
    assert repr(constraint) in str(caught.value)


def test_constraint_parse_is_reusable() -> None:
    c = Constraint.parse("^1.2")
    assert [str(v) for v in map(parse_version, ["1.1.0", "1.2.0", "1.9.9", "2.0.0"]) if v and c.allows(v)] == [
        "1.2.0",
        "1.9.9",
    ]
