"""The FluxConfig rules: ``cluster-scope``, ``fluxconfig`` (the Azure CLI's checks) and the immutable fields."""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest

from fluxwarden.tenancy import Finding, Requester, Settings, evaluate
from tests.support.fluxconfig_admission import DENIED, SECRET, SECRET_B64, VALID, Denied, changed, fluxconfig, git

TENANT = "team-a"


def findings_of(obj: dict[str, Any], settings: Settings | None = None, **kwargs: Any) -> list[Finding]:
    return evaluate(obj, settings or Settings(), **kwargs)


def one_line(finding: Finding) -> None:
    assert len(finding.message) < 256 and "\n" not in finding.message, finding.message


# -- fluxconfig: every valid shape passes, every bad field gets one denial -------------------------


@pytest.mark.parametrize("spec", VALID.values(), ids=VALID.keys())
def test_valid_fluxconfigs_get_no_finding(spec: dict[str, Any]) -> None:
    assert findings_of(fluxconfig(TENANT, spec)) == []


@pytest.mark.parametrize("case", DENIED, ids=lambda c: c.id)
def test_each_bad_field_gets_one_line_naming_object_field_and_fix(case: Denied) -> None:
    (finding,) = findings_of(fluxconfig(TENANT, case.spec, case.name))

    assert (finding.rule, finding.severity, finding.field) == ("fluxconfig", "deny", case.field)
    assert finding.detail == case.detail.replace("{namespace}", TENANT)
    assert case.fix.replace("{namespace}", TENANT) in finding.fix
    assert finding.message.startswith(f"fluxconfig: FluxConfig {TENANT}/{case.name}: {finding.detail}; ")
    one_line(finding)
    assert SECRET not in finding.message and SECRET_B64 not in finding.message


@pytest.mark.parametrize("case", DENIED, ids=lambda c: c.id)
@pytest.mark.parametrize(
    ("settings", "requester"),
    [
        (Settings(exempt_namespaces=frozenset({TENANT})), None),
        (Settings(exempt_users=frozenset({"platform-bot"})), Requester("platform-bot")),
        (Settings(exempt_groups=frozenset({"ops"})), Requester("bob", frozenset({"ops"}))),
        (Settings(enforce=False), None),
    ],
    ids=["exempt-namespace", "exempt-user", "exempt-group", "no-enforce"],
)
def test_no_exemption_lifts_a_malformed_fluxconfig(case: Denied, settings: Settings, requester: Requester) -> None:
    denials = [f for f in findings_of(fluxconfig(TENANT, case.spec, case.name), settings, requester=requester)]
    assert [(f.rule, f.field, f.denies) for f in denials] == [("fluxconfig", case.field, True)]


def test_messages_read_as_written() -> None:
    """Two whole messages, written out: rule, object, field and value, fix, reason."""
    (known_hosts,) = findings_of(fluxconfig(TENANT, git(sshKnownHosts="Z2l0IGtleQ==")))
    assert known_hosts.message == (
        "fluxconfig: FluxConfig team-a/apps: spec.gitRepository.sshKnownHosts is set but the url is https; "
        "remove sshKnownHosts or use an ssh:// or git@ URL — known hosts are for ssh only"
    )
    (differs,) = findings_of(fluxconfig(TENANT, changed(git(), namespace="elsewhere")))
    assert differs.message == (
        "fluxconfig: FluxConfig team-a/apps: spec.namespace is elsewhere but the FluxConfig is in namespace team-a; "
        "set spec.namespace to team-a or remove it (or create the FluxConfig in elsewhere) — "
        "a FluxConfig lives in the namespace it configures, as in Azure"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://bot:hunter2@git.example.com/org/fleet.git",
        "ssh://git:hunter2@git.example.com/org/fleet.git",
        "ftp://bot:hunter2@git.example.com/fleet",
        "bot:hunter2@git.example.com/fleet",
    ],
)
def test_a_password_in_a_url_is_denied_and_never_quoted(url: str) -> None:
    (finding,) = findings_of(fluxconfig(TENANT, git(url=url)))
    assert finding.detail == "spec.gitRepository.url carries a password"
    assert "hunter2" not in finding.message and "hunter2" not in finding.warning


