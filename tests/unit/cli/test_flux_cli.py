"""What ``reconcile --with-source`` picks and what ``get`` shows as REVISION, as the flux CLI does."""

from __future__ import annotations

from typing import Any

import pytest

from fluxwarden.cli.flux import _source_of
from fluxwarden.cli.objects import revision_of


def _hr(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "HelmRelease", "metadata": {"namespace": "apps", "name": "web"}, "spec": spec,
            "status": status or {}}  # fmt: skip


TEMPLATE = {"chart": {"spec": {"chart": "web", "sourceRef": {"kind": "HelmRepository", "name": "charts"}}}}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_hr(TEMPLATE), ("HelmChart", "apps", "apps-web")),  # flux's <ns>-<name>, in the source's namespace
        (_hr(TEMPLATE, {"helmChart": "apps/recorded"}), ("HelmChart", "apps", "recorded")),  # what the controller made
        (_hr({"chartRef": {"kind": "HelmChart", "name": "shared"}}), ("HelmChart", "apps", "shared")),
        (_hr({"chartRef": {"kind": "OCIRepository", "name": "app", "namespace": "apps"}}),
         ("OCIRepository", "apps", "app")),
        (
            {"kind": "HelmChart", "metadata": {"namespace": "apps", "name": "c"},
             "spec": {"sourceRef": {"kind": "HelmRepository", "name": "charts"}}},
            ("HelmRepository", "apps", "charts"),
        ),
        (
            {"kind": "Kustomization", "metadata": {"namespace": "apps", "name": "k"},
             "spec": {"sourceRef": {"kind": "GitRepository", "name": "repo", "namespace": "apps"}}},
            ("GitRepository", "apps", "repo"),
        ),
    ],
)  # fmt: skip
def test_with_source_reconciles_what_flux_reconciles(obj: dict[str, Any], expected: tuple[str, str, str]) -> None:
    assert _source_of(obj) == expected


def test_helmrelease_revision_is_the_latest_chart_version_else_the_attempted_one() -> None:
    assert revision_of(_hr(TEMPLATE, {"history": [{"chartVersion": "2.0.0"}, {"chartVersion": "1.0.0"}],
                                      "lastAttemptedRevision": "3.0.0"})) == "2.0.0"  # fmt: skip
    assert revision_of(_hr(TEMPLATE, {"lastAttemptedRevision": "3.0.0"})) == "3.0.0"
    assert revision_of(_hr(TEMPLATE)) == ""
    source = {"kind": "GitRepository", "metadata": {}, "status": {"artifact": {"revision": "main@sha1:abc"}}}
    assert revision_of(source) == "main@sha1:abc"
