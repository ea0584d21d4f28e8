"""Nothing is silently ignored: every spec field fluxwarden does not implement stalls its object.

Each field of the tables in ``kustomize/api.py`` and ``source/api.py`` is set on a real object on the
real API server (with values Flux's own CRDs accept): the object is Stalled with reason
``UnsupportedField`` and a message naming the field, never Ready. Removing the field makes the same
object reconcile normally (an artifact stored, a ConfigMap applied) at its new generation.

``spec.patchesStrategicMerge`` / ``spec.patchesJson6902`` (v1beta2 fields that Flux's v1 schema
prunes) are covered by the unit tests only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.source.api import GIT_REPOSITORY, HELM_CHART, HELM_REPOSITORY
from tests.support.git_server import GitHttpServer, GitRepo
from tests.support.helm_repo import HelmRepoServer
from tests.support.tenants import SHARD, condition, grant
from tests.support.wait import until

LABELS = {SHARD: "unsupported"}
CONFIGMAP = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: "1"\n'

# (the field as the message names it, the spec that sets it, the JSON pointer that removes it)
Case = tuple[str, dict[str, Any], str]
GIT_CASES: list[Case] = [
    ("spec.verify", {"verify": {"mode": "HEAD", "secretRef": {"name": "pgp-keys"}}}, "/spec/verify"),
    ("spec.include", {"include": [{"repository": {"name": "other"}, "toPath": "other"}]}, "/spec/include"),
    ("spec.recurseSubmodules", {"recurseSubmodules": True}, "/spec/recurseSubmodules"),
    ("spec.sparseCheckout", {"sparseCheckout": ["deploy/"]}, "/spec/sparseCheckout"),
    ("spec.provider 'azure'", {"provider": "azure"}, "/spec/provider"),
    ("spec.proxySecretRef", {"proxySecretRef": {"name": "proxy"}}, "/spec/proxySecretRef"),
]
# type 'oci' is implemented (data only, as in Flux); its cloud providers are not (tests/e2e/test_source_helm_oci.py).
HELM_REPOSITORY_CASES: list[Case] = []
HELM_CHART_CASES: list[Case] = [
    ("spec.verify", {"verify": {"provider": "cosign"}}, "/spec/verify"),
    ("spec.reconcileStrategy 'Revision'", {"reconcileStrategy": "Revision"}, "/spec/reconcileStrategy"),
    ("spec.ignoreMissingValuesFiles", {"ignoreMissingValuesFiles": True}, "/spec/ignoreMissingValuesFiles"),
]
KUSTOMIZATION_CASES: list[Case] = [
    ("spec.kubeConfig", {"kubeConfig": {"secretRef": {"name": "remote"}}}, "/spec/kubeConfig"),
    ("spec.decryption", {"decryption": {"provider": "sops", "secretRef": {"name": "sops"}}}, "/spec/decryption"),
    ("spec.deletionPolicy 'Orphan'", {"deletionPolicy": "Orphan"}, "/spec/deletionPolicy"),
    ("spec.buildMetadata", {"buildMetadata": ["originAnnotations"]}, "/spec/buildMetadata"),
    (
        "spec.healthCheckExprs",
        {"healthCheckExprs": [{"apiVersion": "v1", "kind": "ConfigMap", "current": "true"}]},
        "/spec/healthCheckExprs",
    ),
    (
        "spec.dependsOn[0].readyExpr",
        {"dependsOn": [{"name": "base", "readyExpr": "dep.status.conditions.all(c, c.status == 'True')"}]},
        "/spec/dependsOn/0/readyExpr",
    ),
    ("spec.ignore", {"ignore": [{"paths": ["/data"], "target": {"kind": "ConfigMap"}}]}, "/spec/ignore"),
    ("spec.ignoreMissingComponents", {"ignoreMissingComponents": True}, "/spec/ignoreMissingComponents"),
    (
        "spec.postBuild.substituteStrategy 'Always'",
        {"postBuild": {"substituteStrategy": "Always"}},
        "/spec/postBuild/substituteStrategy",
    ),
]


@pytest.fixture(scope="module")
def controllers(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source", "kustomize"), label_selector=f"{SHARD}=unsupported")


@pytest.fixture(scope="module")
def git_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with GitHttpServer(tmp_path_factory.mktemp("git")) as server:
        url = server.create_repo("app")
        work = GitRepo(tmp_path_factory.mktemp("work"))
        work.commit({"settings.yaml": CONFIGMAP})
        work.push(server.repo_path("app"))
        yield url


@pytest.fixture(scope="module")
def helm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with HelmRepoServer(tmp_path_factory.mktemp("charts")) as server:
        server.add_chart("hello", "1.0.0", {"replicaCount": 1})
        yield server.url


class Objects:
    """Flux objects of one namespace, all in this module's shard."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def create(self, res: Resource, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": res.api_version, "kind": res.kind, "spec": spec,
                "metadata": {"name": name, "namespace": self.namespace, "labels": LABELS}}  # fmt: skip
        self.custom.create_namespaced_custom_object(res.group, res.version, self.namespace, res.plural, body)

    def get(self, res: Resource, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            res.group, res.version, self.namespace, res.plural, name
        )
        return obj

    def remove(self, res: Resource, name: str, pointer: str) -> None:
        self.custom.patch_namespaced_custom_object(
            res.group, res.version, self.namespace, res.plural, name, [{"op": "remove", "path": pointer}],
            _content_type="application/json-patch+json",
        )  # fmt: skip

    def wait(self, res: Resource, name: str, reason: str | None, timeout: float = 60) -> dict[str, Any]:
        """Ready=True at the current generation (``reason`` None), or Ready=False with ``reason``."""

        def done(obj: dict[str, Any]) -> bool:
            status = obj.get("status") or {}
            if status.get("observedGeneration") != obj["metadata"]["generation"]:
                return False
            ready = condition(obj, "Ready")
            return ready.get("status") == "True" if reason is None else ready.get("reason") == reason

        return until(lambda: self.get(res, name), done, timeout=timeout, what=f"{res.kind} {name} {reason or 'Ready'}")


