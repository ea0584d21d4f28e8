"""The one place that turns a kubeconfig (or the in-cluster service account) into an API client."""

from __future__ import annotations

from kubernetes import client, config

from fluxwarden.errors import UsageError


class KubeconfigError(UsageError):
    """No usable kubeconfig, and (without one named) not running in a cluster."""


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """A client from ``kubeconfig`` (or ``$KUBECONFIG``/``~/.kube/config``), else the in-cluster account."""
    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    except Exception as exc:  # a malformed file surfaces as ConfigException, a yaml error, TypeError, KeyError...
        if kubeconfig:
            known = isinstance(exc, (config.ConfigException, OSError)) or "yaml" in type(exc).__module__
            reason = _line(exc) if known else f"not a kubeconfig file ({_line(exc)})"
            raise KubeconfigError(f"kubeconfig {kubeconfig}: {reason} (--kubeconfig names the file to use)") from None
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            raise KubeconfigError(
                f"no kubeconfig ({_line(exc)}) and not in a cluster: pass --kubeconfig or set KUBECONFIG"
            ) from None
    return client.ApiClient(configuration)


def _line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
