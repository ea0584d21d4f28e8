"""Who may grant what: scope ``namespace`` keeps the applier in its namespace; scope ``cluster`` is
honoured only in the platform's configuration namespaces (the controller's own check, no webhook here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.fluxconfig import (
    APPLIER,
    FluxConfigs,
    Stages,
    app_spec,
    condition,
    controllers,
    current,
    entry_messages,
    entry_status,
    shared_labels,
    stages,
)
from tests.support.tenants import configmap

__all__ = ["controllers", "stages"]  # fixtures


def test_scope_namespace_cannot_write_outside_its_namespace(
    stages: Stages, namespace_factory: Callable[[], str]
) -> None:
    stage = stages(namespace_factory())
    configs, repo, mine, other = stage.configs, stage.repo, stage.namespace, namespace_factory()
    repo.push({"app/mine.yaml": configmap("mine", "1", mine), "app/theirs.yaml": configmap("theirs", "1", other)})
    configs.create("tenant", app_spec(repo.url))

    def messages(obj: dict[str, Any]) -> str:
        return entry_messages(obj, "Kustomization", "tenant-app")

    failed = configs.wait(
        "tenant",
        lambda o: (
            "forbidden" in messages(o).lower()
            and entry_status(o, "Kustomization", "tenant-app").get("complianceState") == "Non-Compliant"
        ),
        "tenant-app Non-Compliant with a forbidden apply in statuses[]",
    )
    assert failed["status"]["complianceState"] == "Non-Compliant"
    message = messages(failed)
    assert f"system:serviceaccount:{mine}:{APPLIER}" in message, message
    assert f"ConfigMap/{other}/theirs" in message, message
    assert condition(failed)["status"] == "False"
    assert configs.configmaps(other) == {}, "nothing landed in the other namespace"

    binding = configs.role_binding()
    assert binding is not None, "RoleBinding flux-applier in the namespace"
    assert (binding.role_ref.kind, binding.role_ref.name) == ("ClusterRole", "cluster-admin")
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [("ServiceAccount", APPLIER, mine)]
    assert shared_labels(mine).items() <= (binding.metadata.labels or {}).items()
    assert configs.cluster_role_binding() is None, "scope namespace gets no ClusterRoleBinding"

    # Within its namespace it may write: without the foreign object the same config converges.
    fixed = repo.push(delete=("app/theirs.yaml",))
    configs.compliant("tenant", fixed)
    assert configs.configmaps(mine) == {"mine": {"value": "1"}}


def test_scope_cluster_outside_the_platform_namespaces_is_refused_by_the_controller(
    stages: Stages, namespace_factory: Callable[[], str]
) -> None:
    tenant = stages(namespace_factory())  # the defaults: cluster-config, flux-system
    platform = stages(namespace_factory(), platform=True)
    elsewhere = namespace_factory()
    repo = tenant.repo
    sha = repo.push({"app/anywhere.yaml": configmap("anywhere", "1", elsewhere)})

    refused_configs = tenant.configs
    refused_configs.create("grab", app_spec(repo.url, "cluster"))
    stalled = refused_configs.stalled("grab")
    assert current(stalled), "the refusal is about the current spec"
    message = condition(stalled, "Stalled")["message"]
    assert "spec.scope" in message and "\n" not in message, message
    assert condition(stalled)["status"] == "False"
    assert stalled["status"].get("complianceState") != "Compliant"
    assert refused_configs.cluster_role_binding() is None, "no cluster-admin for a tenant"
    assert refused_configs.kustomizations() == {}, "nothing applies as flux-applier"
    assert refused_configs.configmaps(elsewhere) == {}

    # The same FluxConfig where the platform lists the namespace: cluster-admin, and it writes anywhere.
    allowed: FluxConfigs = platform.configs
    allowed.create("grab", app_spec(repo.url, "cluster"))
    allowed.compliant("grab", sha)
    binding = allowed.cluster_role_binding()
    assert binding is not None and binding.role_ref.name == "cluster-admin"
    assert [(s.name, s.namespace) for s in binding.subjects] == [(APPLIER, platform.namespace)]
    assert allowed.configmaps(elsewhere) == {"anywhere": {"value": "1"}}
    assert refused_configs.cluster_role_binding() is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"namespace": "somewhere-else"}, "spec.namespace"),
        ({"gitRepository": {"url": "ftp://git.example.invalid/repo", "repositoryRef": {"branch": "main"}}}, "url"),
        ({"kustomizations": {"k" * 60: {"path": "./app"}}}, "63"),
        (
            {
                "gitRepository": {
                    "url": "https://git.example.invalid/repo",
                    "repositoryRef": {"branch": "main"},
                    "httpsUser": "someone",
                }
            },
            "httpsUser",
        ),
        (
            {
                "gitRepository": {
                    "url": "ssh://git@git.example.invalid/repo",
                    "repositoryRef": {"branch": "main"},
                    "sshKnownHosts": "not base64 at all!",
                }
            },
            "sshKnownHosts",
        ),
        ({"kustomizations": {"app": {"path": "./app", "dependsOn": ["nowhere"]}}}, "dependsOn"),
        (
            {
                "kustomizations": {
                    "x": {"path": "./app", "dependsOn": ["y"]},
                    "y": {"path": "./app", "dependsOn": ["x"]},
                }
            },
            "cycle",
        ),
    ],
    ids=[
        "namespace-differs",
        "url-scheme",
        "name-too-long",
        "user-without-key",
        "known-hosts-not-base64",
        "unknown-dependency",
        "dependency-cycle",
    ],
)
def test_an_invalid_spec_is_stalled_by_the_controller_naming_the_field(
    stages: Stages, namespace: str, change: dict[str, Any], field: str
) -> None:
    stage = stages(namespace)
    configs = stage.configs
    stage.push_app()
    configs.create("invalid", {**app_spec(stage.repo.url), **change})
    stalled = configs.stalled("invalid")
    assert current(stalled)
    message = condition(stalled, "Stalled")["message"]
    assert field in message and "\n" not in message, message
    assert condition(stalled)["status"] == "False"
    assert configs.git_repository("invalid") is None and configs.kustomizations() == {}, "nothing made"
