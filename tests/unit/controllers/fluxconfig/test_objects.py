"""What a FluxConfig makes, derived by hand from FLUXCONFIG.md's naming and mapping rules."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from fluxwarden.controllers.fluxconfig import objects
from fluxwarden.controllers.fluxconfig.api import FluxConfigSpec
from fluxwarden.controllers.runtime.errors import Stalling

OWNER = {"apiVersion": "clusterconfig.azure.com/v1beta1", "kind": "FluxConfig", "name": "cluster-config", "uid": "u1"}


def config(spec: dict[str, Any], name: str = "cluster-config", namespace: str = "cluster-config") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "uid": "u1"}, "spec": spec}


def tutorial() -> FluxConfigSpec:
    return FluxConfigSpec.of(
        config(
            {
                "scope": "cluster",
                "gitRepository": {
                    "url": "git@github.com:Azure/gitops-flux2-kustomize-helm-mt",
                    "repositoryRef": {"branch": "main"},
                },
                "kustomizations": {
                    "infra": {"path": "./infrastructure", "prune": True},
                    "apps": {"path": "./apps/staging", "prune": True, "dependsOn": ["infra"]},
                },
            }
        )
    )


def test_scp_url_becomes_ssh_scheme_with_azure_defaults() -> None:
    source = objects.source(tutorial(), OWNER, "cluster-config-auth")
    assert source["kind"] == "GitRepository"
    assert source["spec"] == {
        "url": "ssh://git@github.com/Azure/gitops-flux2-kustomize-helm-mt",
        "interval": "600s",
        "timeout": "600s",
        "ref": {"branch": "main"},
        "secretRef": {"name": "cluster-config-auth"},
    }
    assert source["metadata"]["labels"] == {
        "clusterconfig.azure.com/is-managed": "true",
        "clusterconfig.azure.com/name": "cluster-config",
        "clusterconfig.azure.com/namespace": "cluster-config",
    }


def test_kustomizations_are_named_per_config_with_dependencies_mapped() -> None:
    spec = tutorial()
    made = {e.name: objects.kustomization(spec, e, OWNER, "flux-applier") for e in spec.kustomizations}
    apps = made["apps"]
    assert apps["metadata"]["name"] == "cluster-config-apps"
    assert apps["spec"]["dependsOn"] == [{"name": "cluster-config-infra"}]
    assert apps["spec"]["serviceAccountName"] == "flux-applier"
    assert apps["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "cluster-config"}
    assert (apps["spec"]["path"], apps["spec"]["prune"], apps["spec"]["wait"]) == ("./apps/staging", True, True)
    assert "dependsOn" not in made["infra"]["spec"]
    patch = apps["spec"]["patches"][0]
    assert patch["target"]["annotationSelector"] == "clusterconfig.azure.com/use-managed-source=true"
    assert "name: cluster-config\n" in patch["patch"] and "kind: GitRepository\n" in patch["patch"]


def test_no_kustomization_means_one_at_the_root() -> None:
    spec = FluxConfigSpec.of(config({"gitRepository": {"url": "https://example.com/repo"}}))
    assert [(e.name, e.path) for e in spec.kustomizations] == [("kustomization-1", "./")]


def test_suspend_reaches_every_child() -> None:
    spec = FluxConfigSpec.of(config({"suspend": True, "gitRepository": {"url": "https://example.com/r"}}))
    assert objects.source(spec, OWNER, None)["spec"]["suspend"] is True
    assert objects.kustomization(spec, spec.kustomizations[0], OWNER, "flux-applier")["spec"]["suspend"] is True


def test_azure_blob_is_a_bucket_with_provider_azure() -> None:
    spec = FluxConfigSpec.of(
        config(
            {
                "sourceKind": "AzureBlob",
                "azureBlob": {"url": "https://acct.blob.core.windows.net/", "containerName": "c"},
            }
        )
    )
    source = objects.source(spec, OWNER, None)
    assert source["kind"] == "Bucket"
    assert source["spec"]["provider"] == "azure"
    assert source["spec"]["endpoint"] == "https://acct.blob.core.windows.net"
    assert source["spec"]["bucketName"] == "c"


def test_bucket_endpoint_is_host_and_http_is_insecure() -> None:
    spec = FluxConfigSpec.of(
        config({"sourceKind": "Bucket", "bucket": {"url": "http://minio:9000", "bucketName": "b"}})
    )
    body = objects.source(spec, OWNER, None)["spec"]
    assert (body["endpoint"], body["insecure"], body["provider"]) == ("minio:9000", True, "generic")


def test_rbac_per_scope() -> None:
    binding = objects.cluster_role_binding("cluster-config", "flux-applier")
    assert binding["metadata"]["name"] == "flux-applier-cluster-config"
    assert binding["roleRef"]["name"] == "cluster-admin"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "flux-applier", "namespace": "cluster-config"}]
    local = objects.role_binding("team-a", "flux-applier")
    assert local["kind"] == "RoleBinding" and local["metadata"]["namespace"] == "team-a"


def test_auth_secret_is_base64_flux_format() -> None:
    secret = objects.auth_secret(tutorial(), OWNER, {"identity": b"KEY", "known_hosts": b"host"}, generated=True)
    assert secret["metadata"]["name"] == "cluster-config-auth"
    assert secret["metadata"]["labels"]["clusterconfig.azure.com/generated-key"] == "true"
    assert base64.b64decode(secret["data"]["identity"]) == b"KEY"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"sourceKind": "Svn", "gitRepository": {"url": "x"}}, "spec.sourceKind"),
        ({"gitRepository": {}}, "spec.gitRepository.url"),
        ({"gitRepository": {"url": "https://e/r", "syncIntervalInSeconds": -1}}, "syncIntervalInSeconds"),
        ({"gitRepository": {"url": "https://e/r"}, "kustomizations": {"a": {"dependsOn": "b"}}}, "dependsOn"),
        ({"gitRepository": {"url": "https://e/r"}, "reconciliationWaitDuration": "10m"}, "reconciliationWaitDuration"),
    ],
)
def test_malformed_fields_stall_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(Stalling) as raised:
        spec_view = FluxConfigSpec.of(config(spec))
        objects.source(spec_view, OWNER, None)
    assert field in raised.value.message


def test_iso_durations() -> None:
    spec = FluxConfigSpec.of(
        config({"gitRepository": {"url": "https://e/r"}, "reconciliationWaitDuration": "P1DT1H30M"})
    )
    assert spec.wait_duration == 86400 + 3600 + 1800


def test_no_managed_source_patch_for_oci() -> None:
    spec = FluxConfigSpec.of(config({"sourceKind": "OCIRepository", "ociRepository": {"url": "oci://r/a"}}))
    body = objects.kustomization(spec, spec.kustomizations[0], OWNER, "flux-applier")
    assert body["spec"]["sourceRef"]["kind"] == "OCIRepository" and "patches" not in body["spec"]


def test_a_failing_ssh_source_without_known_hosts_names_the_field() -> None:
    from fluxwarden.controllers.fluxconfig.fluxconfig import _hint

    bare = FluxConfigSpec.of(config({"gitRepository": {"url": "git@h:o/r", "repositoryRef": {"branch": "main"}}}))
    assert "spec.gitRepository.sshKnownHosts" in _hint(bare)
    given = FluxConfigSpec.of(config({"gitRepository": {"url": "git@h:o/r", "sshKnownHosts": "aA=="}}))
    assert _hint(given) == "" and _hint(FluxConfigSpec.of(config({"gitRepository": {"url": "https://h/r"}}))) == ""
