"""The real helm v4 run by a test as cluster admin: the independent witness of what the controller did.

Expected revisions and statuses come from ``helm history``/``status`` here, never from the
controller's own code. Each call has throw-away cache/config/data dirs (``run_helm``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.support.helm_charts import OUTCOME
from tests.support.helm_repo import helm_binary, run_helm
from tests.support.jobs import NEVER
from tests.support.kube import api_client
from tests.support.wait import until

RELEASE_SECRET_TYPE = "helm.sh/release.v1"


@dataclass(frozen=True)
class AdminHelm:
    """helm against the test cluster with the admin kubeconfig."""

    kubeconfig: Path
    _cache: dict[str, client.ApiClient] = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, *args: str, timeout: float = 120) -> str:
        return run_helm(*args, "--kubeconfig", str(self.kubeconfig), timeout=timeout)

    def api(self) -> client.ApiClient:
        """An admin client of the same cluster (cached; closed with the process)."""
        if "api" not in self._cache:
            self._cache["api"] = api_client(self.kubeconfig)
        return self._cache["api"]

    def history(self, release: str, namespace: str) -> list[dict[str, Any]]:
        """``helm history -o json``: one entry per stored revision, oldest first (``[]`` when none)."""
        result = self.run_unchecked("history", release, "-n", namespace, "-o", "json", "--max", "256")
        if result.returncode != 0:
            if "release: not found" in result.stderr:
                return []
            raise AssertionError(f"helm history {namespace}/{release} failed: {result.stderr.strip()}")
        entries: list[dict[str, Any]] = json.loads(result.stdout)
        return entries

    def status(self, release: str, namespace: str) -> dict[str, Any]:
        """``helm status -o json`` of the latest revision."""
        status: dict[str, Any] = json.loads(self("status", release, "-n", namespace, "-o", "json"))
        return status

    def values(self, release: str, namespace: str) -> dict[str, Any]:
        """The user-supplied values of the latest revision (``helm get values -o json``)."""
        values = json.loads(self("get", "values", release, "-n", namespace, "-o", "json"))
        return dict(values or {})

    def releases(self, namespace: str) -> list[dict[str, Any]]:
        """``helm list -o json`` in ``namespace``: every release, whatever its state (helm v4's default)."""
        listed: list[dict[str, Any]] = json.loads(self("list", "-n", namespace, "-o", "json"))
        return listed

    def run_unchecked(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory(prefix="fluxwarden-helm-") as home:
            return subprocess.run(
                [helm_binary(), *args, "--kubeconfig", str(self.kubeconfig)],
                env=helm_env(home),
                capture_output=True,
                text=True,
                timeout=timeout,
            )

    def start(self, home: Path, *args: str) -> subprocess.Popen[bytes]:
        """Start helm without waiting (to kill it mid-release); ``home`` holds its dirs and ``helm.log``."""
        with (home / "helm.log").open("wb") as log:  # the child keeps its own descriptor
            return subprocess.Popen(
                [helm_binary(), *args, "--kubeconfig", str(self.kubeconfig)],
                env=helm_env(str(home)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )


def helm_env(home: str) -> dict[str, str]:
    return {
        **os.environ,
        "HELM_CACHE_HOME": f"{home}/cache",
        "HELM_CONFIG_HOME": f"{home}/config",
        "HELM_DATA_HOME": f"{home}/data",
    }


def release_secrets(api: client.ApiClient, namespace: str, release: str) -> dict[str, str]:
    """The release records helm stored in ``namespace``: Secret name -> resourceVersion."""
    secrets = client.CoreV1Api(api).list_namespaced_secret(namespace, label_selector=f"owner=helm,name={release}")
    return {s.metadata.name: s.metadata.resource_version for s in secrets.items if s.type == RELEASE_SECRET_TYPE}


def kill_mid_upgrade(helm: AdminHelm, home: Path, release: str, namespace: str, chart: str, *args: str) -> None:
    """Run ``helm upgrade`` by hand and SIGKILL it while it waits for a hook, leaving ``pending-upgrade``.

    The chart must hold a post-upgrade hook Job that never finishes (``helm_charts.hooks`` with
    ``upgradeHook=Never``): helm has then stored the pending revision and waits, as a helm killed by an
    OOM or a node drain would leave it.
    """
    process = helm.start(home, "upgrade", release, chart, "-n", namespace, *args, "--timeout", "5m")
    try:
        until(
            lambda: helm.history(release, namespace),
            lambda h: bool(h) and h[-1]["status"] == "pending-upgrade",
            timeout=60,
            what=f"helm upgrade of {namespace}/{release} pending",
        )
        until(
            lambda: client.BatchV1Api(helm.api()).list_namespaced_job(namespace).items,
            lambda listed: any((j.metadata.labels or {}).get(OUTCOME) == NEVER for j in listed),
            timeout=60,
            what=f"a never-finishing hook Job in {namespace}",
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
