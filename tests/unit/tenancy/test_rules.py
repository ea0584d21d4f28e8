"""The tenancy rules, table-driven over every kind, version and reference field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fluxwarden.tenancy import KINDS, Requester, Settings, evaluate
from fluxwarden.tenancy.fluxconfig import NEVER_EXEMPT_RULES
from fluxwarden.tenancy.kinds import WILDCARD, FluxKind, RefField


def obj(api_version: str, kind: str, namespace: str = "team-a", name: str = "app", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def with_ref(flux_kind: FluxKind, version: str, ref_field: RefField, ref_namespace: str | None) -> dict[str, Any]:
    """An object of ``flux_kind`` whose ``ref_field`` points at ``ref_namespace`` (None: unset)."""
    ref: dict[str, Any] = {"kind": ref_field.implied_kind or "GitRepository", "name": "src"}
    if ref_namespace is not None:
        ref["namespace"] = ref_namespace
    value: Any = ref
    for step in reversed(ref_field.path):
        value = [value] if step == WILDCARD else {step: value}
    return {
        "apiVersion": f"{flux_kind.group}/{version}",
        "kind": flux_kind.kind,
        **value,
        "metadata": {"name": "app", "namespace": "team-a"},
    }


REF_CASES = [
    pytest.param(k, v, r, id=f"{k.kind}.{v}.{'.'.join(r.path)}")
    for k in KINDS
    for v in k.versions
    for r in k.refs_for(v)
]


def rules(findings: list[Any]) -> list[str]:
    return [f.rule for f in findings]


@pytest.mark.parametrize(("flux_kind", "version", "ref_field"), REF_CASES)
def test_reference_into_another_namespace(flux_kind: FluxKind, version: str, ref_field: RefField) -> None:
    strict = Settings(block_cross_namespace_dependencies=True)
    findings = evaluate(with_ref(flux_kind, version, ref_field, "team-b"), strict)
    assert ref_field.rule in rules(findings)
    finding = next(f for f in findings if f.rule == ref_field.rule)
    assert finding.denies
    assert f"{flux_kind.kind} team-a/app" in finding.message
    assert "team-b/src" in finding.message
    assert "namespace team-a" in finding.message
    assert len(finding.message) < 256 and "\n" not in finding.message


@pytest.mark.parametrize(("flux_kind", "version", "ref_field"), REF_CASES)
@pytest.mark.parametrize("ref_namespace", [None, "", "team-a"], ids=["unset", "empty", "own"])
def test_reference_in_own_namespace_is_allowed(
    flux_kind: FluxKind, version: str, ref_field: RefField, ref_namespace: str | None
) -> None:
    strict = Settings(block_cross_namespace_dependencies=True)
    assert not [f for f in evaluate(with_ref(flux_kind, version, ref_field, ref_namespace), strict) if f.denies]


@pytest.mark.parametrize(("flux_kind", "version", "ref_field"), REF_CASES)
def test_opt_out_and_exempt_namespace_allow_every_reference(
    flux_kind: FluxKind, version: str, ref_field: RefField
) -> None:
    cross = with_ref(flux_kind, version, ref_field, "team-b")
    strict = Settings(block_cross_namespace_dependencies=True)
    assert not [f for f in evaluate(cross, Settings(enforce=False)) if f.denies]
    exempt = copy.deepcopy(cross)
    exempt["metadata"]["namespace"] = "flux-system"
    assert not [f for f in evaluate(exempt, strict) if f.denies]


def test_dependency_across_namespaces_is_allowed_unless_opted_in() -> None:
    ks = obj("kustomize.toolkit.fluxcd.io/v1", "Kustomization", dependsOn=[{"name": "infra", "namespace": "x"}])
    assert evaluate(ks, Settings()) == []
    (finding,) = evaluate(ks, Settings(block_cross_namespace_dependencies=True))
    assert finding.rule == "cross-namespace-dependency"
    assert finding.field == "spec.dependsOn[0]"


def test_every_list_item_is_judged_with_its_index() -> None:
    alert = obj(
        "notification.toolkit.fluxcd.io/v1beta3",
        "Alert",
        eventSources=[{"kind": "Kustomization", "name": "*"}, {"kind": "GitRepository", "name": "x", "namespace": "b"}],
    )
    (finding,) = evaluate(alert, Settings())
    assert (finding.field, finding.pointer) == ("spec.eventSources[1]", "/spec/eventSources/1")


def test_chart_ref_is_judged_only_from_the_version_that_has_it() -> None:
    ref = {"kind": "OCIRepository", "name": "podinfo", "namespace": "other"}
    assert evaluate(obj("helm.toolkit.fluxcd.io/v2beta2", "HelmRelease", chartRef=ref), Settings())
    assert not [
        f for f in evaluate(obj("helm.toolkit.fluxcd.io/v2beta1", "HelmRelease", chartRef=ref), Settings()) if f.denies
    ]


REFERENCE_LEGACY = obj(
    "helm.toolkit.fluxcd.io/v2",
    "HelmRelease",
    namespace="nginx",
    name="nginx",
    chart={
        "spec": {
            "chart": "nginx",
            "sourceRef": {"kind": "HelmRepository", "name": "bitnami", "namespace": "flux-system"},
        }
    },
)
REFERENCE_FIXED = obj(
    "helm.toolkit.fluxcd.io/v2",
    "HelmRelease",
    namespace="cluster-config",
    name="nginx",
    targetNamespace="nginx",
    chart={
        "spec": {
            "chart": "nginx",
            "sourceRef": {"kind": "HelmRepository", "name": "bitnami", "namespace": "cluster-config"},
        }
    },
)


def test_reference_example_legacy_helmrelease_is_denied_naming_both_ends() -> None:
    (finding,) = evaluate(REFERENCE_LEGACY, Settings())
    assert finding.message == (
        "cross-namespace-ref: HelmRelease nginx/nginx: spec.chart.spec.sourceRef points to HelmRepository "
        "flux-system/bitnami; move the source into namespace nginx (or run 'fluxwarden fix') — "
        "cross-namespace references are blocked"
    )


def test_reference_example_fixed_form_is_allowed() -> None:
    assert evaluate(REFERENCE_FIXED, Settings()) == []
    repo = obj("source.toolkit.fluxcd.io/v1", "HelmRepository", namespace="cluster-config", name="bitnami")
    assert evaluate(repo, Settings()) == []


def test_request_namespace_wins_over_metadata() -> None:
    """On CREATE the API server may send the object without metadata.namespace."""
    legacy = copy.deepcopy(REFERENCE_LEGACY)
    del legacy["metadata"]["namespace"]
    assert rules(evaluate(legacy, Settings(), namespace="nginx")) == ["cross-namespace-ref"]
    assert evaluate(legacy, Settings(), namespace="flux-system") == []


@pytest.mark.parametrize("kind", ["Kustomization", "HelmRelease"])
@pytest.mark.parametrize(
    ("account", "allowed_list", "denied"),
    [
        ("flux-applier", frozenset(), False),
        ("", frozenset(), False),
        ("cluster-admin-sa", frozenset(), True),
        ("ci-bot", frozenset({"ci-bot"}), False),
    ],
)
def test_service_account_must_be_the_applier_or_allowed(
    kind: str, account: str, allowed_list: frozenset[str], denied: bool
) -> None:
    version = {"Kustomization": "kustomize.toolkit.fluxcd.io/v1", "HelmRelease": "helm.toolkit.fluxcd.io/v2"}[kind]
    findings = evaluate(obj(version, kind, serviceAccountName=account), Settings(allowed_service_accounts=allowed_list))
    assert (rules(findings) == ["service-account"]) is denied
    assert evaluate(obj(version, kind, serviceAccountName=account), Settings(enforce=False)) == []


def test_custom_applier_name() -> None:
    ks = obj("kustomize.toolkit.fluxcd.io/v1", "Kustomization", serviceAccountName="tenant-applier")
    assert evaluate(ks, Settings(applier="tenant-applier")) == []
    assert rules(evaluate(ks, Settings())) == ["service-account"]


@pytest.mark.parametrize("api_version", ["helm.fluxcd.io/v1", "flux.weave.works/v1beta1"])
def test_flux_v1_is_refused_even_with_the_opt_out(api_version: str) -> None:
    hr = obj(api_version, "HelmRelease")
    for settings in (Settings(), Settings(enforce=False)):
        (finding,) = evaluate(hr, settings)
        assert finding.rule == "flux-v1" and finding.denies
        assert "helm.toolkit.fluxcd.io/v2" in finding.message


@pytest.mark.parametrize(
    ("flux_kind", "version"), [(k, v) for k in KINDS for v in k.versions], ids=lambda x: getattr(x, "kind", x)
)
def test_deprecated_versions_warn_and_current_ones_do_not(flux_kind: FluxKind, version: str) -> None:
    # The FluxConfig rules judge an empty FluxConfig too (tests/unit/tenancy/test_fluxconfig_rules.py).
    findings = [
        f
        for f in evaluate(obj(f"{flux_kind.group}/{version}", flux_kind.kind), Settings())
        if f.rule not in NEVER_EXEMPT_RULES
    ]
    if version == flux_kind.current_version:
        assert findings == []
    else:
        (finding,) = findings
        assert (finding.rule, finding.severity) == ("deprecated-api", "warn")
        assert f"use {flux_kind.current_version}" in finding.warning
        assert len(finding.warning) < 120


def test_remote_cluster_is_blocked_only_when_opted_in() -> None:
    ks = obj("kustomize.toolkit.fluxcd.io/v1", "Kustomization", kubeConfig={"secretRef": {"name": "remote"}})
    assert evaluate(ks, Settings()) == []
    assert rules(evaluate(ks, Settings(block_remote_clusters=True))) == ["remote-cluster"]


@pytest.mark.parametrize(
    "requester",
    [Requester("platform-admin"), Requester("bob", frozenset({"platform-team"}))],
    ids=["user", "group"],
)
def test_exempt_users_and_groups_are_never_blocked(requester: Requester) -> None:
    settings = Settings(exempt_users=frozenset({"platform-admin"}), exempt_groups=frozenset({"platform-team"}))
    assert evaluate(REFERENCE_LEGACY, settings, requester=requester) == []
    assert rules(evaluate(REFERENCE_LEGACY, settings, requester=Requester("bob"))) == ["cross-namespace-ref"]


def test_exemption_keeps_warnings() -> None:
    old = obj("kustomize.toolkit.fluxcd.io/v1beta2", "Kustomization", namespace="flux-system")
    assert rules(evaluate(old, Settings())) == ["deprecated-api"]


@pytest.mark.parametrize(
    "odd",
    [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"namespace": "b"}},
        {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "spec": "not-a-map"},
        {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "spec": {"sourceRef": ["x"]}},
        {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": "nope"},
        {},
    ],
    ids=["core-kind", "spec-string", "ref-list", "metadata-string", "empty"],
)
def test_unknown_kinds_and_odd_shapes_give_no_findings_and_no_crash(odd: dict[str, Any]) -> None:
    assert [f for f in evaluate(odd, Settings()) if f.denies] == []


def test_long_names_keep_the_message_under_256_characters() -> None:
    long = "x" * 253
    ks = obj(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        name=long,
        sourceRef={"kind": "GitRepository", "name": long, "namespace": "b"},
    )
    (finding,) = evaluate(ks, Settings())
    assert len(finding.message) <= 255 and finding.message.endswith("…")
