"""Self-healing on a real API server: drift repaired, nothing written without drift, exact inventory, secrets kept.

Every "nothing changed" assertion first proves that the reconcile it waited for ran: the
Kustomization's ``status.lastHandledReconcileAt`` carries the token the test requested.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.kustomize.kustomization import KustomizeOptions
from fluxwarden.controllers.source.api import GIT_REPOSITORY
from tests.support.git_server import GitHttpServer
from tests.support.kube import Kubectl
from tests.support.tenants import OWNER_NAME, SHARD, Tenant, bind, condition, configmap, grant, make_tenant
from tests.support.wait import until

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


@pytest.fixture(scope="module")
def drift_controllers(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source", "kustomize"), label_selector=f"{SHARD}=drift")


@pytest.fixture
def tenant(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    drift_controllers: Reconcilers,
) -> Tenant:
    return make_tenant(admin_api, namespace_factory, git_server, tmp_path, shard="drift")


@pytest.fixture
def shard_tenant(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    start_reconcilers: Callable[..., Reconcilers],
) -> Callable[..., tuple[Tenant, Reconcilers]]:
    """``shard_tenant(shard, **options)``: controllers of their own on ``shard``, and a tenant there."""

    def make(shard: str, **options: Any) -> tuple[Tenant, Reconcilers]:
        running = start_reconcilers(("source", "kustomize"), label_selector=f"{SHARD}={shard}", **options)
        return make_tenant(admin_api, namespace_factory, git_server, tmp_path / shard, shard=shard), running

    return make


def reconciled(tenant: Tenant, name: str, ready: bool = True) -> dict[str, Any]:
    """Request a reconcile of Kustomization ``name`` and wait until it was handled (and Ready, if asked)."""
    token = f"t-{uuid.uuid4().hex[:8]}"
    tenant.patch(name, {"metadata": {"annotations": {REQUESTED_AT: token}}})

    def done(obj: dict[str, Any]) -> bool:
        handled = (obj.get("status") or {}).get("lastHandledReconcileAt") == token
        return handled and (not ready or condition(obj).get("status") == "True")

    return until(lambda: tenant.get(name), done, timeout=60, what=f"reconcile {token} of {name}")


def versions(tenant: Tenant, namespace: str) -> dict[str, str]:
    return {
        c.metadata.name: c.metadata.resource_version
        for c in tenant.core.list_namespaced_config_map(namespace).items
        if c.metadata.name != "kube-root-ca.crt"
    }


def change_events(tenant: Tenant) -> list[str]:
    return [
        e.message or ""
        for e in tenant.core.list_namespaced_event(tenant.config).items
        if e.reason == "ReconciliationSucceeded" and e.involved_object.kind == "Kustomization"
    ]


def test_hand_edit_reverted_deleted_object_recreated_and_no_drift_writes_nothing(tenant: Tenant) -> None:
    sha = tenant.push(
        {
            "voting/settings.yaml": configmap("settings", "from-git"),
            "voting/other.yaml": configmap("untouched", "1"),
            "redis/config.yaml": configmap("config", "from-git"),
        }
    )
    tenant.git_repository()
    tenant.kustomization("voting", path="./voting", targetNamespace=tenant.target)
    tenant.kustomization("redis", path="./redis", targetNamespace=tenant.target)
    tenant.ready("voting", sha)
    tenant.ready("redis", sha)

    # Hand edits: a value changed and an owner label removed (so a label-selected list misses it),
    # and another object deleted.
    tenant.core.patch_namespaced_config_map(
        "settings",
        tenant.target,
        {"data": {"value": "edited-by-hand"}, "metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": None}}},
    )
    tenant.core.delete_namespaced_config_map("config", tenant.target)
    untouched_before = versions(tenant, tenant.target)["untouched"]

    reconciled(tenant, "voting")
    reconciled(tenant, "redis")
    maps = tenant.configmaps(tenant.target)
    assert maps["settings"] == {"value": "from-git"}, "the hand edit is reverted"
    assert maps["config"] == {"value": "from-git"}, "the deleted object is recreated"
    labels = tenant.core.read_namespaced_config_map("settings", tenant.target).metadata.labels
    assert labels["kustomize.toolkit.fluxcd.io/name"] == "voting"
    assert versions(tenant, tenant.target)["untouched"] == untouched_before, "an object without drift is not written"
    events = change_events(tenant)
    assert any(f"ConfigMap/{tenant.target}/settings configured" in m for m in events), events
    assert any(f"ConfigMap/{tenant.target}/config created" in m for m in events), events
    assert not any("untouched" in m for m in events if "settings configured" in m), "only what drifted is named"

    before, events_before = versions(tenant, tenant.target), len(change_events(tenant))
    voting = reconciled(tenant, "voting")
    reconciled(tenant, "redis")
    assert versions(tenant, tenant.target) == before, "a reconcile without drift writes no applied object"
    assert len(change_events(tenant)) == events_before, "and announces no change"
    assert voting["status"]["lastAppliedRevision"] == f"main@sha1:{sha}"


def test_drift_is_repaired_after_a_controller_restart(
    shard_tenant: Callable[..., tuple[Tenant, Reconcilers]], start_reconcilers: Callable[..., Reconcilers]
) -> None:
    """A new process has no memory of what it applied: it finds drift by dry-run, and still writes nothing else."""
    tenant, first = shard_tenant("drift-restart")
    sha = tenant.push({"apps/a.yaml": configmap("a", "1"), "apps/b.yaml": configmap("b", "1")})
    tenant.git_repository()
    tenant.kustomization("apps", path="./apps", targetNamespace=tenant.target)
    tenant.ready("apps", sha)
    first.stop()

    tenant.core.patch_namespaced_config_map("a", tenant.target, {"data": {"value": "edited"}})
    before = versions(tenant, tenant.target)
    start_reconcilers(("source", "kustomize"), label_selector=f"{SHARD}=drift-restart")
    reconciled(tenant, "apps")
    after = versions(tenant, tenant.target)
    assert tenant.configmaps(tenant.target)["a"] == {"value": "1"}
    assert after["b"] == before["b"], "the object without drift was not written"
    assert after["a"] != before["a"]


RBAC_ROLES = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: app_reader
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: "system:app:viewer"
rules: []
"""


