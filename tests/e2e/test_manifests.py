"""The install manifests build with kustomize and are accepted by a real API server (server dry-run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.kube import Kubectl

ROOT = Path(__file__).parents[2]


def built(kubectl: Kubectl, path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(kubectl("kustomize", str(ROOT / path)).stdout) if d]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_webhook_base_is_what_the_issue_asks_for(kubectl: Kubectl) -> None:
    objects = built(kubectl, "manifests/base")
    (deployment,) = by_kind(objects, "Deployment")
    assert deployment["metadata"]["namespace"] == "flux-system"
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert {"readinessProbe", "livenessProbe"} <= set(container) and container["resources"]["requests"]
    (service,) = by_kind(objects, "Service")
    assert service["spec"]["ports"][0]["port"] == 443 and service["spec"]["ports"][0]["targetPort"] == "https"
    assert [p["containerPort"] for p in container["ports"]] == [8443, 8080]
    assert by_kind(objects, "PodDisruptionBudget") and by_kind(objects, "ServiceAccount")
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        (config,) = by_kind(objects, kind)
        (hook,) = config["webhooks"]
        assert hook["failurePolicy"] == "Fail" and hook["timeoutSeconds"] == 5 and hook["sideEffects"] == "None"
        assert set(hook["namespaceSelector"]["matchExpressions"][0]["values"]) == {"kube-system", "flux-system"}


def test_enforce_off_overlay_only_flips_the_setting(kubectl: Kubectl) -> None:
    base = built(kubectl, "manifests/base")
    off = built(kubectl, "manifests/overlays/enforce-off")
    (settings,) = by_kind(off, "ConfigMap")
    assert settings["data"]["FLUXWARDEN_ENFORCE"] == "false"
    assert [o for o in off if o["kind"] != "ConfigMap"] == [o for o in base if o["kind"] != "ConfigMap"]


def test_everything_is_accepted_by_the_api_server(kubectl: Kubectl, admin_api: client.ApiClient) -> None:
    try:
        client.CoreV1Api(admin_api).create_namespace({"metadata": {"name": "flux-system"}})
    except ApiException as error:
        assert error.status == 409
    # --force-conflicts: the e2e suite installed Flux's own CRDs of the same names (another field manager).
    result = kubectl("apply", "--server-side", "--dry-run=server", "--force-conflicts", "-k", str(ROOT / "manifests"))
    assert "deployment.apps/fluxwarden-webhook serverside-applied (server dry run)" in result.stdout
    assert "deployment.apps/fluxwarden-controllers serverside-applied (server dry run)" in result.stdout
    assert "customresourcedefinition.apiextensions.k8s.io/kustomizations.kustomize.toolkit.fluxcd.io" in result.stdout