@pytest.fixture
def objects(admin_api: client.ApiClient, namespace: str, controllers: Reconcilers) -> Objects:
    client.CoreV1Api(admin_api).create_namespaced_service_account(namespace, {"metadata": {"name": "flux-applier"}})
    grant(admin_api, namespace, namespace)
    return Objects(admin_api, namespace)


def assert_stalled(obj: dict[str, Any], named: str, controller: str) -> None:
    ready, stalled = condition(obj, "Ready"), condition(obj, "Stalled")
    assert ready["status"] == "False" and ready["reason"] == "UnsupportedField"
    assert stalled["status"] == "True" and stalled["reason"] == "UnsupportedField"
    assert ready["message"].startswith(f"{named} is not supported by fluxwarden yet; "), ready["message"]
    assert ready["message"].endswith(f"run Flux's {controller} for this object"), ready["message"]
    assert "Reconciling" not in {c["type"] for c in obj["status"]["conditions"]}, "no retry is under way"


def stall_then_recover(
    objects: Objects, res: Resource, cases: list[Case], base: dict[str, Any], controller: str
) -> list[dict[str, Any]]:
    """Create one object per case, each Stalled naming its field; remove the fields; all Ready."""
    names = [f"{res.kind.lower()}-{index}" for index in range(len(cases))]
    for name, (_, extra, _) in zip(names, cases, strict=True):
        objects.create(res, name, {**base, **extra})
    for name, (named, _, _) in zip(names, cases, strict=True):
        stalled = objects.wait(res, name, "UnsupportedField")
        assert_stalled(stalled, named, controller)
        assert "artifact" not in stalled["status"] and "lastAppliedRevision" not in stalled["status"], "no work done"
    for name, (_, _, pointer) in zip(names, cases, strict=True):
        objects.remove(res, name, pointer)
    return [objects.wait(res, name, None) for name in names]