def test_inventory_with_underscore_and_colon_names_is_pruned_exactly(tenant: Tenant) -> None:
    sha = tenant.push({"apps/roles.yaml": RBAC_ROLES, "apps/cm.yaml": configmap("stays", "1")})
    tenant.git_repository()
    tenant.kustomization("apps", path="./apps", targetNamespace=tenant.target)
    done = tenant.ready("apps", sha)
    ids = sorted(e["id"] for e in done["status"]["inventory"]["entries"])
    group = "rbac.authorization.k8s.io"
    assert ids == sorted(
        [
            f"{tenant.target}_app_reader_{group}_Role",
            f"{tenant.target}_system__app__viewer_{group}_Role",
            f"{tenant.target}_stays__ConfigMap",
        ]
    ), "ids are written as Flux writes them (':' as '__')"

    second = tenant.push(delete=("apps/roles.yaml",))
    tenant.patch("repo", {"metadata": {"annotations": {REQUESTED_AT: "drop-roles"}}}, GIT_REPOSITORY)
    tenant.ready("apps", second)
    rbac = client.RbacAuthorizationV1Api(tenant.api)
    names = {r.metadata.name for r in rbac.list_namespaced_role(tenant.target).items}
    assert "app_reader" not in names and "system:app:viewer" not in names, "both were pruned"
    assert "tenant-admin" in names, "a role the inventory never listed is kept"
    assert "stays" in tenant.configmaps(tenant.target)
    assert [e["id"] for e in tenant.get("apps")["status"]["inventory"]["entries"]] == [
        f"{tenant.target}_stays__ConfigMap"
    ]


