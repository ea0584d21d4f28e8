"""The Applier's drift check against the real API server, counted call by call.

A no-op must cost reads and dry-runs only: a real apply that changes nothing leaves the
resourceVersion alone, so only counting the calls proves that none was sent.
"""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client

from fluxwarden.controllers.apply.applier import Applier
from fluxwarden.controllers.apply.drift import Applied
from fluxwarden.controllers.kustomize.api import FIELD_MANAGER
from fluxwarden.controllers.runtime.kube import Kube
from fluxwarden.controllers.runtime.restmapper import RestMapper

OWNER = {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "config"}


class CountingKube(Kube):
    """The real adapter, recording each call as ``(method, 'dry-run' or '', path)``."""

    def __init__(self, api: client.ApiClient) -> None:
        super().__init__(api)
        self.calls: list[tuple[str, str, str]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        dry = "dry-run" if (kwargs.get("query") or {}).get("dryRun") else ""
        self.calls.append((method, dry, path))
        return super().request(method, path, **kwargs)

    def writes(self) -> list[tuple[str, str, str]]:
        return [c for c in self.calls if c[0] in ("PATCH", "POST", "PUT", "DELETE") and not c[1]]


def lists(kube: CountingKube) -> int:
    return sum(1 for c in kube.calls if c[0] == "GET" and c[2].endswith(("/configmaps", "/deployments")))


def gets(kube: CountingKube) -> list[tuple[str, str, str]]:
    """GETs of one object: the labelled lists should have made them unnecessary."""
    return [c for c in kube.calls if c[0] == "GET" and c[2].endswith(("/settings", "/web"))]


def build(namespace: str) -> list[dict[str, Any]]:
    meta = {"namespace": namespace, "labels": dict(OWNER)}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", **meta}, "data": {"a": "1"}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", **meta},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "registry.example/web:1.0"}]},
                },
            },
        },
    ]


def run(api: client.ApiClient, namespace: str, applied: dict[str, Applied]) -> tuple[list[str], CountingKube]:
    kube = CountingKube(api)
    changes = Applier(kube, RestMapper(kube), OWNER, FIELD_MANAGER).apply_all(
        copy.deepcopy(build(namespace)), applied, False
    )
    return [str(c) for c in changes], kube


def test_no_drift_after_a_restart_or_a_status_write_sends_no_apply(admin_api: client.ApiClient, namespace: str) -> None:
    applied: dict[str, Applied] = {}
    changes, kube = run(admin_api, namespace, applied)
    assert changes == [f"ConfigMap/{namespace}/settings created", f"Deployment/{namespace}/web created"]
    assert not gets(kube) and len(kube.writes()) == 2, "new objects: one list per kind, then the applies"

    # A new process: no records, so each object is read (one LIST per kind) and dry-run, never applied.
    changes, kube = run(admin_api, namespace, {})
    assert changes == [f"ConfigMap/{namespace}/settings unchanged", f"Deployment/{namespace}/web unchanged"]
    assert kube.writes() == [], kube.calls
    assert sum(1 for c in kube.calls if c[1] == "dry-run") == 2
    assert lists(kube) == 2 and not gets(kube), kube.calls

    # A controller writes the Deployment's status: its resourceVersion moves, its spec does not.
    apps = client.AppsV1Api(admin_api)
    apps.patch_namespaced_deployment_status("web", namespace, {"status": {"observedGeneration": 1, "replicas": 1}})
    changes, kube = run(admin_api, namespace, applied)
    assert changes[1] == f"Deployment/{namespace}/web unchanged" and kube.writes() == [], kube.calls
    assert [c[2].rsplit("/", 1)[1] for c in kube.calls if c[1] == "dry-run"] == ["web"], "only what moved is dry-run"

    # Nothing moved: the recorded versions prove it, with one LIST per kind and no dry-run.
    _, kube = run(admin_api, namespace, applied)
    assert [c for c in kube.calls if c[1] or c[0] != "GET"] == [] and lists(kube) == 2 and not gets(kube), kube.calls

    # A hand edit: found, and repaired with exactly one apply.
    client.CoreV1Api(admin_api).patch_namespaced_config_map("settings", namespace, {"data": {"a": "edited"}})
    changes, kube = run(admin_api, namespace, applied)
    assert changes[0] == f"ConfigMap/{namespace}/settings configured"
    assert [c[2].rsplit("/", 1)[1] for c in kube.writes()] == ["settings"]
    assert client.CoreV1Api(admin_api).read_namespaced_config_map("settings", namespace).data == {"a": "1"}