def test_git_repository_fields_stall_until_removed(objects: Objects, git_url: str) -> None:
    base = {"url": git_url, "interval": "10m", "ref": {"branch": "main"}}
    for ready in stall_then_recover(objects, GIT_REPOSITORY, GIT_CASES, base, "source-controller"):
        assert ready["status"]["artifact"]["revision"].startswith("main@sha1:")
        assert "Stalled" not in {c["type"] for c in ready["status"]["conditions"]}


def test_helm_repository_and_chart_fields_stall_until_removed(objects: Objects, helm_url: str) -> None:
    base = {"url": helm_url, "interval": "10m"}
    for ready in stall_then_recover(objects, HELM_REPOSITORY, HELM_REPOSITORY_CASES, base, "source-controller"):
        assert ready["status"]["artifact"]["revision"].startswith("sha256:")
    objects.create(HELM_REPOSITORY, "charts", base)
    objects.wait(HELM_REPOSITORY, "charts", None)
    chart = {"chart": "hello", "version": "1.x", "interval": "10m",
             "sourceRef": {"kind": "HelmRepository", "name": "charts"}}  # fmt: skip
    for ready in stall_then_recover(objects, HELM_CHART, HELM_CHART_CASES, chart, "source-controller"):
        assert ready["status"]["artifact"]["revision"] == "1.0.0"


def test_kustomization_fields_stall_until_removed(objects: Objects, git_url: str) -> None:
    objects.create(GIT_REPOSITORY, "repo", {"url": git_url, "interval": "10m", "ref": {"branch": "main"}})
    kustomization = {"interval": "10m", "retryInterval": "2s", "prune": True, "path": "./",
                     "sourceRef": {"kind": "GitRepository", "name": "repo"}}  # fmt: skip
    objects.create(KUSTOMIZATION, "base", {**kustomization, "namePrefix": "base-"})
    objects.wait(KUSTOMIZATION, "base", None)
    names = [f"kustomization-{index}" for index in range(len(KUSTOMIZATION_CASES))]
    cases = [(named, {**extra, "namePrefix": f"{name}-"}, pointer)
             for name, (named, extra, pointer) in zip(names, KUSTOMIZATION_CASES, strict=True)]  # fmt: skip
    stall_then_recover(objects, KUSTOMIZATION, cases, kustomization, "kustomize-controller")
    applied = {c.metadata.name for c in objects.core.list_namespaced_config_map(objects.namespace).items}
    assert {f"{name}-settings" for name in names} <= applied, "each applied its ConfigMap once the field was gone"


def test_deleting_with_an_unsupported_deletion_policy_removes_nothing(
    objects: Objects, git_url: str, admin_api: client.ApiClient
) -> None:
    objects.create(GIT_REPOSITORY, "repo", {"url": git_url, "interval": "10m", "ref": {"branch": "main"}})
    name = f"orphan-{uuid.uuid4().hex[:6]}"
    objects.create(KUSTOMIZATION, name, {"interval": "10m", "prune": True, "path": "./", "namePrefix": f"{name}-",
                                         "sourceRef": {"kind": "GitRepository", "name": "repo"}})  # fmt: skip
    objects.wait(KUSTOMIZATION, name, None)
    objects.custom.patch_namespaced_custom_object(
        KUSTOMIZATION.group, KUSTOMIZATION.version, objects.namespace, KUSTOMIZATION.plural, name,
        {"spec": {"deletionPolicy": "Orphan"}},
    )  # fmt: skip
    objects.wait(KUSTOMIZATION, name, "UnsupportedField")
    objects.custom.delete_namespaced_custom_object(
        KUSTOMIZATION.group, KUSTOMIZATION.version, objects.namespace, KUSTOMIZATION.plural, name
    )

    def gone() -> bool:
        try:
            objects.get(KUSTOMIZATION, name)
        except client.ApiException as exc:
            return bool(exc.status == 404)
        return False

    until(gone, bool, what=f"{name} deleted (its finalizer dropped)")
    objects.core.read_namespaced_config_map(f"{name}-settings", objects.namespace)  # still there: not pruned
    events = objects.core.list_namespaced_event(objects.namespace, field_selector=f"involvedObject.name={name}").items
    assert any(e.reason == "UnsupportedField" and "deleted without cleanup" in e.message for e in events)
