"""A Receiver's ``spec.resources[]``: what stalls it, what the server annotates, the timestamp format."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from fluxwarden.controllers.notification.receiver import RECEIVER_UNSUPPORTED
from fluxwarden.controllers.notification.receiver_targets import problem, rfc3339_nano, targets
from fluxwarden.controllers.runtime.unsupported import find


def receiver(*resources: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "notification.toolkit.fluxcd.io/v1",
        "kind": "Receiver",
        "metadata": {"name": "hook", "namespace": "team-a"},
        "spec": {"type": "github", "secretRef": {"name": "token"}, "resources": list(resources), **spec},
    }


GIT = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "name": "app"}


def test_an_entry_in_another_namespace_stalls_and_is_never_a_target() -> None:
    obj = receiver(GIT, {**GIT, "name": "theirs", "namespace": "team-b"})
    reason, message = problem(obj) or ("", "")
    assert reason == "AccessDenied"
    assert message.startswith("spec.resources[1] names GitRepository team-b/theirs: a Receiver never reaches")
    assert [t.describe() for t in targets(obj)] == ["GitRepository team-a/app"]


def test_its_own_namespace_spelt_out_is_fine() -> None:
    obj = receiver({**GIT, "namespace": "team-a"})
    assert problem(obj) is None
    assert [t.namespace for t in targets(obj)] == ["team-a"]


def test_defaults_of_flux_for_a_missing_api_version() -> None:
    obj = receiver({"kind": "GitRepository", "name": "app"}, {"kind": "OCIRepository", "name": "oci"})
    assert problem(obj) is None
    assert [t.api_version for t in targets(obj)] == ["source.toolkit.fluxcd.io/v1"] * 2


def test_a_kind_without_a_default_needs_an_api_version() -> None:
    obj = receiver({"kind": "Kustomization", "name": "apps"})
    assert problem(obj) == (
        "InvalidSpec",
        "spec.resources[0].apiVersion is required for kind Kustomization; set it (e.g. the kind's v1)",
    )
    assert targets(obj) == []


def test_a_wildcard_selects_by_labels_and_needs_them() -> None:
    assert problem(receiver({**GIT, "name": "*"}))[0] == "InvalidSpec"  # type: ignore[index]
    found = targets(receiver({**GIT, "name": "*", "matchLabels": {"tier": "web", "app": "shop"}}))
    assert [t.selector() for t in found] == ["app=shop,tier=web"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"type": "harbor"}, "spec.type 'harbor' is not supported by fluxwarden yet; use one of generic,"),
        ({"resourceFilter": "true"}, "spec.resourceFilter is not supported by fluxwarden yet"),
        ({"type": "generic-oidc", "oidcProviders": [{"issuerURL": "https://x"}]}, "spec.type 'generic-oidc'"),
    ],
)
def test_what_fluxwarden_does_not_serve_is_named(spec: dict[str, Any], message: str) -> None:
    found = find(receiver(GIT, **spec), RECEIVER_UNSUPPORTED)
    assert found is not None and found.message.startswith(message)


def test_a_per_resource_filter_is_named_with_its_index() -> None:
    found = find(receiver(GIT, {**GIT, "filter": "true"}), RECEIVER_UNSUPPORTED)
    assert found is not None and found.where == "spec.resources[1].filter"
    assert find(receiver(GIT), RECEIVER_UNSUPPORTED) is None


def test_rfc3339_nano_trims_trailing_zeros_like_go() -> None:
    base = int(datetime.datetime(2026, 12, 1, 18, 30, 5, tzinfo=datetime.UTC).timestamp()) * 1_000_000_000
    assert rfc3339_nano(base) == "2026-12-01T18:30:05Z"
    assert rfc3339_nano(base + 500_000_000) == "2026-12-01T18:30:05.5Z"
    assert rfc3339_nano(base + 123_456_789) == "2026-12-01T18:30:05.123456789Z"
    assert rfc3339_nano(base + 1_000) == "2026-12-01T18:30:05.000001Z"
