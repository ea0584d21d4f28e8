"""FluxConfigs in the system namespaces: admin there is cluster-admin, so any scope is refused."""

from __future__ import annotations

import pytest

from fluxwarden.tenancy import Settings, evaluate


def config(namespace: str, scope: str | None) -> dict[str, object]:
    spec: dict[str, object] = {"gitRepository": {"url": "https://example.com/r", "repositoryRef": {"branch": "main"}}}
    if scope:
        spec["scope"] = scope
    return {
        "apiVersion": "clusterconfig.azure.com/v1beta1",
        "kind": "FluxConfig",
        "metadata": {"name": "c", "namespace": namespace},
        "spec": spec,
    }


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease"])
def test_no_fluxconfig_of_any_scope_in_a_system_namespace(namespace: str) -> None:
    denials = [f for f in evaluate(config(namespace, "namespace"), Settings()) if f.denies]
    assert [f.rule for f in denials] == ["cluster-scope"]
    message = denials[0].message
    assert message.endswith("admin of a system namespace is cluster-admin") and f"in {namespace} makes" in message


def test_unless_the_platform_lists_it() -> None:
    settings = Settings(cluster_scope_namespaces=frozenset({"kube-system"}))
    assert not [f for f in evaluate(config("kube-system", None), settings) if f.denies]


def test_a_tenant_namespace_may_have_scope_namespace() -> None:
    assert not [f for f in evaluate(config("team-a", "namespace"), Settings()) if f.denies]
