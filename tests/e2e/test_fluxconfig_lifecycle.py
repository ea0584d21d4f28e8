"""A FluxConfig's life: defaults, a removed kustomization entry, suspend and resume, deletion
(a bare API server runs no garbage collector, so only the finalizer can clean up), and the
``use-managed-source`` patch for a chart kept in the configuration's own repository.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from fluxwarden.controllers.helm.api import HELM_RELEASE
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.source.api import GIT_REPOSITORY
from tests.support import helm_charts
from tests.support.fluxconfig import (
    APPLIER,
    FINALIZER,
    FLUX_CONFIG,
    MANAGED,
    SHARD,
    USE_MANAGED_SOURCE,
    ConfigRepo,
    ControllerSets,
    FluxConfigs,
    Stage,
    Stages,
    app_spec,
    condition,
    controllers,
    entry,
    entry_messages,
    entry_status,
    git_source,
    managed_labels,
    owned_by,
    recording,
    stages,
)
from tests.support.git_server import GitHttpServer
from tests.support.helm_repo import write_chart
from tests.support.tenants import configmap, grant
from tests.support.wait import until

__all__ = ["controllers", "stages"]  # fixtures


def kustomization_names(obj: dict[str, Any]) -> set[str]:
    return {s["name"] for s in obj["status"]["statuses"] if s["kind"] == "Kustomization"}


def test_defaults_make_one_kustomization_at_the_root_with_azures_intervals(stages: Stages, namespace: str) -> None:
    stage = stages(namespace)
    configs = stage.configs
    sha = stage.repo.push({"app.yaml": configmap("root", "1", namespace)})
    # no spec.namespace: metadata.namespace (the Azure CLI's --namespace sets both)
    spec = {"scope": "namespace", "gitRepository": {"url": stage.repo.url, "repositoryRef": {"branch": "main"}}}
    made = configs.create("plain", spec, spec_namespace=False)
    assert "namespace" not in made["spec"] or made["spec"]["namespace"] == namespace
    done = configs.compliant("plain", sha)
    assert set(configs.kustomizations()) == {"plain-kustomization-1"}
    kustomization = configs.kustomizations()["plain-kustomization-1"]
    spec = kustomization["spec"]
    assert spec["path"] in ("", "./"), spec
    assert (spec["interval"], spec["timeout"], spec["prune"], spec["wait"]) == ("600s", "600s", False, True), spec
    assert spec.get("force", False) is False and spec["serviceAccountName"] == APPLIER
    source = configs.git_repository("plain")
    assert source is not None and (source["spec"]["interval"], source["spec"]["timeout"]) == ("600s", "600s")
    assert "secretRef" not in source["spec"], "a public https repository needs no auth Secret"
    assert configs.secret("plain-auth") is None
    for obj in (source, kustomization):
        assert managed_labels("plain", namespace).items() <= obj["metadata"]["labels"].items()
        assert owned_by(obj, made)
    assert configs.configmaps() == {"root": {"value": "1"}}
    assert done["status"]["sourceSyncedCommitId"] == f"main@sha1:{sha}"


def test_removing_a_kustomization_entry_deletes_it_and_with_prune_its_objects(stages: Stages, namespace: str) -> None:
    stage = stages(namespace)
    configs = stage.configs
    sha = stage.repo.push({f"{x}/cm.yaml": configmap(f"cm-{x}", "1", namespace) for x in ("a", "b", "c")})
    entries = {"a": entry("./a", prune=True), "b": entry("./b", prune=True), "c": entry("./c", prune=False)}
    configs.create("parts", {**app_spec(stage.repo.url), "kustomizations": entries})
    first = configs.compliant("parts", sha)
    assert set(configs.configmaps()) == {"cm-a", "cm-b", "cm-c"}
    assert kustomization_names(first) == {"parts-a", "parts-b", "parts-c"}
    kept_version = configs.kustomization("parts", "a")["metadata"]["uid"]  # type: ignore[index]

    edited = configs.patch("parts", {"spec": {"kustomizations": {"b": None, "c": None}}})
    assert set(edited["spec"]["kustomizations"]) == {"a"}
    configs.gone(KUSTOMIZATION, "parts-b")
    configs.gone(KUSTOMIZATION, "parts-c")
    until(configs.configmaps, lambda cms: "cm-b" not in cms, what="cm-b pruned with its Kustomization")
    after = configs.compliant("parts", sha)
    assert after["status"]["observedGeneration"] == edited["metadata"]["generation"]
    assert set(configs.configmaps()) == {"cm-a", "cm-c"}, "prune: false leaves cm-c where it was"
    assert set(configs.kustomizations()) == {"parts-a"}
    assert configs.kustomization("parts", "a")["metadata"]["uid"] == kept_version  # type: ignore[index]
    assert kustomization_names(after) == {"parts-a"}


def test_deleting_the_fluxconfig_deletes_everything_it_made(
    stages: Stages, namespace_factory: Callable[[], str]
) -> None:
    stage = stages(namespace_factory(), platform=True)
    configs, platform, elsewhere = stage.configs, stage.namespace, namespace_factory()
    sha = stage.repo.push(
        {
            "app/here.yaml": configmap("here", "1", platform),
            "app/there.yaml": configmap("there", "1", elsewhere),
            "more/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n",
        }
    )
    # The plain HTTP server takes any credentials: enough to make the controller write an auth Secret.
    configs.protected_settings("doomed-protected", {"httpsKey": "not-checked-by-this-server"})
    configs.create(
        "doomed",
        {
            "scope": "cluster",
            "gitRepository": git_source(stage.repo.url, httpsUser="someone"),
            "configurationProtectedSettingsRef": {"name": "doomed-protected"},
            "kustomizations": {"app": entry("./app", prune=True), "more": entry("./more", dependsOn=["app"])},
        },
    )
    done = configs.compliant("doomed", sha)
    assert done["metadata"]["finalizers"] == [FINALIZER]
    assert configs.secret("doomed-auth") is not None
    assert configs.git_repository("doomed")["spec"]["secretRef"] == {"name": "doomed-auth"}  # type: ignore[index]
    assert configs.cluster_role_binding() is not None and configs.service_account() is not None
    assert configs.configmaps(elsewhere) == {"there": {"value": "1"}} and "here" in configs.configmaps()

    with recording(configs.api, platform, "doomed") as seen:
        configs.delete("doomed")
        configs.gone(FLUX_CONFIG, "doomed", timeout=90)
    assert "Deleting" in [s.provisioning for s in seen.seen], seen.explain()
    configs.gone(GIT_REPOSITORY, "doomed", timeout=30)  # deleted; source-controller's own finalizer ends it
    assert configs.kustomizations() == {}
    assert configs.secret("doomed-auth") is None
    assert configs.service_account() is None
    assert configs.cluster_role_binding() is None
    assert configs.role_binding() is None
    assert configs.configmaps(elsewhere) == {} and "here" not in configs.configmaps(), "pruned as the applier"
    assert configs.secret("doomed-protected") is not None, "the user's Secret is not the controller's to delete"


def test_suspend_suspends_every_child_and_resume_applies_what_came_meanwhile(stages: Stages, namespace: str) -> None:
    stage = stages(namespace)
    configs = stage.configs
    stage.app("pausable")

    configs.patch("pausable", {"spec": {"suspend": True}})
    suspended = configs.state("pausable", "Suspended")
    assert condition(suspended).get("status") != "True", "Ready is True only when Compliant"
    assert configs.git_repository("pausable")["spec"]["suspend"] is True  # type: ignore[index]
    assert configs.kustomization("pausable", "app")["spec"]["suspend"] is True  # type: ignore[index]

    second = stage.push_app("2")
    configs.patch("pausable", {"spec": {"suspend": False}})
    configs.compliant("pausable", second)
    assert configs.git_repository("pausable")["spec"].get("suspend", False) is False  # type: ignore[index]
    assert configs.kustomization("pausable", "app")["spec"].get("suspend", False) is False  # type: ignore[index]
    assert configs.configmaps() == {"app": {"value": "2"}}


def test_a_helmrelease_asking_for_the_managed_source_gets_the_configs_repository(
    stages: Stages, namespace: str, tmp_path: Path
) -> None:
    stage = stages(namespace)
    configs = stage.configs
    chart = write_chart(
        tmp_path / "chart-src", "hello", "0.1.0", {"greeting": "from-git"}, templates=helm_charts.configmaps(1)
    )
    files = {f"charts/hello/{p.relative_to(chart)}": p.read_text() for p in chart.rglob("*") if p.is_file()}
    release = f"""\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: hello
  namespace: {namespace}
  annotations:
    {USE_MANAGED_SOURCE}: "true"
