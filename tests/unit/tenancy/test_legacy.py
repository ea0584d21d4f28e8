"""TENANCY.md's legacy transform: the reference example, every reference field, idempotence, limits."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from fluxwarden.tenancy import KINDS, Settings, evaluate, legacy_fix
from fluxwarden.tenancy.kinds import WILDCARD, FluxKind, RefField

from .test_rules import obj

EXAMPLES = Path(__file__).parents[3] / "examples"
STRICT = Settings(block_cross_namespace_dependencies=True)


def load(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((EXAMPLES / name).read_text()))


def denials(objects: list[dict[str, Any]], settings: Settings = STRICT) -> list[str]:
    # No namespace is exempt here: flux-system objects are judged like any other.
    strict = Settings(
        exempt_namespaces=frozenset(), block_cross_namespace_dependencies=settings.block_cross_namespace_dependencies
    )
    return [f.message for o in objects for f in evaluate(o, strict) if f.denies]


def test_reference_example_becomes_the_documented_fix() -> None:
    legacy = load("legacy-helmrelease.yaml")
    assert denials(legacy), "the example is blocked before the fix"
    result = legacy_fix(legacy)
    assert result.objects == load("fixed-helmrelease.yaml")
    assert result.notes == [
        "HelmRepository flux-system/bitnami: moved to namespace cluster-config (was flux-system)",
        "HelmRelease nginx/nginx: moved to namespace cluster-config (was nginx)",
        "HelmRelease nginx/nginx: set spec.targetNamespace to nginx (where the workload was)",
        "HelmRelease nginx/nginx: set spec.chart.spec.sourceRef.namespace to cluster-config (was flux-system)",
    ]
    assert [f for o in result.objects for f in evaluate(o, Settings())] == []
    assert denials(result.objects) == []
    assert legacy == load("legacy-helmrelease.yaml"), "the input must not be changed"


def test_changes_are_reported_per_object_with_the_field() -> None:
    result = legacy_fix(load("legacy-helmrelease.yaml"))
    assert [[c.steps for c in changes] for changes in result.changes] == [
        [("metadata", "namespace")],
        [("metadata", "namespace"), ("spec", "targetNamespace"), ("spec", "chart", "spec", "sourceRef", "namespace")],
    ]


def _target_kind(flux_kind: FluxKind, ref_field: RefField) -> str:
    if ref_field.rule == "cross-namespace-dependency":
        return flux_kind.kind  # dependsOn names objects of the referrer's kind, without a kind
    return ref_field.implied_kind or "GitRepository"


def _referrer(flux_kind: FluxKind, version: str, ref_field: RefField) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": "src", "namespace": "team-b"}
    if ref_field.rule != "cross-namespace-dependency" and not ref_field.implied_kind:
        ref["kind"] = "GitRepository"
    value: Any = ref
    for step in reversed(ref_field.path):
        value = [value] if step == WILDCARD else {step: value}
    api_version = f"{flux_kind.group}/{version}"
    return {
        "apiVersion": api_version,
        "kind": flux_kind.kind,
        "metadata": {"name": "app", "namespace": "team-a"},
        **value,
    }


def _target(kind: str) -> dict[str, Any]:
    flux_kind = next(k for k in KINDS if k.kind == kind)
    return obj(f"{flux_kind.group}/{flux_kind.current_version}", kind, namespace="team-b", name="src")


REF_CASES = [
    pytest.param(k, v, r, id=f"{k.kind}.{v}.{'.'.join(r.path)}")
    for k in KINDS
    for v in k.versions
    for r in k.refs_for(v)
]


@pytest.mark.parametrize(("flux_kind", "version", "ref_field"), REF_CASES)
def test_every_reference_field_follows_the_moved_object(flux_kind: FluxKind, version: str, ref_field: RefField) -> None:
    objects = [_referrer(flux_kind, version, ref_field), _target(_target_kind(flux_kind, ref_field))]
    assert denials(objects)
    result = legacy_fix(objects)
    assert denials(result.objects) == []
    assert all(o["metadata"]["namespace"] == "cluster-config" for o in result.objects)
    ref_notes = [n for n in result.notes if ".namespace to cluster-config (was team-b)" in n]
    assert len(ref_notes) == 1 and ref_notes[0].startswith(f"{flux_kind.kind} team-a/app: set spec.")
    assert legacy_fix(result.objects).notes == []


@pytest.mark.parametrize(("flux_kind", "version", "ref_field"), REF_CASES)
def test_a_reference_to_an_object_not_given_is_left_alone(
    flux_kind: FluxKind, version: str, ref_field: RefField
) -> None:
    # Where the object really is, nobody here knows: the rules keep reporting it.
    result = legacy_fix([_referrer(flux_kind, version, ref_field)])
    assert result.notes == [f"{flux_kind.kind} team-a/app: moved to namespace cluster-config (was team-a)"] + (
        [f"{flux_kind.kind} team-a/app: set spec.targetNamespace to team-a (where the workload was)"]
        if flux_kind.kind in ("Kustomization", "HelmRelease")
        else []
    )
    assert denials(result.objects)


def test_wildcard_names_follow_any_moved_object_of_their_kind() -> None:
    receiver = obj(
        "notification.toolkit.fluxcd.io/v1",
        "Receiver",
        namespace="cluster-config",
        resources=[
            {"kind": "GitRepository", "name": "*", "namespace": "team-b"},
            {"kind": "Bucket", "name": "*", "namespace": "team-b"},  # no Bucket moved from team-b
        ],
    )
    result = legacy_fix([receiver, _target("GitRepository")])
    assert [r["namespace"] for r in result.objects[0]["spec"]["resources"]] == ["cluster-config", "team-b"]


@pytest.mark.parametrize(
    ("before", "target_namespace"),
    [
        ({"interval": "5m", "path": "./"}, "team-a"),
        ({"interval": "5m", "targetNamespace": "web"}, "web"),  # set: kept
        ({}, "team-a"),
    ],
    ids=["unset", "kept", "empty-spec"],
)
@pytest.mark.parametrize(
    "api_version", ["kustomize.toolkit.fluxcd.io/v1", "helm.toolkit.fluxcd.io/v2", "helm.toolkit.fluxcd.io/v2beta1"]
)
def test_target_namespace_keeps_the_workload_where_it_was(
    api_version: str, before: dict[str, Any], target_namespace: str
) -> None:
    kind = "Kustomization" if "kustomize" in api_version else "HelmRelease"
    result = legacy_fix([obj(api_version, kind, **before)])
    spec = result.objects[0]["spec"]
    assert spec["targetNamespace"] == target_namespace
    if "interval" in before:
        assert list(spec)[:2] == ["interval", "targetNamespace"], "written where people write it"


def test_no_target_namespace_for_sources_nor_for_objects_already_in_place() -> None:
    source = obj("source.toolkit.fluxcd.io/v1", "GitRepository", url="u")
    in_place = obj("kustomize.toolkit.fluxcd.io/v1", "Kustomization", namespace="cluster-config", path="./")
    result = legacy_fix([source, in_place])
    assert "targetNamespace" not in result.objects[0]["spec"]
    assert result.objects[1] is in_place and result.changes[1] == ()


def test_an_object_without_namespace_gets_the_config_namespace_but_no_target() -> None:
    release = obj("helm.toolkit.fluxcd.io/v2", "HelmRelease", interval="5m")
    del release["metadata"]["namespace"]
    release["metadata"]["labels"] = {"a": "b"}
    result = legacy_fix([release])
    assert list(result.objects[0]["metadata"].items()) == [
        ("name", "app"), ("namespace", "cluster-config"), ("labels", {"a": "b"})
    ]  # fmt: skip
    assert "targetNamespace" not in result.objects[0]["spec"]
    assert result.notes == ["HelmRelease app: set metadata.namespace to cluster-config (was unset)"]


def test_non_flux_objects_and_flux_config_are_untouched() -> None:
    others: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "team-a"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "flux-system"}},
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "team-a"},
        {"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease", "metadata": {"name": "v1", "namespace": "x"}},
        obj("clusterconfig.azure.com/v1beta1", "FluxConfig", namespace="team-a"),
    ]
    kept = copy.deepcopy(others)
    result = legacy_fix([*others, obj("source.toolkit.fluxcd.io/v1", "GitRepository")])
    assert all(a is b for a, b in zip(result.objects, others, strict=False))
    assert others == kept
    assert [len(c) for c in result.changes] == [0, 0, 0, 0, 0, 1]


def test_the_same_object_twice_moves_twice() -> None:
    # A base and an overlay patch of one HelmRelease: both must keep matching each other.
    base = obj("helm.toolkit.fluxcd.io/v2", "HelmRelease", namespace="web", name="web", interval="5m")
    patch = obj("helm.toolkit.fluxcd.io/v2", "HelmRelease", namespace="web", name="web", values={"replicas": 2})
    result = legacy_fix([base, patch])
    assert result.skipped == ()
    assert [o["metadata"]["namespace"] for o in result.objects] == ["cluster-config", "cluster-config"]


def test_objects_that_would_become_one_are_not_moved() -> None:
    a = obj("source.toolkit.fluxcd.io/v1", "HelmRepository", namespace="team-a", name="charts")
    b = obj("source.toolkit.fluxcd.io/v1", "HelmRepository", namespace="team-b", name="charts")
    release = obj(
        "helm.toolkit.fluxcd.io/v2",
        "HelmRelease",
        namespace="team-a",
        chart={"spec": {"sourceRef": {"kind": "HelmRepository", "name": "charts", "namespace": "team-b"}}},
    )
    result = legacy_fix([a, b, release])
    assert result.objects[0] is a and result.objects[1] is b
    assert [s.index for s in result.skipped] == [0, 1]
    assert str(result.skipped[0]) == (
        "HelmRepository team-a/charts: not moved: HelmRepository charts exists in namespaces team-a, team-b; "
        "rename one so that both fit in cluster-config, then fix again"
    )
    sref = result.objects[2]["spec"]["chart"]["spec"]["sourceRef"]
    assert sref["namespace"] == "team-b", "a reference to an object left in place is left too"
    assert result.notes[-2:] == [str(s) for s in result.skipped]


def test_an_object_already_in_the_config_namespace_wins_a_name_clash() -> None:
    here = obj("source.toolkit.fluxcd.io/v1", "GitRepository", namespace="cluster-config", name="apps")
    there = obj("source.toolkit.fluxcd.io/v1", "GitRepository", namespace="team-a", name="apps")
    result = legacy_fix([here, there])
    assert [s.index for s in result.skipped] == [1]
    assert result.objects == [here, there]


def test_another_config_namespace() -> None:
    result = legacy_fix(load("legacy-helmrelease.yaml"), "tenant-a")
    release = result.objects[1]
    assert release["metadata"]["namespace"] == "tenant-a"
    assert release["spec"]["chart"]["spec"]["sourceRef"]["namespace"] == "tenant-a"
    assert denials(result.objects) == []


@pytest.mark.parametrize(
    "objects",
    [
        load("legacy-helmrelease.yaml"),
        load("fixed-helmrelease.yaml"),
        [
            obj("kustomize.toolkit.fluxcd.io/v1", "Kustomization", namespace="apps", name="apps",
                sourceRef={"kind": "GitRepository", "name": "repo", "namespace": "flux-system"},
                dependsOn=[{"name": "infra", "namespace": "flux-system"}, {"name": "crds"}]),
            obj("kustomize.toolkit.fluxcd.io/v1", "Kustomization", namespace="flux-system", name="infra",
                targetNamespace="infra"),
            obj("source.toolkit.fluxcd.io/v1", "GitRepository", namespace="flux-system", name="repo"),
            obj("notification.toolkit.fluxcd.io/v1beta3", "Alert", namespace="monitoring",
                eventSources=[{"kind": "Kustomization", "name": "*", "namespace": "apps"}]),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}},
        ],
    ],
    ids=["legacy", "fixed", "mixed"],
)  # fmt: skip
def test_fixing_twice_is_fixing_once(objects: list[dict[str, Any]]) -> None:
    once = legacy_fix(objects)
    twice = legacy_fix(once.objects)
    assert twice.objects == once.objects
    assert twice.notes == []
    assert denials(once.objects) == []
