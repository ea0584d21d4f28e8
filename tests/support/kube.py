"""Kubernetes clients for tests, and the types of the e2e fixtures that hand them out.

These live here, not in a conftest, so test modules can import them without importing a conftest.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from kubernetes import client, config


class Kubectl(Protocol):
    """The ``kubectl`` fixture: runs kubectl against the test cluster as admin."""

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


Impersonate = Callable[[str, str], client.ApiClient]
"""The ``impersonate`` fixture: ``impersonate(namespace, service_account) -> ApiClient``."""


def api_client(kubeconfig: Path, *, impersonate_user: str | None = None) -> client.ApiClient:
    """A client configured from a kubeconfig file, the way a user's client would be; close it after use."""
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=configuration, persist_config=False
    )
    header = "Impersonate-User" if impersonate_user else None
    return client.ApiClient(configuration, header_name=header, header_value=impersonate_user)
