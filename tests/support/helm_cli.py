"""The real helm v4 run by a test as cluster admin: the independent witness of what the controller did.

Expected revisions and statuses come from ``helm history``/``status`` here, never from the
controller's own code. Each call has throw-away cache/config/data dirs (``run_helm``).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.support.helm_repo import helm_binary, run_helm

RELEASE_SECRET_TYPE = "helm.sh/release.v1"


@dataclass(frozen=True)
class AdminHelm:
    """helm against the test cluster with the admin kubeconfig."""

    kubeconfig: Path

    def __call__(self, *args: str, timeout: float = 120) -> str:
        return run_helm(*args, "--kubeconfig", str(self.kubeconfig), timeout=timeout)

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
        """``helm list -a -o json`` in ``namespace``: every release, whatever its state."""
        listed: list[dict[str, Any]] = json.loads(self("list", "-a", "-n", namespace, "-o", "json"))
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

    def start(self, home: Path, *args: str) -> subprocess.Popen[str]:
        """Start helm without waiting (to kill it mid-release); ``home`` holds its cache/config/data."""
        return subprocess.Popen(
            [helm_binary(), *args, "--kubeconfig", str(self.kubeconfig)],
            env=helm_env(str(home)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
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
