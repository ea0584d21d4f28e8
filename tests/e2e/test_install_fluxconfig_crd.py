"""fluxwarden's FluxConfig CRD on a real API server: Azure's defaults, enums, immutability, the columns."""

from __future__ import annotations

import json
from typing import Any

from tests.support.kube import Kubectl

GROUP_VERSION = "clusterconfig.azure.com/v1beta1"


def _fluxconfig(namespace: str, name: str, spec: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": GROUP_VERSION, "kind": "FluxConfig",
                       "metadata": {"name": name, "namespace": namespace}, "spec": spec})  # fmt: skip


def _apply(kubectl: Kubectl, body: str, check: bool = True) -> Any:
    return kubectl("apply", "--server-side", "--field-manager=e2e", "-o", "json", "-f", "-", input=body, check=check)


def test_azures_defaults_fill_what_is_left_out(fluxconfig_crd: str, kubectl: Kubectl, namespace: str) -> None:
    spec = {"gitRepository": {"url": "https://example.com/repo.git", "repositoryRef": {"branch": "main"}},
            "kustomizations": {"infra": {"path": "./infrastructure"}, "apps": {"dependsOn": ["infra"]}}}  # fmt: skip
    stored = json.loads(_apply(kubectl, _fluxconfig(namespace, "cfg", spec)).stdout)["spec"]
    assert stored["scope"] == "cluster" and stored["sourceKind"] == "GitRepository" and stored["suspend"] is False
    assert "namespace" not in stored, "no default: absent means metadata.namespace, and the webhook fills it in"
    git = stored["gitRepository"]
    assert (git["provider"], git["timeoutInSeconds"], git["syncIntervalInSeconds"]) == ("Generic", 600, 600)
    for name, path in (("infra", "./infrastructure"), ("apps", "")):
        kustomization = stored["kustomizations"][name]
        assert kustomization["path"] == path
        assert (kustomization["timeoutInSeconds"], kustomization["syncIntervalInSeconds"]) == (600, 600)
        assert (kustomization["prune"], kustomization["force"], kustomization["wait"]) == (False, False, True)
        assert "retryIntervalInSeconds" not in kustomization
    assert stored["kustomizations"]["apps"]["dependsOn"] == ["infra"]


def test_enums_and_immutable_fields_are_refused_by_the_api_server(
    fluxconfig_crd: str, kubectl: Kubectl, namespace: str
) -> None:
    bad_enum = _apply(kubectl, _fluxconfig(namespace, "bad", {"scope": "tenant"}), check=False)
    assert bad_enum.returncode != 0 and 'spec.scope: Unsupported value: "tenant"' in bad_enum.stderr
    bad_kind = _apply(kubectl, _fluxconfig(namespace, "bad", {"sourceKind": "HelmRepository"}), check=False)
    assert bad_kind.returncode != 0 and "spec.sourceKind: Unsupported value" in bad_kind.stderr

    _apply(kubectl, _fluxconfig(namespace, "cfg", {"scope": "namespace", "namespace": namespace}))
    moved = _apply(kubectl, _fluxconfig(namespace, "cfg", {"scope": "cluster", "namespace": namespace}), check=False)
    assert moved.returncode != 0 and "spec.scope: Invalid value" in moved.stderr
    assert "scope is immutable" in moved.stderr
    for spec in ({"scope": "namespace", "namespace": "elsewhere"}, {"scope": "namespace"}):
        changed = _apply(kubectl, _fluxconfig(namespace, "cfg", spec), check=False)
        assert changed.returncode != 0 and "namespace is immutable" in changed.stderr, changed.stderr
    # The status subresource: a spec write leaves status alone, and status is written apart.
    kubectl("patch", "fluxconfig", "cfg", "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"provisioningState": "Succeeded"}}))  # fmt: skip
    got = json.loads(kubectl("get", "fc", "cfg", "-n", namespace, "-o", "json").stdout)
    assert got["status"] == {"provisioningState": "Succeeded", "complianceState": "Unknown"}, "ARM's default"


def test_printer_columns_show_the_url_of_any_source_kind(fluxconfig_crd: str, kubectl: Kubectl, namespace: str) -> None:
    sources: dict[str, dict[str, Any]] = {
        "git": {"gitRepository": {"url": "https://example.com/repo.git", "repositoryRef": {"branch": "main"}}},
        "bucket": {"sourceKind": "Bucket", "bucket": {"url": "https://s3.example.com", "bucketName": "b"}},
        "blob": {
            "sourceKind": "AzureBlob",
            "azureBlob": {"url": "https://acct.blob.core.windows.net", "containerName": "c"},
        },
        "oci": {"sourceKind": "OCIRepository", "ociRepository": {"url": "oci://ghcr.io/org/manifests"}},
    }
    for name, spec in sources.items():
        _apply(kubectl, _fluxconfig(namespace, name, {"scope": "namespace", **spec}))
    kubectl("patch", "fc", "git", "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"complianceState": "Pending", "provisioningState": "Creating"}}))  # fmt: skip

    header, *rows = kubectl("get", "fc", "-n", namespace).stdout.splitlines()
    assert header.split() == ["NAME", "SCOPE", "URL", "COMPLIANCE", "PROVISION", "AGE"]
    starts = [header.index(column) for column in header.split()]
    cells = [[row[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)][:-1] for row in rows]
    assert sorted(cells) == [  # an empty cell: no status yet (the status default applies once status is written)
        ["blob", "namespace", "https://acct.blob.core.windows.net", "", ""],
        ["bucket", "namespace", "https://s3.example.com", "", ""],
        ["git", "namespace", "https://example.com/repo.git", "Pending", "Creating"],
        ["oci", "namespace", "oci://ghcr.io/org/manifests", "", ""],
    ]
