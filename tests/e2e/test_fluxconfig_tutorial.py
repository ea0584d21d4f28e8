"""Azure's GitOps tutorial end to end: FluxConfig ``cluster-config`` (scope cluster) in ``cluster-config``.

The repository holds the seed's fixed manifests (examples/fixed-helmrelease.yaml): Namespace ``nginx``
and the HelmRepository under ./infrastructure, the HelmRelease under ./apps/staging, both in
``cluster-config`` with ``targetNamespace: nginx``. The chart is a small real one, packaged by helm and
served by a real chart repository; git is real smart HTTP. The names are Azure's fixed ones, so this
module owns the namespace ``cluster-config`` and empties it afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fluxwarden.controllers.helm.api import HELM_RELEASE
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.source.api import GIT_REPOSITORY, HELM_CHART, HELM_REPOSITORY
from tests.support import helm_charts
from tests.support.fluxconfig import (
    APPLIER,
    FIELD_MANAGER,
    FINALIZER,
    FLUX_CONFIG,
    ConfigRepo,
    ControllerSets,
    FluxConfigs,
    condition,
    controllers,
    entry_messages,
    entry_status,
    managed_labels,
    owned_by,
    recording,
    shared_labels,
)
from tests.support.git_server import GitHttpServer
from tests.support.helm_repo import HelmRepoServer
from tests.support.namespaces import ensure_namespace

CONFIG = "cluster-config"  # Azure's default configuration namespace, and the tutorial's FluxConfig
TARGET = "nginx"
RELEASE = f"{TARGET}-nginx"  # Flux's release name: <targetNamespace>-<name>

__all__ = ["controllers"]  # fixtures


def namespace_yaml(name: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"


def in_config(api_version: str, kind: str, name: str, spec: dict[str, Any]) -> str:
    """A manifest of an object in ``cluster-config``, as the tutorial's repository holds it."""
    meta = {"name": name, "namespace": CONFIG}
    return yaml.safe_dump({"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec}, sort_keys=False)


def helm_repository_yaml(url: str) -> str:
    return in_config("source.toolkit.fluxcd.io/v1", "HelmRepository", "bitnami", {"interval": "10m", "url": url})


def helm_release_yaml(greeting: str, fail: bool = False) -> str:
    source = {"kind": "HelmRepository", "name": "bitnami", "namespace": CONFIG}
    spec = {
        "interval": "5m",
        "timeout": "60s",
        "targetNamespace": TARGET,
        "values": {"greeting": greeting, "fail": fail},
        "chart": {"spec": {"chart": "nginx", "sourceRef": source}},
    }
    return in_config("helm.toolkit.fluxcd.io/v2", "HelmRelease", "nginx", spec)


GUARD = '{{ if .Values.fail }}{{ fail "values.fail is set: refusing to render" }}{{ end }}\n'
BROKEN = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Valid_Name\n  namespace: nginx\ndata: {a: b}\n"


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HelmRepoServer]:
    """A real chart repository with a chart ``nginx`` (two ConfigMaps: a bare API server runs no pods)."""
    with HelmRepoServer(tmp_path_factory.mktemp("tutorial-charts")) as repo:
        templates = {**helm_charts.configmaps(2), "guard.yaml": GUARD}
        repo.add_chart("nginx", "1.0.0", {"greeting": "hello"}, templates=templates)
        yield repo


CLEARED = (FLUX_CONFIG, KUSTOMIZATION, HELM_RELEASE, HELM_CHART, HELM_REPOSITORY, GIT_REPOSITORY)


@pytest.fixture
def cluster_config(admin_api: client.ApiClient, controllers: ControllerSets) -> Iterator[FluxConfigs]:
    """The fixed namespace ``cluster-config`` with this module's controllers; emptied afterwards.

    Teardown deletes the FluxConfig while the controllers still run, then strips what is left (the
    apps Kustomization does not prune, so its HelmRelease stays) so the next module starts clean.
    """
    ensure_namespace(admin_api, CONFIG)
    configs = FluxConfigs(admin_api, CONFIG)
    for resource in CLEARED:  # another module's leftovers in the fixed namespace (nothing finalizes them now)
        strip(configs, resource)
    controllers.run(CONFIG)
    yield configs
    with contextlib.suppress(AssertionError, ApiException):
        configs.remove(CONFIG, timeout=30)
    controllers.stop_all()
    for resource in CLEARED:
        strip(configs, resource)


def strip(configs: FluxConfigs, resource: Resource) -> None:
    """Delete every ``resource`` in the namespace, finalizers dropped (no controller runs any more)."""
    listed = configs.custom.list_namespaced_custom_object(
        resource.group, resource.version, configs.namespace, resource.plural
    )
    for item in listed["items"]:
        name = item["metadata"]["name"]
        with contextlib.suppress(ApiException):
            configs.patch(name, {"metadata": {"finalizers": None}}, resource)
            configs.delete(name, resource)


def tutorial_spec(url: str) -> dict[str, Any]:
    """What ``az k8s-configuration flux create -n cluster-config --scope cluster -u URL --branch main
    --kustomization name=infra path=./infrastructure prune=true --kustomization name=apps
    path=./apps/staging dependsOn=["infra"]`` makes, with short intervals for a test."""
    # timeout 20 s: with wait: true, apps waits that long on a HelmRelease still retrying a failed upgrade
    fast = {"syncIntervalInSeconds": 30, "retryIntervalInSeconds": 2, "timeoutInSeconds": 20}
    return {
        "scope": "cluster",
        "gitRepository": {
            "url": url,
            "repositoryRef": {"branch": "main"},
            "syncIntervalInSeconds": 2,
            "timeoutInSeconds": 30,
        },
        "kustomizations": {
            "infra": {"path": "./infrastructure", "prune": True, **fast},
            "apps": {"path": "./apps/staging", "dependsOn": ["infra"], **fast},
        },
    }


def transition(obj: dict[str, Any]) -> str:
    return str(condition(obj).get("lastTransitionTime"))


def test_the_azure_tutorial_end_to_end(
    cluster_config: FluxConfigs,
    git_server: GitHttpServer,
    charts: HelmRepoServer,
    admin_api: client.ApiClient,
    tmp_path: Path,
) -> None:
    configs = cluster_config
    repo = ConfigRepo(git_server, tmp_path, "tutorial")
    push = repo.push
    first = push(
        {
            "infrastructure/nginx-namespace.yaml": namespace_yaml(TARGET),
            "infrastructure/helmrepository.yaml": helm_repository_yaml(charts.url),
            "apps/staging/helmrelease.yaml": helm_release_yaml("hello"),
        }
    )

    with recording(admin_api, CONFIG, CONFIG) as seen:
        made = configs.create(CONFIG, tutorial_spec(repo.url))

        # --- what it makes ---
        infra = configs.child_ready(KUSTOMIZATION, "cluster-config-infra", first)
        apps = configs.child_ready(KUSTOMIZATION, "cluster-config-apps", first)
        source = configs.git_repository(CONFIG)
        assert source is not None
        labels = managed_labels(CONFIG, CONFIG)
        for obj in (source, infra, apps):
            assert labels.items() <= (obj["metadata"].get("labels") or {}).items(), obj["metadata"]
            assert owned_by(obj, made), obj["metadata"].get("ownerReferences")
            managers = {(m["manager"], m["operation"]) for m in obj["metadata"]["managedFields"]}
            assert (FIELD_MANAGER, "Apply") in managers, managers
        assert source["spec"]["url"] == repo.url
        assert source["spec"]["ref"] == {"branch": "main"}
        assert (source["spec"]["interval"], source["spec"]["timeout"]) == ("2s", "30s")
        assert source["status"]["artifact"]["revision"] == f"main@sha1:{first}"
        for obj, path in ((infra, "./infrastructure"), (apps, "./apps/staging")):
            spec = obj["spec"]
            assert spec["sourceRef"]["kind"] == "GitRepository" and spec["sourceRef"]["name"] == CONFIG, spec
            assert spec["path"] == path and spec["serviceAccountName"] == APPLIER
            assert (spec["interval"], spec["retryInterval"], spec["timeout"]) == ("30s", "2s", "20s")
            assert spec["wait"] is True
        assert infra["spec"]["prune"] is True and apps["spec"].get("prune", False) is False
        assert apps["spec"]["dependsOn"] == [{"name": "cluster-config-infra"}]
        assert "dependsOn" not in infra["spec"] or infra["spec"]["dependsOn"] == []
        assert transition(infra) <= transition(apps), "infra became Ready before apps"

        account = configs.service_account()
        assert account is not None and shared_labels(CONFIG).items() <= (account.metadata.labels or {}).items()
        binding = configs.cluster_role_binding()
        assert binding is not None, "ClusterRoleBinding flux-applier-cluster-config"
        assert shared_labels(CONFIG).items() <= (binding.metadata.labels or {}).items()
        assert (binding.role_ref.kind, binding.role_ref.name) == ("ClusterRole", "cluster-admin")
        assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [("ServiceAccount", APPLIER, CONFIG)]
        assert configs.role_binding() is None, "scope cluster makes no RoleBinding"

        # --- the HelmRelease installs into nginx as flux-applier ---
        release = configs.child_ready(HELM_RELEASE, "nginx")
        assert release["status"]["history"][0]["namespace"] == TARGET
        assert set(configs.configmaps(TARGET)) == {f"{RELEASE}-0", f"{RELEASE}-1"}
        assert configs.configmaps(TARGET)[f"{RELEASE}-0"]["values"] == '{"fail":false,"greeting":"hello"}'
        storage = client.CoreV1Api(admin_api).list_namespaced_secret(TARGET).items
        assert [s.metadata.name for s in storage] == [f"sh.helm.release.v1.{RELEASE}.v1"]

        # --- Pending, then Compliant ---
        done = configs.compliant(CONFIG, first)
        # asserted at the end, so that a flap here does not hide what the rest of the scenario finds
        first_states, first_story = [s for s in seen.states() if s not in ("-", "Unknown")], seen.explain()
    status = done["status"]
    assert status["sourceSyncedCommitId"] == f"main@sha1:{first}"
    assert status["provisioningState"] == "Succeeded"
    assert condition(done)["status"] == "True"
    assert done["metadata"]["finalizers"] == [FINALIZER]
    assert status["sourceUpdatedAt"] and status["statusUpdatedAt"]
    for kind, name in (
        ("GitRepository", CONFIG),
        ("Kustomization", "cluster-config-infra"),
        ("Kustomization", "cluster-config-apps"),
    ):
        assert entry_status(done, kind, name).get("complianceState") == "Compliant", (kind, name, status)
    helm_entry = entry_status(done, "HelmRelease", "nginx")
    assert helm_entry.get("complianceState") == "Compliant", status["statuses"]
    assert helm_entry.get("appliedBy") == {"name": "cluster-config-apps", "namespace": CONFIG}
    assert (helm_entry.get("helmReleaseProperties") or {}).get("lastRevisionApplied") == 1, helm_entry

    # --- a bad commit: Non-Compliant, naming the failure ---
    with recording(admin_api, CONFIG, CONFIG) as seen:
        bad = push({"infrastructure/broken.yaml": BROKEN})
        configs.wait(
            CONFIG,
            lambda o: (o.get("status") or {}).get("complianceState") == "Non-Compliant",
            "Non-Compliant after the bad commit",
        )
        failed = configs.wait(
            CONFIG,
            lambda o: (
                entry_status(o, "Kustomization", "cluster-config-infra").get("complianceState") == "Non-Compliant"
            ),
            "infra Non-Compliant in statuses[]",
        )
        messages = entry_messages(failed, "Kustomization", "cluster-config-infra")
        assert "Not_A_Valid_Name" in messages, entry_status(failed, "Kustomization", "cluster-config-infra")
        assert condition(failed)["status"] == "False"
        assert configs.git_repository(CONFIG)["status"]["artifact"]["revision"] == f"main@sha1:{bad}"  # type: ignore[index]

        # --- a fixed commit: Compliant again, at the fixed commit ---
        fixed = push(
            {"apps/staging/helmrelease.yaml": helm_release_yaml("fixed")}, delete=("infrastructure/broken.yaml",)
        )
        again = configs.compliant(CONFIG, fixed)
        states = seen.states()
    assert states[-1] == "Compliant" and "Non-Compliant" in states, states
    assert states.index("Non-Compliant") < len(states) - 1
    assert again["status"]["sourceSyncedCommitId"] == f"main@sha1:{fixed}"
    assert condition(again)["status"] == "True"
    upgraded = configs.child_ready(HELM_RELEASE, "nginx")
    assert upgraded["status"]["history"][0]["version"] == 2
    assert configs.configmaps(TARGET)[f"{RELEASE}-0"]["values"] == '{"fail":false,"greeting":"fixed"}'
    helm_entry = entry_status(again, "HelmRelease", "nginx")
    assert (helm_entry.get("helmReleaseProperties") or {}).get("lastRevisionApplied") == 2, helm_entry

    # --- a chart value that fails: the HelmRelease's failure reaches the FluxConfig (appliedBy apps) ---
    refused = push({"apps/staging/helmrelease.yaml": helm_release_yaml("fixed", fail=True)})
    failing = configs.wait(
        CONFIG,
        lambda o: entry_status(o, "HelmRelease", "nginx").get("complianceState") == "Non-Compliant",
        "the HelmRelease Non-Compliant in statuses[]",
    )
    assert failing["status"]["complianceState"] == "Non-Compliant"
    helm_entry = entry_status(failing, "HelmRelease", "nginx")
    helm_messages = entry_messages(failing, "HelmRelease", "nginx")
    assert "values.fail is set" in helm_messages, helm_entry
    properties = helm_entry.get("helmReleaseProperties") or {}
    assert properties.get("failureCount", 0) + properties.get("upgradeFailureCount", 0) >= 1, properties
    assert properties.get("lastRevisionApplied") == 2, "the failed upgrade made no revision"
    assert configs.configmaps(TARGET)[f"{RELEASE}-0"]["values"] == '{"fail":false,"greeting":"fixed"}'
    healed = push({"apps/staging/helmrelease.yaml": helm_release_yaml("healed")})
    assert refused != healed
    configs.compliant(CONFIG, healed)
    assert configs.configmaps(TARGET)[f"{RELEASE}-0"]["values"] == '{"fail":false,"greeting":"healed"}'

    # --- deleting the FluxConfig: the finalizer removes what it made; infra (prune) takes its objects ---
    configs.remove(CONFIG)
    configs.gone(GIT_REPOSITORY, CONFIG, timeout=30)  # deleted; source-controller's own finalizer ends it
    assert configs.kustomizations() == {}
    assert configs.cluster_role_binding() is None and configs.service_account() is None
    assert configs.object(HELM_REPOSITORY, "bitnami") is None, "pruned with infra"
    namespace = client.CoreV1Api(admin_api).read_namespace(TARGET)
    assert namespace.metadata.deletion_timestamp is not None, "pruned with infra (a bare API server never ends it)"
    assert configs.object(HELM_RELEASE, "nginx") is not None, "apps has prune: false, so its HelmRelease stays"
    assert first_states == ["Pending", "Compliant"], first_story
