"""The mutating webhook makes a FluxConfig's spec.namespace explicit, whatever the tenancy settings."""

from __future__ import annotations

import pytest

from fluxwarden.tenancy import Requester, Settings, mutate
from tests.support.fluxconfig_admission import changed, fluxconfig, git

WARNING = "fluxconfig: set spec.namespace to team-a (a FluxConfig configures its own namespace)"


def test_an_absent_namespace_is_set_to_the_object_s_own() -> None:
    original = fluxconfig("team-a", git())
    result = mutate(original, Settings())
    assert result.patch == [{"op": "add", "path": "/spec/namespace", "value": "team-a"}]
    assert result.warnings == [WARNING]
    assert result.apply()["spec"]["namespace"] == "team-a"
    assert "namespace" not in original["spec"]  # the original is left alone


def test_an_absent_spec_gets_one_holding_the_namespace() -> None:
    original = fluxconfig("team-a", {})
    del original["spec"]
    result = mutate(original, Settings())
    assert result.patch == [{"op": "add", "path": "/spec", "value": {"namespace": "team-a"}}]
    assert result.apply()["spec"] == {"namespace": "team-a"}


def test_an_empty_namespace_is_replaced() -> None:
    result = mutate(fluxconfig("team-a", changed(git(), namespace="")), Settings())
    assert result.patch == [{"op": "replace", "path": "/spec/namespace", "value": "team-a"}]


@pytest.mark.parametrize("namespace", ["team-a", "elsewhere"])
def test_a_given_namespace_is_kept_even_a_wrong_one(namespace: str) -> None:
    """A wrong one is the validating webhook's to refuse, with its message; the mutation does not hide it."""
    result = mutate(fluxconfig("team-a", changed(git(), namespace=namespace)), Settings())
    assert (result.patch, result.warnings) == ([], [])


@pytest.mark.parametrize(
    ("settings", "namespace", "requester"),
    [
        (Settings(enforce=False), "team-a", None),
        (Settings(exempt_namespaces=frozenset({"team-a"})), "team-a", None),
        (Settings(exempt_users=frozenset({"bob"})), "team-a", Requester("bob")),
    ],
    ids=["no-enforce", "exempt-namespace", "exempt-user"],
)
def test_the_default_is_made_whatever_the_settings(settings: Settings, namespace: str, requester: Requester) -> None:
    result = mutate(fluxconfig(namespace, git()), settings, requester=requester)
    assert result.warnings == [WARNING]


def test_the_request_namespace_is_the_one_written() -> None:
    obj = fluxconfig("team-a", git())
    del obj["metadata"]["namespace"]  # as a create sent to a namespace URL may arrive
    result = mutate(obj, Settings(), namespace="team-b")
    assert result.patch == [{"op": "add", "path": "/spec/namespace", "value": "team-b"}]


def test_no_namespace_known_and_malformed_specs_are_left_alone() -> None:
    nowhere = fluxconfig("", git())
    assert mutate(nowhere, Settings()).patch == []
    assert mutate(fluxconfig("team-a", ["a", "list"]), Settings()).patch == []


def test_no_service_account_is_added_to_a_fluxconfig() -> None:
    """FluxConfig does not apply anything itself: its Kustomizations carry flux-applier."""
    result = mutate(fluxconfig("team-a", changed(git(), namespace="team-a")), Settings(mode="fix"))
    assert result.patch == []