def test_several_bad_fields_give_one_finding_each() -> None:
    spec = changed(git(url="ftp://x", repositoryRef={"branch": "a", "tag": "b"}), reconciliationWaitDuration="1h")
    fields = [f.field for f in findings_of(fluxconfig(TENANT, spec))]
    assert fields == ["spec.gitRepository.url", "spec.gitRepository.repositoryRef", "spec.reconciliationWaitDuration"]


def test_an_absent_spec_means_a_git_source_is_missing() -> None:
    obj = fluxconfig("cluster-config", {})
    del obj["spec"]
    (finding,) = findings_of(obj)
    assert (finding.field, finding.detail) == (
        "spec.gitRepository",
        "spec.gitRepository is missing for sourceKind GitRepository",
    )


def test_an_unset_source_kind_is_named_as_the_default() -> None:
    spec = {"scope": "namespace", "bucket": {"url": "https://minio", "bucketName": "b"}}
    details = [f.detail for f in findings_of(fluxconfig(TENANT, spec))]
    assert details == [
        "spec.bucket is set but spec.sourceKind is GitRepository (the default)",
        "spec.gitRepository is missing for sourceKind GitRepository",
    ]


def test_a_long_cycle_is_reported_once_from_its_alphabetically_first_member() -> None:
    """Whatever the map order: the API server sorts map keys, a file need not."""
    spec = changed(
        git(),
        kustomizations={"d": {}, "c": {"dependsOn": ["a"]}, "b": {"dependsOn": ["c"]}, "a": {"dependsOn": ["b"]}},
    )
    (finding,) = findings_of(fluxconfig(TENANT, spec))
    assert (finding.field, finding.detail) == (
        "spec.kustomizations.a.dependsOn",
        "dependsOn forms a cycle: a -> b -> c -> a",
    )


def test_two_separate_cycles_are_two_findings() -> None:
    spec = changed(
        git(),
        kustomizations={"x": {"dependsOn": ["y"]}, "y": {"dependsOn": ["x"]}, "p": {"dependsOn": ["q"]},
                        "q": {"dependsOn": ["p"]}},
    )  # fmt: skip
    details = [f.detail for f in findings_of(fluxconfig(TENANT, spec))]
    assert details == ["dependsOn forms a cycle: p -> q -> p", "dependsOn forms a cycle: x -> y -> x"]


def test_a_diamond_of_dependencies_is_no_cycle() -> None:
    spec = changed(
        git(),
        kustomizations={"base": {}, "left": {"dependsOn": ["base"]}, "right": {"dependsOn": ["base"]},
                        "top": {"dependsOn": ["left", "right"]}},
    )  # fmt: skip
    assert findings_of(fluxconfig(TENANT, spec)) == []


def test_other_kinds_are_not_judged_as_fluxconfig() -> None:
    other = fluxconfig(TENANT, {"scope": "sideways"})
    other["apiVersion"] = "example.com/v1"
    assert findings_of(other) == []


# -- cluster-scope -----------------------------------------------------------------------------------


def cluster_scoped(namespace: str, scope: str | None = "cluster") -> dict[str, Any]:
    return fluxconfig(namespace, changed(git(), scope=scope))


def test_scope_cluster_by_default_in_a_tenant_namespace_is_denied_naming_the_field_and_fix() -> None:
    (finding,) = findings_of(cluster_scoped(TENANT, scope=None))
    assert (finding.rule, finding.field, finding.denies) == ("cluster-scope", "spec.scope", True)
    assert finding.message == (
        "cluster-scope: FluxConfig team-a/apps: spec.scope is cluster (the default when unset) in namespace team-a; "
        "set spec.scope: namespace, or ask the platform to create it in cluster-config or flux-system — "
        "scope cluster grants the repository cluster-admin"
    )


