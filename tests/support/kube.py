"""Kubernetes clients for tests, and the types of the e2e fixtures that hand them out.

These live here, not in a conftest, so test modules can import them without importing a conftest.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kubernetes import client, config


class Kubectl(Protocol):
    """The ``kubectl`` fixture: runs kubectl against the test cluster as admin."""

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


@dataclass(frozen=True)
class KubectlRunner:
    """A :class:`Kubectl` for one cluster, with a discovery cache of its own.

    The private ``--cache-dir`` keeps tests from reading or writing the user's ``~/.kube/cache``.
    """

    binary: Path
    kubeconfig: Path
    cache_dir: Path
    timeout: float = 60.0

    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.binary), f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.cache_dir}", *args]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=self.timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result


def kubectl_binary(bin_dir: Path) -> Path:
    """The kubectl built with the test apiserver (same version), never an older one on PATH.

    kubectl supports one minor version of skew; the distribution's kubectl may be further off.
    """
    binary = bin_dir / "kubectl"
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"kubectl missing from {bin_dir}: rebuild the test binaries with tests/cluster/build.sh")
    return binary


Impersonate = Callable[[str, str], client.ApiClient]
"""The ``impersonate`` fixture: ``impersonate(namespace, service_account) -> ApiClient``."""


def api_client(kubeconfig: Path, *, impersonate_user: str | None = None) -> client.ApiClient:
    """A client configured from a kubeconfig file, the way a user's client would be; close it after use."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration, persist_config=False)
    header = "Impersonate-User" if impersonate_user else None
    return client.ApiClient(configuration, header_name=header, header_value=impersonate_user)
