"""Real service-account credentials: a TokenRequest token, and a kubeconfig or client that uses it.

A client authenticated as the account itself (not an admin impersonating it) is what a pod has: its
own ``Impersonate-User`` requests are then judged by the account's ``impersonate`` rights.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from kubernetes import client, config


def service_account_token(admin_api: client.ApiClient, namespace: str, name: str, seconds: int = 3600) -> str:
    """A bound token for ``namespace/name`` from the API server's TokenRequest (the account must exist)."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
    )
    answer = client.CoreV1Api(admin_api).create_namespaced_service_account_token(name, namespace, request)
    return str(answer.status.token)


def token_kubeconfig(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    """A kubeconfig for the admin kubeconfig's cluster that authenticates with ``token`` only."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = admin["clusters"][0]
    config_data = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "service-account", "user": {"token": token}}],
        "contexts": [{"name": "service-account", "context": {"cluster": cluster["name"], "user": "service-account"}}],
        "current-context": "service-account",
    }
    path.write_text(yaml.safe_dump(config_data, sort_keys=False))
    path.chmod(0o600)
    return path


def token_client(kubeconfig: Path) -> client.ApiClient:
    """A client from a token kubeconfig (see :func:`token_kubeconfig`); close it after use."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration, persist_config=False)
    return client.ApiClient(configuration)