def test_an_explicit_scope_cluster_is_denied_too() -> None:
    (finding,) = findings_of(cluster_scoped(TENANT))
    assert finding.detail == "spec.scope is cluster in namespace team-a"


@pytest.mark.parametrize("namespace", ["cluster-config", "flux-system"])
def test_scope_cluster_is_allowed_in_the_default_configuration_namespaces(namespace: str) -> None:
    assert findings_of(cluster_scoped(namespace)) == []
    assert findings_of(cluster_scoped(namespace, scope=None)) == []


def test_scope_namespace_is_allowed_anywhere() -> None:
    assert findings_of(cluster_scoped(TENANT, scope="namespace")) == []


def test_the_platform_chooses_the_namespaces() -> None:
    settings = Settings(cluster_scope_namespaces=frozenset({"platform", "gitops"}))
    assert findings_of(cluster_scoped("platform"), settings) == []
    (finding,) = findings_of(cluster_scoped("cluster-config"), settings)
    assert finding.rule == "cluster-scope"
    assert "ask the platform to create it in gitops or platform" in finding.fix


def test_with_no_namespace_listed_scope_cluster_is_refused_everywhere() -> None:
    (finding,) = findings_of(cluster_scoped("cluster-config"), Settings(cluster_scope_namespaces=frozenset()))
    assert "create it in a namespace the platform lists" in finding.fix


@pytest.mark.parametrize(
    ("settings", "requester"),
    [
        (Settings(exempt_namespaces=frozenset({TENANT})), None),
        (Settings(exempt_users=frozenset({"platform-bot"})), Requester("platform-bot")),
        (Settings(exempt_groups=frozenset({"system:masters"})), Requester("admin", frozenset({"system:masters"}))),
        (Settings(enforce=False), None),
    ],
    ids=["exempt-namespace", "exempt-user", "exempt-group", "no-enforce"],
)
def test_only_the_namespace_list_exempts_scope_cluster(settings: Settings, requester: Requester | None) -> None:
    """The controller judges again at reconcile time and cannot see who wrote the object."""
    assert [f.rule for f in findings_of(cluster_scoped(TENANT), settings, requester=requester)] == ["cluster-scope"]


def test_exempt_namespaces_still_lift_the_other_rules() -> None:
    """The FluxConfig rules are the exception: a cross-namespace reference stays allowed in an exempt namespace."""
    ks = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": TENANT},
        "spec": {"sourceRef": {"kind": "GitRepository", "name": "x", "namespace": "other"}},
    }
    assert [f.rule for f in findings_of(ks)] == ["cross-namespace-ref"]
    assert findings_of(ks, Settings(exempt_namespaces=frozenset({TENANT}))) == []


def test_the_request_namespace_wins_over_metadata() -> None:
    obj = cluster_scoped("cluster-config")
    assert [f.rule for f in findings_of(obj, namespace=TENANT)] == ["cluster-scope"]


def test_offline_without_a_namespace_spec_namespace_says_where_it_goes() -> None:
    listed = fluxconfig("", changed(git(), scope="cluster", namespace="cluster-config"))
    del listed["metadata"]["namespace"]
    assert findings_of(listed) == []
    tenant = copy.deepcopy(listed)
    tenant["spec"]["namespace"] = TENANT
    (finding,) = findings_of(tenant)
    assert (finding.rule, finding.detail) == ("cluster-scope", "spec.scope is cluster in namespace team-a")


def test_a_bad_scope_is_the_fluxconfig_rule_s_alone() -> None:
    assert [f.rule for f in findings_of(cluster_scoped(TENANT, scope="Cluster"))] == ["fluxconfig"]


# -- immutable scope and namespace (UPDATE) ----------------------------------------------------------


def update(old_spec: dict[str, Any], new_spec: dict[str, Any], settings: Settings | None = None) -> list[Finding]:
    return findings_of(fluxconfig("cluster-config", new_spec), settings, old=fluxconfig("cluster-config", old_spec))


