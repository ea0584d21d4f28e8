"""The one place that turns a kubeconfig (or the in-cluster service account) into an API client."""

from __future__ import annotations

from kubernetes import client, config


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """A client from ``kubeconfig`` (or ``$KUBECONFIG``/``~/.kube/config``), else the in-cluster account."""
    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    except config.ConfigException:
        if kubeconfig:
            raise
        config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)