spec:
  interval: 10m
  timeout: 60s
  chart:
    spec:
      chart: ./charts/hello
      sourceRef:
        kind: GitRepository
        name: placeholder
"""
    sha = stage.repo.push({**files, "apps/release.yaml": release})
    configs.create("charted", {**app_spec(stage.repo.url), "kustomizations": {"apps": entry("./apps")}})
    done = configs.compliant("charted", sha, timeout=120)
    applied = configs.child_ready(HELM_RELEASE, "hello")
    assert applied["spec"]["chart"]["spec"]["sourceRef"]["kind"] == "GitRepository"
    assert applied["spec"]["chart"]["spec"]["sourceRef"]["name"] == "charted"
    assert configs.configmaps()["hello-0"]["values"] == '{"greeting":"from-git"}'
    assert entry_status(done, "HelmRelease", "hello").get("appliedBy") == {
        "name": "charted-apps",
        "namespace": namespace,
    }
    assert configs.object(GIT_REPOSITORY, "placeholder") is None


def test_wait_for_reconciliation_holds_creating_until_compliant_or_the_wait_runs_out(
    stages: Stages, namespace: str
) -> None:
    stage = stages(namespace)
    configs = stage.configs
    sha = stage.push_app()
    waiting = {"waitForReconciliation": True, "reconciliationWaitDuration": "PT10M"}
    with recording(configs.api, namespace, "patient") as seen:
        configs.create("patient", {**app_spec(stage.repo.url), **waiting})
        done = configs.compliant("patient", sha)
    assert done["status"]["provisioningState"] == "Succeeded"
    provisioning = [s.provisioning for s in seen.seen if s.provisioning]
    assert provisioning[0] == "Creating" and provisioning[-1] == "Succeeded", seen.explain()
    first_succeeded = next(s for s in seen.seen if s.provisioning == "Succeeded")
    assert first_succeeded.compliance == "Compliant", "Creating until the first Compliant"
    assert set(provisioning) == {"Creating", "Succeeded"}, provisioning

    # A path that is not there never becomes Compliant: after the wait, Failed, saying why.
    hopeless = {"kustomizations": {"app": entry("./not-there")}, **waiting, "reconciliationWaitDuration": "PT3S"}
    configs.create("hopeless", {**app_spec(stage.repo.url), **hopeless})
    failed = configs.provisioning("hopeless", "Failed", timeout=45)
    message = failed["status"].get("errorMessage") or ""
    assert "reconciliationWaitDuration" in message and "not-there" in message, failed["status"]
    assert failed["status"]["complianceState"] == "Non-Compliant"


def test_two_configs_share_flux_applier_and_the_last_one_takes_it_away(
    stages: Stages, namespace_factory: Callable[[], str]
) -> None:
    stage = stages(namespace_factory(), platform=True)
    configs, platform, url = stage.configs, stage.namespace, stage.repo.url
    sha = stage.repo.push({"a/cm.yaml": configmap("a", "1", platform), "b/cm.yaml": configmap("b", "1", platform)})
    configs.create("wide", {**app_spec(url, "cluster"), "kustomizations": {"a": entry("./a")}})
    configs.create("narrow", {**app_spec(url), "kustomizations": {"b": entry("./b")}})
    configs.compliant("wide", sha)
    configs.compliant("narrow", sha)
    assert configs.cluster_role_binding() is not None and configs.role_binding() is not None
    account = configs.service_account()
    assert account is not None

    configs.remove("wide")
    assert configs.cluster_role_binding() is None, "no FluxConfig of scope cluster is left to use it"
    kept = configs.service_account()
    assert kept is not None and kept.metadata.uid == account.metadata.uid, "narrow still applies as flux-applier"
    assert configs.role_binding() is not None
    # narrow keeps working as flux-applier with its namespace rights: a new commit is applied.
    second = stage.repo.push({"b/cm.yaml": configmap("b", "2", platform)})
    configs.compliant("narrow", second)
    assert configs.configmaps()["b"] == {"value": "2"}

    configs.remove("narrow")
    assert configs.service_account() is None and configs.role_binding() is None


def test_an_edited_entry_reaches_its_kustomization(stages: Stages, namespace: str) -> None:
    stage = stages(namespace)
    configs = stage.configs
    template = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: "${{greeting}}"\n'
    files = {"one/cm.yaml": template.format(name="from-one"), "two/cm.yaml": template.format(name="from-two")}
    sha = stage.repo.push(files)
    first_entry = entry("./one", prune=True, postBuild={"substitute": {"greeting": "hello"}})
    configs.create("edited", {**app_spec(stage.repo.url), "kustomizations": {"app": first_entry}})
    configs.compliant("edited", sha)
    assert configs.configmaps() == {"from-one": {"value": "hello"}}
    first = configs.kustomization("edited", "app")
    assert first is not None and first["spec"]["postBuild"] == {"substitute": {"greeting": "hello"}}

    change = {"path": "./two", "force": True, "postBuild": {"substitute": {"greeting": "bye"}}}
    edited = configs.patch("edited", {"spec": {"kustomizations": {"app": change}}})
    done = configs.compliant("edited", sha)
    assert done["status"]["observedGeneration"] == edited["metadata"]["generation"]
    until(configs.configmaps, lambda cms: cms == {"from-two": {"value": "bye"}}, what="./two applied, ./one pruned")
    spec = configs.kustomization("edited", "app")["spec"]  # type: ignore[index]
    assert (spec["path"], spec["force"], spec["postBuild"]) == ("./two", True, {"substitute": {"greeting": "bye"}})


def test_a_hand_edit_or_deletion_of_a_child_is_repaired(stages: Stages, namespace: str) -> None:
    stage = stages(namespace)
    configs = stage.configs
    sha = stage.app("steady")

    configs.patch("steady", {"spec": {"url": "http://127.0.0.1:9/elsewhere.git"}}, GIT_REPOSITORY)
    configs.patch("steady-app", {"spec": {"path": "./elsewhere"}}, KUSTOMIZATION)
    until(
        lambda: (configs.git_repository("steady"), configs.kustomization("steady", "app")),
        lambda pair: (
            pair[0] is not None
            and pair[0]["spec"]["url"] == stage.repo.url
            and pair[1] is not None
            and pair[1]["spec"]["path"] == "./app"
        ),
        timeout=30,
        what="the hand edits repaired",
    )
    before = configs.kustomization("steady", "app")
    assert before is not None
    configs.delete("steady-app", KUSTOMIZATION)  # prune is off: its ConfigMap stays
    remade = until(
        lambda: configs.kustomization("steady", "app"),
        lambda k: k is not None and k["metadata"]["uid"] != before["metadata"]["uid"],
        timeout=30,
        what="steady-app made again",
    )
    assert remade is not None and remade["spec"]["path"] == "./app"
    configs.compliant("steady", sha)
    assert configs.configmaps() == {"app": {"value": "1"}}


def test_a_users_objects_of_the_same_name_are_never_taken_over_or_deleted(stages: Stages, namespace: str) -> None:
    stage = stages(namespace)
    configs = stage.configs
    sha = stage.push_app()
    # The platform made flux-applier itself; a user made a GitRepository called "taken".
    platform_account = configs.core.create_namespaced_service_account(namespace, {"metadata": {"name": APPLIER}})
    grant(configs.api, namespace, namespace, binding="platform-applier")  # the platform binds its rights
    users = configs.custom.create_namespaced_custom_object(
        GIT_REPOSITORY.group, GIT_REPOSITORY.version, namespace, GIT_REPOSITORY.plural,
        {"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository", "metadata": {"name": "taken"},
         "spec": {"url": stage.repo.url, "interval": "10m", "ref": {"branch": "main"}}},
    )  # fmt: skip
    spec = app_spec(stage.repo.url)
    configs.create("taken", spec)
    configs.create("fine", spec)

    # Not Stalled: the name may be freed, so it is looked at again (Ready False, AlreadyExists).
    taken = configs.ready_reason("taken", "AlreadyExists")
    message = condition(taken)["message"]
    assert f"GitRepository {namespace}/taken" in message and "\n" not in message, message
    assert taken["status"]["provisioningState"] == "Failed" and taken["status"]["errorMessage"] == message
    fine = configs.compliant("fine", sha)
    assert "uses the platform's ServiceAccount" in condition(fine)["message"], "and makes no binding of its own"
    assert configs.role_binding() is None
    assert configs.kustomizations().keys() == {"fine-app"}, "the stalled config made no Kustomization"
    live = configs.git_repository("taken")
    assert live is not None and live["metadata"]["generation"] == users["metadata"]["generation"], "spec untouched"
    assert live["spec"] == users["spec"] and MANAGED not in (live["metadata"].get("labels") or {})
    account = configs.service_account()
    assert account is not None and account.metadata.uid == platform_account.metadata.uid
    assert MANAGED not in (account.metadata.labels or {}), "the platform's applier is left as it is"

    for name in ("taken", "fine"):
        configs.remove(name)
    kept = configs.git_repository("taken")
    assert kept is not None and kept["metadata"]["uid"] == users["metadata"]["uid"], "the user's object stays"
    left = configs.service_account()
    assert left is not None and left.metadata.uid == platform_account.metadata.uid, "the platform's applier stays"
    configs.gone(GIT_REPOSITORY, "fine", timeout=30)  # deleted; source-controller's own finalizer ends it


def test_a_kustomization_applied_by_one_it_made_counts_toward_compliance(stages: Stages, namespace: str) -> None:
    stage = stages(namespace)
    configs = stage.configs

    def nested(path: str) -> str:
        return f"""\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: nested
  namespace: {namespace}