def test_a_changed_scope_is_denied() -> None:
    (finding,) = update(git(), changed(git(), scope="cluster"))
    assert (finding.rule, finding.field) == ("fluxconfig", "spec.scope")
    assert finding.message == (
        "fluxconfig: FluxConfig cluster-config/apps: spec.scope changed from 'namespace' to 'cluster'; "
        "keep namespace, or delete the FluxConfig and create it anew — spec.scope is immutable"
    )


def test_a_changed_namespace_is_denied_as_immutable_and_as_foreign() -> None:
    findings = update(git(), changed(git(), namespace="team-b"))
    assert [(f.field, f.detail) for f in findings] == [
        ("spec.namespace", "spec.namespace is team-b but the FluxConfig is in namespace cluster-config"),
        ("spec.namespace", "spec.namespace changed from 'cluster-config' to 'team-b'"),
    ]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (changed(git(), scope=None), changed(git(), scope="cluster")),
        (changed(git(), scope="cluster"), changed(git(), scope=None)),
        (git(), changed(git(), namespace="cluster-config")),
        (changed(git(), namespace="cluster-config"), git()),
        (changed(git(), scope="Cluster"), changed(git(), scope="namespace")),
        (changed(git(), namespace="elsewhere"), changed(git(), namespace="cluster-config")),
        (git(), changed(git(), suspend=True, kustomizations={"all": {"path": "./"}})),
    ],
    ids=["scope-made-explicit", "scope-default-kept", "namespace-filled-in", "namespace-left-out",
         "bad-stored-scope-fixed", "bad-stored-namespace-fixed", "other-fields-change"],
)  # fmt: skip
def test_updates_that_keep_the_effective_scope_and_namespace_are_allowed(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    assert update(old, new) == []


def test_a_refused_scope_cluster_may_be_narrowed_to_namespace_but_not_widened_back() -> None:
    def tenant_update(old_scope: str | None, new_scope: str) -> list[str]:
        old = fluxconfig(TENANT, changed(git(), scope=old_scope))
        return [f.rule for f in findings_of(fluxconfig(TENANT, changed(git(), scope=new_scope)), old=old)]

    assert tenant_update("cluster", "namespace") == []
    assert tenant_update(None, "namespace") == []
    assert tenant_update("namespace", "cluster") == ["cluster-scope", "fluxconfig"]
    # Where cluster is allowed, it is a valid stored value and stays immutable.
    assert [f.detail for f in update(changed(git(), scope="cluster"), git())] == [
        "spec.scope changed from 'cluster' to 'namespace'"
    ]


def test_immutability_is_not_lifted_by_exemptions() -> None:
    exempt = Settings(exempt_namespaces=frozenset({"cluster-config"}), enforce=False)
    assert [f.field for f in update(git(), changed(git(), scope="cluster"), exempt)] == ["spec.scope"]


def test_without_old_nothing_is_compared() -> None:
    assert findings_of(fluxconfig("cluster-config", changed(git(), scope="cluster"))) == []


# -- hostile values ----------------------------------------------------------------------------------


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


DEEP = sys.getrecursionlimit() * 2


@pytest.mark.parametrize(
    "path",
    [
        ("scope",),
        ("namespace",),
        ("sourceKind",),
        ("gitRepository", "url"),
        ("gitRepository", "repositoryRef"),
        ("gitRepository", "timeoutInSeconds"),
        ("kustomizations", "apps", "dependsOn"),
        ("gitRepository",),
        ("reconciliationWaitDuration",),
        ("configurationProtectedSettingsRef",),
    ],
)
@pytest.mark.parametrize("container", [nested(DEEP), {"a": {"b": 1}}], ids=["deep-list", "object"])
def test_a_container_where_a_value_goes_is_denied_without_recursion(path: tuple[str, ...], container: Any) -> None:
    obj = fluxconfig(TENANT, git())  # set afterwards: a deep copy of the container would recurse
    target = obj["spec"]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = container
    findings = findings_of(obj) + findings_of(obj, old=fluxconfig(TENANT, git()))
    assert any(f.denies for f in findings)
    for finding in findings:
        one_line(finding)
        assert "[[" not in finding.message and "{'" not in finding.message
