"""Deprecated API versions rewritten: every kind and version of the table, and each field rewrite."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from fluxwarden.tenancy import KINDS, FluxKind, upgrade

from .test_rules import obj

DEPRECATED = [pytest.param(k, v, id=f"{k.kind}.{v}") for k in KINDS for v in k.versions if k.is_deprecated(v)]

SM_PATCH = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}}
JSON_OPS = [{"op": "replace", "path": "/spec/replicas", "value": 3}]
TARGET = {"kind": "Deployment", "name": "web"}
JSON6902 = {"target": TARGET, "patch": JSON_OPS}
HELM_REPOSITORY = {"kind": "HelmRepository", "name": "r"}
SM_STRING = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n"
OPS_STRING = "- op: replace\n  path: /spec/replicas\n  value: 3\n"


@pytest.mark.parametrize(("flux_kind", "version"), DEPRECATED)
def test_every_deprecated_version_goes_to_the_current_one(flux_kind: FluxKind, version: str) -> None:
    original = obj(f"{flux_kind.group}/{version}", flux_kind.kind, interval="5m")
    kept = copy.deepcopy(original)
    result = upgrade(original)
    assert result.obj["apiVersion"] == f"{flux_kind.group}/{flux_kind.current_version}"
    assert result.obj["spec"] == {"interval": "5m"}
    assert result.notes[0] == (
        f"{flux_kind.kind} team-a/app: apiVersion {flux_kind.group}/{version} -> "
        f"{flux_kind.group}/{flux_kind.current_version}"
    )
    assert result.changes[0].steps == ("apiVersion",)
    assert original == kept, "the input must not be changed"
    assert upgrade(result.obj).changes == (), "upgrading twice is upgrading once"


def test_current_versions_the_targets_of_the_spec() -> None:
    current = {k.kind: k.current_version for k in KINDS}
    assert current["Alert"] == current["Provider"] == "v1beta3"
    assert current["Receiver"] == current["GitRepository"] == current["OCIRepository"] == "v1"
    assert current["Kustomization"] == "v1" and current["HelmRelease"] == "v2"
    assert current["ImageRepository"] == current["ImagePolicy"] == current["ImageUpdateAutomation"] == "v1"


@pytest.mark.parametrize(
    "original",
    [
        obj("source.toolkit.fluxcd.io/v1", "GitRepository", gitImplementation="go-git"),
        obj("helm.fluxcd.io/v1", "HelmRelease", valuesFile="x"),  # Flux v1: refused, never rewritten
        obj("flux.weave.works/v1beta1", "HelmRelease"),
        obj("kustomize.config.k8s.io/v1beta1", "Kustomization", patchesStrategicMerge=["a.yaml"]),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"valuesFile": "x"}},
        {"kind": "HelmRelease"},
        {},
    ],
    ids=["current", "flux-v1-helm", "flux-v1-weave", "kustomize-config", "configmap", "no-api-version", "empty"],
)
def test_current_and_foreign_objects_are_returned_as_they_are(original: dict[str, Any]) -> None:
    result = upgrade(original)
    assert result.obj is original
    assert result.changes == () and result.notes == []


# (apiVersion, kind, spec before, spec after, notes after the apiVersion one)
FIELD_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], list[str]]] = [
    (
        "source.toolkit.fluxcd.io/v1beta2", "GitRepository",
        {"interval": "1m", "gitImplementation": "libgit2", "url": "u", "accessFrom": {"namespaceSelectors": []}},
        {"interval": "1m", "url": "u"},
        ["removed spec.gitImplementation (v1 has go-git only)",
         "removed spec.accessFrom (v1 has no cross-namespace access lists)"],
    ),
    (
        "source.toolkit.fluxcd.io/v1beta1", "GitRepository",
        {"url": "u", "accessFrom": {"namespaceSelectors": [{"matchLabels": {}}]}},
        {"url": "u"},
        ["removed spec.accessFrom (v1 has no cross-namespace access lists)"],
    ),
    (
        "source.toolkit.fluxcd.io/v1beta2", "HelmChart",
        {"chart": "web", "valuesFile": "prod.yaml", "interval": "1m"},
        {"chart": "web", "valuesFiles": ["prod.yaml"], "interval": "1m"},
        ["spec.valuesFile -> spec.valuesFiles[0]"],
    ),
    (
        "source.toolkit.fluxcd.io/v1beta1", "HelmChart",
        {"valuesFiles": ["b.yaml"], "chart": "web", "valuesFile": "a.yaml"},
        {"valuesFiles": ["a.yaml", "b.yaml"], "chart": "web"},  # merged before the list, as Flux did
        ["spec.valuesFile -> spec.valuesFiles[0]"],
    ),
    (
        "source.toolkit.fluxcd.io/v1beta2", "HelmChart",
        {"chart": "web", "valuesFile": ""},
        {"chart": "web"},
        ["removed empty spec.valuesFile"],
    ),
    (
        "source.toolkit.fluxcd.io/v1beta2", "HelmRepository",
        {"url": "https://charts", "accessFrom": {"namespaceSelectors": []}},
        {"url": "https://charts", "accessFrom": {"namespaceSelectors": []}},  # v1 still has it
        [],
    ),
    ("source.toolkit.fluxcd.io/v1beta2", "Bucket", {"bucketName": "b"}, {"bucketName": "b"}, []),
    ("source.toolkit.fluxcd.io/v1beta2", "OCIRepository", {"url": "oci://x"}, {"url": "oci://x"}, []),
    (
        "kustomize.toolkit.fluxcd.io/v1beta2", "Kustomization",
        {"interval": "5m", "validation": "client", "prune": True},
        {"interval": "5m", "prune": True},
        ["removed spec.validation (v1 always validates server-side)"],
    ),
    (
        "kustomize.toolkit.fluxcd.io/v1beta1", "Kustomization",
        {"patchesStrategicMerge": [SM_PATCH], "prune": True, "patchesJson6902": [JSON6902]},
        {"patches": [{"patch": SM_STRING}, {"patch": OPS_STRING, "target": TARGET}], "prune": True},
        ["spec.patchesStrategicMerge[0] -> spec.patches[0]", "spec.patchesJson6902[0] -> spec.patches[1]"],
    ),
    (
        "kustomize.toolkit.fluxcd.io/v1beta2", "Kustomization",
        # kustomize's order: strategic merge, then `patches`, then JSON 6902.
        {"patchesJson6902": [JSON6902], "patches": [{"patch": "p"}],
         "patchesStrategicMerge": [SM_PATCH]},
        {"patches": [{"patch": SM_STRING}, {"patch": "p"}, {"patch": OPS_STRING, "target": TARGET}]},
        ["spec.patchesStrategicMerge[0] -> spec.patches[0]", "spec.patchesJson6902[0] -> spec.patches[2]"],
    ),
    (
        "kustomize.toolkit.fluxcd.io/v1beta2", "Kustomization",
        {"patchesStrategicMerge": [], "patchesJson6902": None, "path": "./"},
        {"path": "./"},
        ["removed empty spec.patchesStrategicMerge", "removed empty spec.patchesJson6902"],
    ),
    (
        "helm.toolkit.fluxcd.io/v2beta1", "HelmRelease",
        {"chart": {"spec": {"chart": "web", "valuesFile": "v.yaml", "sourceRef": HELM_REPOSITORY}},
         "postRenderers": [
             {"kustomize": {"patchesStrategicMerge": [SM_PATCH], "images": [{"name": "web", "newTag": "2"}]}},
             {"kustomize": {"patchesJson6902": [JSON6902]}},
         ]},
        {"chart": {"spec": {"chart": "web", "valuesFiles": ["v.yaml"], "sourceRef": HELM_REPOSITORY}},
         "postRenderers": [
             {"kustomize": {"patches": [{"patch": SM_STRING}], "images": [{"name": "web", "newTag": "2"}]}},
             {"kustomize": {"patches": [{"patch": OPS_STRING, "target": TARGET}]}},
         ]},
        ["spec.chart.spec.valuesFile -> spec.chart.spec.valuesFiles[0]",
         "spec.postRenderers[0].kustomize.patchesStrategicMerge[0] -> spec.postRenderers[0].kustomize.patches[0]",
         "spec.postRenderers[1].kustomize.patchesJson6902[0] -> spec.postRenderers[1].kustomize.patches[0]"],
    ),
    (
        "helm.toolkit.fluxcd.io/v2beta2", "HelmRelease",
        {"chartRef": {"kind": "OCIRepository", "name": "web"}, "values": {"valuesFile": "kept: not a chart field"}},
        {"chartRef": {"kind": "OCIRepository", "name": "web"}, "values": {"valuesFile": "kept: not a chart field"}},
        [],
    ),
    ("notification.toolkit.fluxcd.io/v1beta2", "Receiver", {"type": "github"}, {"type": "github"}, []),
    ("notification.toolkit.fluxcd.io/v1beta1", "Alert", {"summary": "s"}, {"summary": "s"}, []),
    ("notification.toolkit.fluxcd.io/v1beta2", "Provider", {"type": "slack"}, {"type": "slack"}, []),
    ("image.toolkit.fluxcd.io/v1beta1", "ImageRepository", {"image": "web"}, {"image": "web"}, []),
    ("image.toolkit.fluxcd.io/v1beta2", "ImagePolicy", {"policy": {}}, {"policy": {}}, []),
    ("image.toolkit.fluxcd.io/v1beta2", "ImageUpdateAutomation", {"git": {}}, {"git": {}}, []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("api_version", "kind", "before", "after", "notes"),
    FIELD_CASES,
    ids=[f"{c[1]}.{c[0].rpartition('/')[2]}.{i}" for i, c in enumerate(FIELD_CASES)],
)
def test_fields_dropped_or_renamed_by_the_new_version(
    api_version: str, kind: str, before: dict[str, Any], after: dict[str, Any], notes: list[str]
) -> None:
    original = obj(api_version, kind, **before)
    result = upgrade(original)
    assert result.obj["spec"] == after
    assert list(result.obj["spec"]) == list(after), "renamed fields keep their place"
    assert [n.removeprefix(f"{kind} team-a/app: ") for n in result.notes[1:]] == notes
    assert original["spec"] == before, "the input must not be changed"
    assert upgrade(result.obj).changes == ()


def test_patch_strings_read_back_as_the_patches() -> None:
    result = upgrade(
        obj(
            "kustomize.toolkit.fluxcd.io/v1beta2",
            "Kustomization",
            patchesStrategicMerge=[SM_PATCH],
            patchesJson6902=[JSON6902],
        )
    )
    strategic, json6902 = result.obj["spec"]["patches"]
    assert yaml.safe_load(strategic["patch"]) == SM_PATCH
    assert yaml.safe_load(json6902["patch"]) == JSON_OPS and json6902["target"] == TARGET


def test_changes_name_the_field_as_it_stood() -> None:
    result = upgrade(
        obj(
            "helm.toolkit.fluxcd.io/v2beta1",
            "HelmRelease",
            postRenderers=[{"kustomize": {"patchesStrategicMerge": [{}]}}],
        )
    )
    assert [c.steps for c in result.changes] == [
        ("apiVersion",),
        ("spec", "postRenderers", 0, "kustomize", "patchesStrategicMerge", 0),
    ]