spec:
  interval: 10m
  retryInterval: 2s
  path: {path}
  prune: true
  sourceRef:
    kind: GitRepository
    name: parent
"""

    sha = stage.repo.push({"clusters/nested.yaml": nested("./apps"), "apps/cm.yaml": configmap("leaf", "1", namespace)})
    clusters = {"clusters": entry("./clusters", timeoutInSeconds=10)}
    configs.create("parent", {**app_spec(stage.repo.url), "kustomizations": clusters})
    done = configs.compliant("parent", sha)
    nested_entry = entry_status(done, "Kustomization", "nested")
    assert nested_entry.get("appliedBy") == {"name": "parent-clusters", "namespace": namespace}, done["status"][
        "statuses"
    ]
    assert nested_entry.get("complianceState") == "Compliant"
    assert configs.configmaps() == {"leaf": {"value": "1"}}

    # The nested one fails: the FluxConfig is Non-Compliant, and its statuses[] entry says why.
    broken = stage.repo.push({"clusters/nested.yaml": nested("./missing")})
    failed = configs.wait(
        "parent",
        lambda o: (
            entry_status(o, "Kustomization", "nested").get("complianceState") == "Non-Compliant"
            and o["status"].get("sourceSyncedCommitId") == f"main@sha1:{broken}"
        ),
        "the nested Kustomization Non-Compliant",
    )
    assert failed["status"]["complianceState"] == "Non-Compliant"
    messages = entry_messages(failed, "Kustomization", "nested")
    assert "./missing" in messages, messages
    # wait: true makes parent-clusters wait (timeoutInSeconds) on the failing one before it applies the fix
    fixed = stage.repo.push({"clusters/nested.yaml": nested("./apps")})
    configs.compliant("parent", fixed)


def test_a_deleted_applier_binding_comes_back_and_the_manager_is_ready(
    stages: Stages, namespace_factory: Callable[[], str]
) -> None:
    stage = stages(namespace_factory(), platform=True)
    configs = stage.configs
    stage.app("bound", "cluster")
    # every informer listed and watching, the cluster-scoped ones too (what /readyz reports)
    until(stage.running.manager.synced, bool, timeout=30, what="the manager synced (readyz)")

    binding = configs.cluster_role_binding()
    assert binding is not None
    configs.rbac.delete_cluster_role_binding(binding.metadata.name)
    back = until(
        configs.cluster_role_binding,
        lambda b: b is not None and b.metadata.uid != binding.metadata.uid,
        timeout=30,
        what="ClusterRoleBinding flux-applier-<ns> made again",
    )
    assert back is not None and back.role_ref.name == "cluster-admin"
    account = configs.service_account()
    assert account is not None
    configs.core.delete_namespaced_service_account(APPLIER, stage.namespace)
    again = until(
        configs.service_account,
        lambda a: a is not None and a.metadata.uid != account.metadata.uid,
        timeout=30,
        what="flux-applier made again",
    )
    assert again is not None


def test_a_sharded_config_passes_its_shard_on_and_that_shard_runs_it_all(
    controllers: ControllerSets, git_server: GitHttpServer, admin_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    shard = f"fc-{uuid.uuid4().hex[:8]}"
    running = controllers.run(None, shard=shard)  # every namespace, only objects labelled with this shard
    stage = Stage(running, FluxConfigs(admin_api, namespace), ConfigRepo(git_server, tmp_path))
    stage.app("sharded", labels={SHARD: shard})
    configs = stage.configs
    for obj in (configs.git_repository("sharded"), configs.kustomization("sharded", "app")):
        assert obj is not None and obj["metadata"]["labels"][SHARD] == shard, obj
    assert configs.configmaps() == {"app": {"value": "1"}}


def test_a_config_deleted_while_the_controller_is_down_is_cleaned_up_when_it_returns(
    controllers: ControllerSets, stages: Stages, namespace: str
) -> None:
    stage = stages(namespace)
    configs = stage.configs
    stage.app("orphan", prune=True)
    controllers.stop(stage.running)
    configs.delete("orphan")
    waiting = configs.get("orphan")
    assert waiting["metadata"]["deletionTimestamp"] and waiting["metadata"]["finalizers"] == [FINALIZER]

    controllers.run(namespace)
    configs.gone(FLUX_CONFIG, "orphan")
    configs.gone(GIT_REPOSITORY, "orphan", timeout=30)  # deleted; source-controller's own finalizer ends it
    assert configs.kustomizations() == {}
    assert configs.configmaps() == {}, "pruned as the applier before the applier went"
    assert configs.service_account() is None and configs.role_binding() is None


def test_two_configs_whose_kustomization_names_collide_do_not_fight(stages: Stages, namespace: str) -> None:
    stage = stages(namespace)
    configs, url = stage.configs, stage.repo.url
    sha = stage.repo.push(
        {"one/cm.yaml": configmap("one", "1", namespace), "two/cm.yaml": configmap("two", "1", namespace)}
    )
    # "a" + "b-c" and "a-b" + "c" both make Kustomization "a-b-c"
    configs.create("a", {**app_spec(url), "kustomizations": {"b-c": entry("./one")}})
    configs.compliant("a", sha)
    configs.create("a-b", {**app_spec(url), "kustomizations": {"c": entry("./two")}})
    refused = configs.ready_reason("a-b", "AlreadyExists")
    assert f"Kustomization {namespace}/a-b-c" in condition(refused)["message"], condition(refused)
    owner = configs.kustomization("a", "b-c")
    assert owner is not None
    assert owner["metadata"]["labels"]["clusterconfig.azure.com/name"] == "a" and owner["spec"]["path"] == "./one"
    # a's own reconcile still holds it as it was: no tug of war between the two
    configs.handled("a")
    again = configs.kustomization("a", "b-c")
    assert again is not None and again["metadata"]["generation"] == owner["metadata"]["generation"]
    assert configs.compliant("a", sha) and configs.configmaps() == {"one": {"value": "1"}}


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {namespace}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: registry.example/web:1.0}}]
"""


def test_a_new_revision_is_pending_until_it_is_applied_and_healthy(stages: Stages, namespace: str) -> None:
    stage = stages(namespace)
    configs = stage.configs
    stage.app("slow")

    with recording(configs.api, namespace, "slow") as seen:
        # a bare API server runs no Deployment controller: the Deployment stays unavailable until the test says
        second = stage.repo.push({"app/web.yaml": DEPLOYMENT.format(namespace=namespace)})
        pending = configs.state("slow", "Pending", commit=second)
        assert condition(pending)["status"] != "True", "Ready is True only when Compliant"
        apps = client.AppsV1Api(configs.api)
        web = apps.read_namespaced_deployment("web", namespace)
        apps.patch_namespaced_deployment_status(
            "web",
            namespace,
            {"status": {"observedGeneration": web.metadata.generation, "replicas": 1, "updatedReplicas": 1,
                        "readyReplicas": 1, "availableReplicas": 1,
                        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}},
        )  # fmt: skip
        configs.compliant("slow", second)
    assert seen.states() == ["Compliant", "Pending", "Compliant"], seen.explain()