def test_a_failed_prune_is_reported_and_keeps_the_object_in_the_inventory(tenant: Tenant) -> None:
    sha = tenant.push({"apps/a.yaml": configmap("a", "1"), "apps/b.yaml": configmap("b", "1", tenant.other)})
    # The applier may write to ``other`` for now; then the platform revokes it.
    grant(tenant.api, tenant.other, tenant.config, role="temp", binding="temp")
    rbac = client.RbacAuthorizationV1Api(tenant.api)
    tenant.git_repository()
    tenant.kustomization("apps", path="./apps")
    tenant.ready("apps", sha)
    rbac.delete_namespaced_role_binding("temp", tenant.other)

    second = tenant.push(delete=("apps/b.yaml",))
    tenant.patch("repo", {"metadata": {"annotations": {REQUESTED_AT: "drop-b"}}}, GIT_REPOSITORY)
    failed = tenant.failed("apps", "PruneFailed")
    message = condition(failed)["message"]
    assert f"ConfigMap/{tenant.other}/b" in message and "forbidden" in message
    ids = [e["id"] for e in failed["status"]["inventory"]["entries"]]
    assert f"{tenant.other}_b__ConfigMap" in ids, "what could not be pruned stays in the inventory"
    assert "b" in {c.metadata.name for c in tenant.core.list_namespaced_config_map(tenant.other).items}

    bind(tenant.api, tenant.other, tenant.config, role="temp", binding="temp")
    done = tenant.ready("apps", second, timeout=90)
    assert [e["id"] for e in done["status"]["inventory"]["entries"]] == [f"{tenant.config}_a__ConfigMap"]
    until(
        lambda: {c.metadata.name for c in tenant.core.list_namespaced_config_map(tenant.other).items},
        lambda names: "b" not in names,
        what="b pruned once allowed",
    )


SECRET_VALUE = "Sup3r$ecret Value!"  # not a valid label value: the API server's error echoes it


def test_a_secret_value_never_appears_in_status_events_or_logs(
    tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="fluxwarden")
    tenant.core.create_namespaced_secret(
        tenant.config, {"metadata": {"name": "vars"}, "stringData": {"token": SECRET_VALUE}}
    )
    leaky = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leaky\n  labels:\n"
        '    token: "${token}"\ndata:\n  value: "${token}"\n'
    )
    tenant.push({"apps/leaky.yaml": leaky})
    tenant.git_repository()
    tenant.kustomization(
        "apps",
        path="./apps",
        targetNamespace=tenant.target,
        postBuild={"substituteFrom": [{"kind": "Secret", "name": "vars"}]},
    )
    failed = tenant.failed("apps", "ReconciliationFailed")
    message = condition(failed)["message"]
    assert "Invalid value" in message and "***" in message, "the apply failed with the value echoed, masked"
    assert SECRET_VALUE not in json.dumps(failed["status"])
    reconciled(tenant, "apps", ready=False)  # a second failure, and its event, are masked too
    events = [f"{e.reason} {e.message}" for e in tenant.core.list_namespaced_event(tenant.config).items]
    assert events and not any(SECRET_VALUE in e for e in events)
    assert any("***" in e for e in events)
    assert SECRET_VALUE not in caplog.text
    obj = tenant.custom.get_namespaced_custom_object(
        KUSTOMIZATION.group, KUSTOMIZATION.version, tenant.config, KUSTOMIZATION.plural, "apps"
    )
    assert SECRET_VALUE not in json.dumps(obj)


