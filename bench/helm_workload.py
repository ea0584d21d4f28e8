"""The helm benchmark's workload: N tenant HelmReleases of one chart from one HTTPS HelmRepository.

``bench.helm`` runs fluxwarden's helm controller on it; ``bench.helm --against flux`` runs Flux's helm-controller
on the same objects. ``chart_repository`` packages the chart with the real helm and serves it over
HTTPS with a private CA (``tests/support/helm_repo.py``, ``tests/support/tls.py``);
``Workload(prefix, n, repo_url, ca_pem)`` names everything, ``set_up_workload`` creates all but the
HelmReleases, ``create_releases`` creates those (the timed part).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cluster import KubeApi, grant_tenant_admin
from bench.controller import Poll, ready_condition, resource_versions
from tests.support.helm_repo import HelmRepoServer
from tests.support.tls import PrivateCA

PREFIX = "bench"
APPLIER = "flux-applier"
REPOSITORY = "charts"
CA_SECRET = "charts-ca"
CHART, CHART_VERSION = "bench-app", "1.0.0"
HELM_RELEASES = "/apis/helm.toolkit.fluxcd.io/v2/namespaces/{namespace}/helmreleases"
HELM_CHARTS = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{namespace}/helmcharts"
HELM_REPOSITORIES = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{namespace}/helmrepositories"
RELEASE_SECRETS = "/api/v1/secrets?labelSelector=owner%3Dhelm"  # helm's storage driver labels its Secrets so


def chart_templates(files: int) -> dict[str, str]:
    """``files`` ConfigMaps of ~0.4 KB (as bench.kustomize's), one value of the release in each."""
    return {
        f"config-{k:02d}.yaml": (
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-{k:02d}\n  labels:\n"
            f"    app.kubernetes.io/name: bench-app\n    app.kubernetes.io/part-of: bench\ndata:\n"
            "  tenant: {{ .Values.tenant | quote }}\n" + "".join(f"  key{j}: value-{k}-{j}\n" for j in range(12))
        )
        for k in range(files)
    }


@dataclass(frozen=True)
class Workload:
    """N HelmReleases of one chart in ``<prefix>-config``, each released into its own ``<prefix>-t-NNNN``.

    ``service_account`` None leaves ``spec.serviceAccountName`` unset (fluxwarden then runs helm as
    ``flux-applier``; Flux needs ``--default-service-account=flux-applier`` for the same).
    """

    prefix: str
    n: int
    repo_url: str
    ca_pem: bytes
    service_account: str | None = None

    @property
    def config_namespace(self) -> str:
        return f"{self.prefix}-config"

    @property
    def collection(self) -> str:
        return HELM_RELEASES.format(namespace=self.config_namespace)

    def target_namespace(self, index: int) -> str:
        return f"{self.prefix}-t-{index:04d}"

    @staticmethod
    def name(index: int) -> str:
        return f"app-{index:04d}"

    @property
    def names(self) -> set[str]:
        return {self.name(i) for i in range(self.n)}

    def helm_repository(self) -> dict[str, Any]:
        return {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": {"name": REPOSITORY, "namespace": self.config_namespace},
            "spec": {"url": self.repo_url, "interval": "10m", "certSecretRef": {"name": CA_SECRET}},
        }

    def helm_release(self, index: int) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "interval": "10m",
            "targetNamespace": self.target_namespace(index),
            "chart": {
                "spec": {
                    "chart": CHART,
                    "version": CHART_VERSION,
                    "sourceRef": {"kind": "HelmRepository", "name": REPOSITORY},
                    "interval": "10m",
                }
            },
            "install": {"remediation": {"retries": 3}},  # a transient failure is a late Ready, not a 10m hole
            "values": {"tenant": self.name(index)},
        }
        if self.service_account is not None:
            spec["serviceAccountName"] = self.service_account
        return {
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": self.name(index), "namespace": self.config_namespace},
            "spec": spec,
        }


def set_up_workload(api: KubeApi, workload: Workload) -> float:
    """Everything but the HelmReleases: the configuration namespace with its applier (tenant-admin there
    too, since Flux stores releases there), N target namespaces it may write to, the CA Secret and the
    HelmRepository. Seconds taken."""
    began = time.monotonic()
    config = workload.config_namespace
    api.must("POST", "/api/v1/namespaces", {"metadata": {"name": config}})
    targets = [workload.target_namespace(i) for i in range(workload.n)]
    grant_tenant_admin(api, config, APPLIER, targets, in_config=True)
    secret = {"metadata": {"name": CA_SECRET}, "data": {"ca.crt": base64.b64encode(workload.ca_pem).decode()}}
    api.must("POST", f"/api/v1/namespaces/{config}/secrets", secret)
    api.must("POST", HELM_REPOSITORIES.format(namespace=config), workload.helm_repository())
    return time.monotonic() - began


def change_values(api: KubeApi, workload: Workload, tenant_suffix: str) -> float:
    """A new ``values.tenant`` on each HelmRelease (a new generation, the same chart: an upgrade each); seconds."""
    began = time.monotonic()
    for index in range(workload.n):
        body = {"spec": {"values": {"tenant": workload.name(index) + tenant_suffix}}}
        api.must("PATCH", f"{workload.collection}/{workload.name(index)}", body, "application/merge-patch+json")
    return time.monotonic() - began


def create_releases(api: KubeApi, workload: Workload) -> float:
    """The N HelmReleases, one POST each over one connection; seconds taken."""
    began = time.monotonic()
    for index in range(workload.n):
        api.must("POST", workload.collection, workload.helm_release(index))
    return time.monotonic() - began


