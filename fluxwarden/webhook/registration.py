"""The Validating/MutatingWebhookConfiguration objects that register fluxwarden with an API server.

Built from the tenancy kind table, so the registered groups and resources never drift from the
rules. ``manifests/base/webhooks.yaml`` is this module's output (``fluxwarden manifests webhooks``,
checked by a test), and the end-to-end tests register the same objects with a loopback URL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from fluxwarden.tenancy import FLUX_V1_GROUPS, KINDS

NAME = "fluxwarden"
SERVICE = "fluxwarden-webhook"
NAMESPACE = "flux-system"
TIMEOUT_SECONDS = 5
# Never judged, so the webhook cannot lock the cluster or itself out.
UNJUDGED_NAMESPACES = ("kube-system", NAMESPACE)


@dataclass(frozen=True)
class Endpoint:
    """How the API server reaches the webhook: a Service in the cluster, or a URL (tests, dev)."""

    url: str | None = None
    service: str = SERVICE
    namespace: str = NAMESPACE
    port: int = 443

    def client_config(self, path: str, ca_bundle: str | None) -> dict[str, Any]:
        config: dict[str, Any]
        if self.url:
            config = {"url": self.url.rstrip("/") + path}
        else:
            config = {"service": {"name": self.service, "namespace": self.namespace, "path": path, "port": self.port}}
        if ca_bundle:
            config["caBundle"] = ca_bundle
        return config


def rules() -> list[dict[str, Any]]:
    """One rule per Flux group, naming its resources; Flux v1 groups are matched whole."""
    plurals: dict[str, list[str]] = defaultdict(list)
    for kind in KINDS:
        plurals[kind.group].append(kind.plural)
    for group in sorted(FLUX_V1_GROUPS):
        plurals[group] = ["*"]
    return [
        {
            "apiGroups": [group],
            "apiVersions": ["*"],
            "resources": sorted(resources),
            "operations": ["CREATE", "UPDATE"],
            "scope": "Namespaced",
        }
        for group, resources in sorted(plurals.items())
    ]


def _webhook(
    name: str, path: str, endpoint: Endpoint, ca_bundle: str | None, unjudged: tuple[str, ...]
) -> dict[str, Any]:
    return {
        "name": name,
        "clientConfig": endpoint.client_config(path, ca_bundle),
        "rules": rules(),
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": TIMEOUT_SECONDS,
        "namespaceSelector": {
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": list(unjudged)}]
        },
    }


def webhook_configurations(
    endpoint: Endpoint = Endpoint(),
    ca_bundle: str | None = None,
    name: str = NAME,
    unjudged_namespaces: tuple[str, ...] = UNJUDGED_NAMESPACES,
) -> list[dict[str, Any]]:
    """The MutatingWebhookConfiguration and the ValidatingWebhookConfiguration, in that order."""
    labels = {"app.kubernetes.io/name": "fluxwarden", "app.kubernetes.io/component": "webhook"}
    mutating = _webhook("mutate.fluxwarden.dev", "/mutate", endpoint, ca_bundle, unjudged_namespaces)
    mutating["reinvocationPolicy"] = "IfNeeded"
    validating = _webhook("validate.fluxwarden.dev", "/validate", endpoint, ca_bundle, unjudged_namespaces)
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name, "labels": labels},
            "webhooks": [mutating],
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name, "labels": labels},
            "webhooks": [validating],
        },
    ]
