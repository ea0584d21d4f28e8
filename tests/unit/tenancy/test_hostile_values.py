"""The rules on values no API server sends but a hostile review can: containers, nested deep, where names go."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from fluxwarden.tenancy import Settings, evaluate, mutate, text
from tests.support.reviews import legacy_helmrelease


def nested(depth: int) -> list[Any]:
    """A list nested ``depth`` levels, built without recursion (printing it would recurse)."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


DEEP = sys.getrecursionlimit() * 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [("name", "name"), (7, "7"), (True, "True"), (None, "None"), ({"a": 1}, "<object>"), (nested(DEEP), "<list>")],
)
def test_text_never_prints_a_container(value: Any, expected: str) -> None:
    assert text(value) == expected


@pytest.mark.parametrize(
    "path",
    [
        ("kind",),
        ("apiVersion",),
        ("metadata", "name"),
        ("metadata", "namespace"),
        ("spec", "serviceAccountName"),
        ("spec", "chart", "spec", "sourceRef", "namespace"),
        ("spec", "chart", "spec", "sourceRef", "name"),
        ("spec", "chart", "spec", "sourceRef", "kind"),
    ],
)
def test_a_deep_container_where_a_name_goes_is_judged_without_recursion(path: tuple[str, ...]) -> None:
    release = legacy_helmrelease()
    target = release
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = nested(DEEP)
    findings = evaluate(release, Settings())
    patch = mutate(release, Settings(mode="fix"))
    for message in [f.message for f in findings] + patch.warnings:
        assert len(message) < 256 and "[[" not in message


def test_a_deep_reference_namespace_is_denied_and_named_by_type() -> None:
    release = legacy_helmrelease(source_namespace="nginx")
    release["spec"]["chart"]["spec"]["sourceRef"]["namespace"] = nested(DEEP)
    release["spec"]["serviceAccountName"] = {"name": "admin"}
    messages = sorted(f.message for f in evaluate(release, Settings()) if f.denies)
    assert messages[0].startswith("cross-namespace-ref: HelmRelease nginx/nginx: spec.chart.spec.sourceRef points to")
    assert "HelmRepository <list>/bitnami" in messages[0]
    assert "spec.serviceAccountName is '<object>'" in messages[1]