def is_released(obj: dict[str, Any]) -> bool:
    """Ready=True at the object's current generation."""
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return ready_condition(obj).get("status") == "True"


def wait_repository_ready(api: KubeApi, workload: Workload, timeout: float = 120.0) -> float:
    began, deadline = time.monotonic(), time.monotonic() + timeout
    path = HELM_REPOSITORIES.format(namespace=workload.config_namespace) + f"/{REPOSITORY}"
    while True:
        obj = api.must("GET", path)
        if (obj.get("status") or {}).get("artifact") and ready_condition(obj).get("status") == "True":
            return time.monotonic() - began
        if time.monotonic() > deadline:
            raise RuntimeError(f"HelmRepository {REPOSITORY} not Ready after {timeout:.0f}s: {obj.get('status')}")
        time.sleep(0.2)


def poll_interval(n: int) -> float:
    return min(2.0, max(0.25, n / 200))


def release_poll(api: KubeApi, workload: Workload, done_when: Callable[[dict[str, Any]], bool], timeout: float) -> Poll:
    return Poll(
        lambda: api.items(workload.collection), workload.names, done_when, poll_interval(workload.n),
        time.monotonic() + timeout,
    )  # fmt: skip


def chart_poll(api: KubeApi, workload: Workload, timeout: float) -> Poll:
    """Until every HelmChart that the helm controller makes (``<namespace>-<name>``) is Ready with an artifact."""

    def done(obj: dict[str, Any]) -> bool:
        return bool((obj.get("status") or {}).get("artifact")) and is_released(obj)

    names = {f"{workload.config_namespace}-{name}" for name in workload.names}
    collection = HELM_CHARTS.format(namespace=workload.config_namespace)
    return Poll(lambda: api.items(collection), names, done, poll_interval(workload.n), time.monotonic() + timeout)


def config_maps(api: KubeApi, workload: Workload) -> dict[str, str]:
    """resourceVersion of every ConfigMap of the chart in the target namespaces."""
    prefix = f"{workload.prefix}-t-"
    return {
        key: version
        for key, version in resource_versions(api, "/api/v1/configmaps").items()
        if key.startswith(prefix) and "/config-" in key
    }


def field_managers(api: KubeApi, path: str) -> list[str]:
    status, obj = api.send("GET", path)
    return sorted({e.get("manager", "") for e in obj["metadata"].get("managedFields") or []}) if status == 200 else []


def events(api: KubeApi, workload: Workload) -> int:
    return len(api.items(f"/api/v1/namespaces/{workload.config_namespace}/events"))


@dataclass(frozen=True)
class Work:
    """What the releases left behind, so that two controllers can be shown to have done the same work."""

    n: int
    revision: int  # the release revision every HelmRelease should be at
    at_revision: int  # HelmReleases whose status.history is ``revision`` snapshots, the newest deployed at it
    records: collections.Counter[str]  # release Secrets by revision label ("1", "2", ...)
    storage: collections.Counter[str]  # release Secrets by where they live: "config" or "target" namespace
    full_targets: int  # target namespaces holding exactly the chart's ConfigMaps

    def line(self, files: int) -> str:
        revisions = ", ".join(f"v{k} {v}" for k, v in sorted(self.records.items())) or "none"
        where = ", ".join(f"{k} namespace {v}" for k, v in sorted(self.storage.items())) or "none"
        return (
            f"{self.at_revision}/{self.n} HelmReleases at revision {self.revision} (history: newest deployed), release "
            f"records {revisions} ({where}), {self.full_targets}/{self.n} target namespaces with {files} ConfigMaps"
        )

    def same(self) -> bool:
        """Each release at ``revision`` with one record per revision and nothing else; its ConfigMaps all there."""
        per_revision = all(self.records[str(k)] == self.n for k in range(1, self.revision + 1))
        total = sum(self.records.values()) == self.n * self.revision
        return self.at_revision == self.n == self.full_targets and per_revision and total


def at_revision(obj: dict[str, Any], revision: int) -> bool:
    """status.history holds ``revision`` snapshots, the newest deployed at ``revision``."""
    history = (obj.get("status") or {}).get("history") or []
    return len(history) == revision and history[0].get("version") == revision and history[0].get("status") == "deployed"


def check_work(api: KubeApi, workload: Workload, files: int, revision: int = 1) -> Work:
    """Every release at ``revision``, a record per revision, and its ``files`` ConfigMaps in its namespace."""
    count = sum(1 for obj in api.items(workload.collection) if at_revision(obj, revision))
    records: collections.Counter[str] = collections.Counter()
    storage: collections.Counter[str] = collections.Counter()
    for secret in api.items(RELEASE_SECRETS):
        meta = secret["metadata"]
        if not str(meta.get("namespace", "")).startswith(f"{workload.prefix}-"):
            continue
        records[str((meta.get("labels") or {}).get("version", "?"))] += 1
        storage["config" if meta["namespace"] == workload.config_namespace else "target"] += 1
    per_namespace = collections.Counter(key.partition("/")[0] for key in config_maps(api, workload))
    full = sum(1 for i in range(workload.n) if per_namespace[workload.target_namespace(i)] == files)
    return Work(workload.n, revision, count, records, storage, full)


@contextlib.contextmanager
def chart_repository(root: Path, files: int) -> Iterator[tuple[HelmRepoServer, PrivateCA, Path]]:
    """``bench-app`` packaged by the real helm and served over HTTPS with its own CA; its archive."""
    authority = PrivateCA()
    with HelmRepoServer(root, tls=authority.server_context()) as server:
        archive = server.add_chart(CHART, CHART_VERSION, {"tenant": ""}, templates=chart_templates(files))
        yield server, authority, archive