def test_live_drift_repairs_a_deletion_and_an_edit_within_seconds_without_a_request(
    shard_tenant: Callable[..., tuple[Tenant, Reconcilers]],
) -> None:
    tenant, _ = shard_tenant("live", kustomize=KustomizeOptions(live_drift=True))
    sha = tenant.push({"apps/a.yaml": configmap("a", "1"), "apps/b.yaml": configmap("b", "1")})
    tenant.git_repository()
    tenant.kustomization("apps", path="./apps", targetNamespace=tenant.target, interval="1h")
    tenant.ready("apps", sha)
    handled = tenant.get("apps")["status"].get("lastHandledReconcileAt")

    started = time.monotonic()
    tenant.core.delete_namespaced_config_map("a", tenant.target)
    until(lambda: tenant.configmaps(tenant.target), lambda cms: "a" in cms, timeout=5, what="a recreated")
    recreated = time.monotonic() - started
    tenant.core.patch_namespaced_config_map("b", tenant.target, {"data": {"value": "edited"}})
    until(lambda: tenant.configmaps(tenant.target).get("b"), lambda d: d == {"value": "1"}, timeout=5,
          what="b reverted")  # fmt: skip
    assert recreated < 5
    # The owner label edited away takes the object out of the labelled watch: still found, still repaired.
    tenant.core.patch_namespaced_config_map("a", tenant.target, {"metadata": {"labels": {OWNER_NAME: None}}})
    until(
        lambda: tenant.core.read_namespaced_config_map("a", tenant.target).metadata.labels or {},
        lambda labels: labels.get(OWNER_NAME) == "apps",
        timeout=5,
        what="the owner label restored",
    )
    assert tenant.get("apps")["status"].get("lastHandledReconcileAt") == handled, "no reconcile was requested"

    before = versions(tenant, tenant.target)
    reconciled(tenant, "apps")
    assert versions(tenant, tenant.target) == before, "our own repairs did not set off further writes"


@pytest.mark.parametrize("verbs", [["get", "create", "patch"], ["create", "patch"]], ids=["no-list", "no-read"])
def test_drift_found_with_the_rights_a_tenant_has(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    drift_controllers: Reconcilers,
    verbs: list[str],
) -> None:
    """An applier that may not list (GETs instead) or not even read (apply blindly, compare versions)."""
    tenant = make_tenant(admin_api, namespace_factory, git_server, tmp_path, shard="drift")
    target = namespace_factory()
    rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs}
    grant(admin_api, target, tenant.config, rules=(rule,), role="narrow", binding="narrow")
    sha = tenant.push({"apps/a.yaml": configmap("a", "1"), "apps/b.yaml": configmap("b", "1")})
    tenant.git_repository()
    tenant.kustomization("apps", path="./apps", targetNamespace=target, prune=False)
    tenant.ready("apps", sha)
    tenant.core.patch_namespaced_config_map("a", target, {"data": {"value": "edited"}})
    reconciled(tenant, "apps")
    assert tenant.configmaps(target)["a"] == {"value": "1"}, "the edit is reverted"

    before, events_before = versions(tenant, target), len(change_events(tenant))
    reconciled(tenant, "apps")
    assert versions(tenant, target) == before, "no drift: nothing written"
    assert len(change_events(tenant)) == events_before, "and nothing announced as configured"


IMMUTABLE = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\nimmutable: true\ndata:\n  value: "{value}"\n'


def test_force_recreates_an_object_whose_immutable_field_changed(tenant: Tenant) -> None:
    first = tenant.push({"apps/frozen.yaml": IMMUTABLE.format(value="1")})
    tenant.git_repository()
    tenant.kustomization("apps", path="./apps", targetNamespace=tenant.target)
    tenant.ready("apps", first)
    uid = tenant.core.read_namespaced_config_map("frozen", tenant.target).metadata.uid

    second = tenant.push({"apps/frozen.yaml": IMMUTABLE.format(value="2")})
    tenant.patch("repo", {"metadata": {"annotations": {REQUESTED_AT: "frozen-2"}}}, GIT_REPOSITORY)
    refused = tenant.failed("apps", "ReconciliationFailed")
    assert "immutable" in condition(refused)["message"]
    assert tenant.configmaps(tenant.target)["frozen"] == {"value": "1"}, "without force nothing is replaced"

    tenant.patch("apps", {"spec": {"force": True}})
    tenant.ready("apps", second)
    recreated = tenant.core.read_namespaced_config_map("frozen", tenant.target)
    assert recreated.data == {"value": "2"} and recreated.metadata.uid != uid, "deleted and created again"


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _managers(tenant: Tenant, name: str) -> set[tuple[str, str]]:
    found = tenant.core.read_namespaced_config_map(name, tenant.target).metadata.managed_fields or []
    return {(m.manager, m.operation) for m in found if not m.subresource}


