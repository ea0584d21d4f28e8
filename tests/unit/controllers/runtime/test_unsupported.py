"""Unsupported spec fields: which values stall, which are honoured, and the message naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from fluxwarden.controllers.kustomize.api import UNSUPPORTED as KUSTOMIZATION
from fluxwarden.controllers.runtime.unsupported import Rule, Table, find
from fluxwarden.controllers.source import api as source_api

GIT_REPOSITORY = source_api.GIT_REPOSITORY_UNSUPPORTED
HELM_REPOSITORY = source_api.HELM_REPOSITORY_UNSUPPORTED
HELM_CHART = source_api.HELM_CHART_UNSUPPORTED


def obj(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "a", "namespace": "n"}, "spec": spec}


STALLS = [
    (KUSTOMIZATION, {"kubeConfig": {"secretRef": {"name": "k"}}}, "spec.kubeConfig"),
    (KUSTOMIZATION, {"decryption": {"provider": "sops"}}, "spec.decryption"),
    (KUSTOMIZATION, {"deletionPolicy": "Orphan"}, "spec.deletionPolicy 'Orphan'"),
    (KUSTOMIZATION, {"deletionPolicy": "Delete"}, "spec.deletionPolicy 'Delete'"),
    (KUSTOMIZATION, {"deletionPolicy": "WaitForTermination"}, "spec.deletionPolicy 'WaitForTermination'"),
    (KUSTOMIZATION, {"buildMetadata": ["originAnnotations"]}, "spec.buildMetadata"),
    (KUSTOMIZATION, {"healthCheckExprs": [{"kind": "X", "current": "true"}]}, "spec.healthCheckExprs"),
    (KUSTOMIZATION, {"dependsOn": [{"name": "a"}, {"name": "b", "readyExpr": "true"}]}, "spec.dependsOn[1].readyExpr"),
    (KUSTOMIZATION, {"ignore": [{"paths": ["/spec/replicas"]}]}, "spec.ignore"),
    (KUSTOMIZATION, {"ignoreMissingComponents": True}, "spec.ignoreMissingComponents"),
    (KUSTOMIZATION, {"postBuild": {"substituteStrategy": "Always"}}, "spec.postBuild.substituteStrategy 'Always'"),
    (KUSTOMIZATION, {"patchesStrategicMerge": [{"kind": "X"}]}, "spec.patchesStrategicMerge"),
    (KUSTOMIZATION, {"patchesJson6902": [{"patch": []}]}, "spec.patchesJson6902"),
    (GIT_REPOSITORY, {"verify": {"mode": "HEAD", "secretRef": {"name": "pgp"}}}, "spec.verify"),
    (GIT_REPOSITORY, {"include": [{"repository": {"name": "other"}}]}, "spec.include"),
    (GIT_REPOSITORY, {"recurseSubmodules": True}, "spec.recurseSubmodules"),
    (GIT_REPOSITORY, {"sparseCheckout": ["deploy/"]}, "spec.sparseCheckout"),
    (GIT_REPOSITORY, {"provider": "azure"}, "spec.provider 'azure'"),
    (GIT_REPOSITORY, {"provider": "github"}, "spec.provider 'github'"),
    (GIT_REPOSITORY, {"proxySecretRef": {"name": "proxy"}}, "spec.proxySecretRef"),
    (source_api.HELM_OCI_REPOSITORY_UNSUPPORTED, {"type": "oci", "provider": "gcp"}, "spec.provider 'gcp'"),
    (HELM_CHART, {"verify": {"provider": "cosign"}}, "spec.verify"),
    (HELM_CHART, {"reconcileStrategy": "Revision"}, "spec.reconcileStrategy 'Revision'"),
    (HELM_CHART, {"ignoreMissingValuesFiles": True}, "spec.ignoreMissingValuesFiles"),
]


@pytest.mark.parametrize(("table", "spec", "named"), STALLS, ids=[s[2] for s in STALLS])
def test_an_unsupported_field_is_found_and_named(table: Table, spec: dict[str, Any], named: str) -> None:
    finding = find(obj(url="https://x", **spec), table)
    assert finding is not None
    message = finding.message
    assert message.startswith(f"{named} is not supported by fluxwarden yet; ")
    assert message.endswith(f"or run Flux's {table.flux_controller} for this object")


HONOURED = [
    (KUSTOMIZATION, {"deletionPolicy": "MirrorPrune", "prune": True, "wait": True, "force": True}),
    (KUSTOMIZATION, {"ignoreMissingComponents": False, "kubeConfig": None, "decryption": {}}),
    (KUSTOMIZATION, {"commonMetadata": {"labels": {"a": "b"}}}),
    (KUSTOMIZATION, {"postBuild": {"substituteStrategy": "WithVariables", "substitute": {"a": "b"}}}),
    (KUSTOMIZATION, {"dependsOn": [{"name": "a", "namespace": "n"}], "healthChecks": [{"kind": "D", "name": "x"}]}),
    (KUSTOMIZATION, {"patches": [{"patch": "x"}], "images": [{"name": "a"}], "targetNamespace": "t", "ignore": []}),
    (GIT_REPOSITORY, {"provider": "generic", "recurseSubmodules": False, "include": [], "sparseCheckout": []}),
    (GIT_REPOSITORY, {"ref": {"semver": "1.x"}, "ignore": "/x", "secretRef": {"name": "s"}, "timeout": "1m"}),
    (HELM_REPOSITORY, {"type": "default", "provider": "azure", "accessFrom": {"namespaceSelectors": []}}),
    (HELM_REPOSITORY, {"certSecretRef": {"name": "ca"}, "passCredentials": True, "insecure": True}),
    (HELM_CHART, {"reconcileStrategy": "ChartVersion", "ignoreMissingValuesFiles": False, "valuesFiles": ["a"]}),
]


@pytest.mark.parametrize(("table", "spec"), HONOURED)
def test_defaults_and_implemented_fields_never_stall(table: Table, spec: dict[str, Any]) -> None:
    assert find(obj(**spec), table) is None
    assert find({"metadata": {}}, table) is None, "no spec at all"


def test_values_are_compared_with_their_type_and_mistyped_nodes_are_skipped() -> None:
    table = Table("x-controller", (Rule("spec.flag", (False,)), Rule("spec.items[].extra")))
    assert find(obj(flag=False), table) is None
    zero = find(obj(flag=0), table)
    assert zero is not None and zero.where == "spec.flag", "0 is not the boolean default"
    assert find(obj(items="not-a-list"), table) is None
    assert find(obj(items=["not-a-map", {"extra": ""}]), table) is None
    found = find(obj(items=[{}, {"extra": {"a": 1}}]), table)
    assert found is not None and found.where == "spec.items[1].extra"


def test_the_first_rule_in_table_order_wins_and_the_hint_replaces_the_default_advice() -> None:
    found = find(obj(decryption={"provider": "sops"}, kubeConfig={"secretRef": {}}), KUSTOMIZATION)
    assert found is not None and found.where == "spec.kubeConfig"
    policy = find(obj(deletionPolicy="Orphan"), KUSTOMIZATION)
    assert policy is not None and policy.rule.skip_cleanup
    assert "remove it (the default, MirrorPrune, prunes on deletion" in policy.message
    legacy = find(obj(patchesJson6902=[{"patch": []}]), KUSTOMIZATION)
    assert legacy is not None and "move them into spec.patches ('fluxwarden fix' does)" in legacy.message
