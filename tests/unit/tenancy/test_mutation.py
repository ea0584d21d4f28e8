"""The admission-time mutation: the JSON Patch it returns, applied, gives the object it describes."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from fluxwarden.tenancy import Requester, Settings, mutate

from .test_rules import REFERENCE_LEGACY, obj


def applied(original: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(original), patch)
    return result


@pytest.mark.parametrize(
    "api_version",
    ["kustomize.toolkit.fluxcd.io/v1", "kustomize.toolkit.fluxcd.io/v1beta2", "helm.toolkit.fluxcd.io/v2"],
)
def test_empty_service_account_is_set_to_the_applier(api_version: str) -> None:
    kind = "Kustomization" if "kustomize" in api_version else "HelmRelease"
    original = obj(api_version, kind, interval="5m")
    result = mutate(original, Settings())
    assert applied(original, result.patch)["spec"]["serviceAccountName"] == "flux-applier"
    assert result.apply() == applied(original, result.patch)
    assert result.warnings == [
        "service-account: set spec.serviceAccountName to 'flux-applier' (tenants apply as the applier)"
    ]
    assert "serviceAccountName" not in original["spec"], "the input must not be changed"


def test_set_service_account_and_other_kinds_are_left_alone() -> None:
    assert (
        mutate(obj("kustomize.toolkit.fluxcd.io/v1", "Kustomization", serviceAccountName="x"), Settings()).patch == []
    )
    assert mutate(obj("source.toolkit.fluxcd.io/v1", "GitRepository"), Settings()).patch == []
    assert mutate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, Settings()).patch == []


def test_deny_mode_does_not_rewrite_references() -> None:
    result = mutate(REFERENCE_LEGACY, Settings())
    assert [op["path"] for op in result.patch] == ["/spec/serviceAccountName"]


def test_fix_mode_rewrites_the_reference_into_the_own_namespace() -> None:
    result = mutate(REFERENCE_LEGACY, Settings(mode="fix"))
    fixed = applied(REFERENCE_LEGACY, result.patch)
    assert fixed["spec"]["chart"]["spec"]["sourceRef"]["namespace"] == "nginx"
    assert fixed["metadata"]["namespace"] == "nginx", "the namespace itself is never changed"
    assert "cross-namespace-ref: set spec.chart.spec.sourceRef.namespace to nginx (was flux-system)" in result.warnings
    assert all(len(w) < 120 for w in result.warnings)


def test_fix_mode_rewrites_every_list_item() -> None:
    receiver = obj(
        "notification.toolkit.fluxcd.io/v1",
        "Receiver",
        resources=[
            {"kind": "GitRepository", "name": "a", "namespace": "x"},
            {"kind": "GitRepository", "name": "b"},
            {"kind": "GitRepository", "name": "c", "namespace": "y"},
        ],
    )
    fixed = applied(receiver, mutate(receiver, Settings(mode="fix")).patch)
    assert [r.get("namespace") for r in fixed["spec"]["resources"]] == ["team-a", None, "team-a"]


@pytest.mark.parametrize(
    ("settings", "namespace", "requester"),
    [
        (Settings(enforce=False, mode="fix"), "nginx", None),
        (Settings(mode="fix"), "flux-system", None),
        (Settings(mode="fix", exempt_groups=frozenset({"ops"})), "nginx", Requester("bob", frozenset({"ops"}))),
    ],
    ids=["opt-out", "exempt-namespace", "exempt-group"],
)
def test_no_mutation_when_not_enforced_or_exempt(
    settings: Settings, namespace: str, requester: Requester | None
) -> None:
    result = mutate(REFERENCE_LEGACY, settings, namespace=namespace, requester=requester)
    assert (result.patch, result.warnings) == ([], [])


def test_an_empty_service_account_field_is_replaced() -> None:
    original = obj("kustomize.toolkit.fluxcd.io/v1", "Kustomization", serviceAccountName="")
    result = mutate(original, Settings())
    assert result.patch == [{"op": "replace", "path": "/spec/serviceAccountName", "value": "flux-applier"}]
    assert result.apply()["spec"]["serviceAccountName"] == "flux-applier"