def test_what_kubectl_applied_is_taken_over_and_what_git_dropped_is_removed(tenant: Tenant, kubectl: Kubectl) -> None:
    """Flux's ApplyCleanupOptions: fields of ``kubectl apply`` (client- and server-side) and ``kubectl edit``
    or ``patch`` become kustomize-controller's before the apply, so a field git lacks is removed, and
    ``last-applied-configuration`` goes. With ``kustomize.toolkit.fluxcd.io/ssa: Merge`` nothing is taken."""
    handmade = {
        "taken": {"value": "from-kubectl", "extra": "only-kubectl-has-it"},
        "merged": {"value": "from-kubectl", "extra": "only-kubectl-has-it"},
    }
    for name, data in handmade.items():
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
        kubectl("apply", "-n", tenant.target, "-f", "-", input=json.dumps(body))
    kubectl("apply", "--server-side", "-n", tenant.target, "-f", "-", input=configmap("ssa", "from-kubectl"))
    kubectl("patch", "configmap", "ssa", "-n", tenant.target, "-p", '{"data": {"extra": "patched-by-hand"}}')
    before = {c.metadata.name: c.metadata.uid for c in tenant.core.list_namespaced_config_map(tenant.target).items}
    assert ("kubectl-client-side-apply", "Update") in _managers(tenant, "taken")
    assert {("kubectl", "Apply"), ("kubectl-patch", "Update")} <= _managers(tenant, "ssa")

    merge = "  annotations:\n    kustomize.toolkit.fluxcd.io/ssa: Merge\n"
    files = {
        "apps/taken.yaml": configmap("taken", "from-git"),
        "apps/ssa.yaml": configmap("ssa", "from-git"),
        "apps/merged.yaml": configmap("merged", "from-git").replace("metadata:\n", "metadata:\n" + merge),
    }
    sha = tenant.push(files)
    tenant.git_repository()
    tenant.kustomization("apps", path="./apps", targetNamespace=tenant.target)
    tenant.ready("apps", sha)

    maps = tenant.configmaps(tenant.target)
    assert maps["taken"] == {"value": "from-git"}, "kubectl's field that git lacks is removed"
    assert maps["ssa"] == {"value": "from-git"}, "so is one a kubectl patch added"
    assert maps["merged"] == {"value": "from-git", "extra": "only-kubectl-has-it"}, "Merge keeps others' fields"
    for name in ("taken", "ssa"):
        assert _managers(tenant, name) == {("kustomize-controller", "Apply")}, name
        annotations = tenant.core.read_namespaced_config_map(name, tenant.target).metadata.annotations or {}
        assert LAST_APPLIED not in annotations, name
    assert ("kubectl-client-side-apply", "Update") in _managers(tenant, "merged")
    after = {c.metadata.name: c.metadata.uid for c in tenant.core.list_namespaced_config_map(tenant.target).items}
    assert {n: after[n] for n in handmade} == {n: before[n] for n in handmade}, "taken over, not re-created"
    assert after["ssa"] == before["ssa"]

    # Taken over once: the next reconcile finds nothing to clean up and writes nothing.
    written = versions(tenant, tenant.target)
    reconciled(tenant, "apps")
    assert versions(tenant, tenant.target) == written
    # A later kubectl edit of a field is drift now, and reverted.
    kubectl("patch", "configmap", "taken", "-n", tenant.target, "-p", '{"data": {"late": "by-hand"}}')
    reconciled(tenant, "apps")
    assert tenant.configmaps(tenant.target)["taken"] == {"value": "from-git"}
