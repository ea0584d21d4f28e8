"""The e2e suite runs on Flux's own CRDs (tests/flux/crds.sh), and the stand-ins in manifests/crds, kept for
clusters without Flux, are still accepted by the API server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from fluxwarden.tenancy.kinds import FLUXCONFIG, KINDS
from tests.support.field_warnings import FieldWarnings
from tests.support.flux_crds import flux_crd_dir, flux_version
from tests.support.kube import Kubectl

ROOT = Path(__file__).parents[2]
GROUP = "source.toolkit.fluxcd.io"
# Flux 2.9 serves only the current API version of each kind (notification's Alert/Provider: v1beta3).
SERVED = {
    "buckets.source.toolkit.fluxcd.io": ["v1"],
    "externalartifacts.source.toolkit.fluxcd.io": ["v1"],
    "gitrepositories.source.toolkit.fluxcd.io": ["v1"],
    "helmcharts.source.toolkit.fluxcd.io": ["v1"],
    "helmrepositories.source.toolkit.fluxcd.io": ["v1"],
    "ocirepositories.source.toolkit.fluxcd.io": ["v1"],
    "kustomizations.kustomize.toolkit.fluxcd.io": ["v1"],
    "helmreleases.helm.toolkit.fluxcd.io": ["v2"],
    "alerts.notification.toolkit.fluxcd.io": ["v1beta3"],
    "providers.notification.toolkit.fluxcd.io": ["v1beta3"],
    "receivers.notification.toolkit.fluxcd.io": ["v1"],
    "imagepolicies.image.toolkit.fluxcd.io": ["v1"],
    "imagerepositories.image.toolkit.fluxcd.io": ["v1"],
    "imageupdateautomations.image.toolkit.fluxcd.io": ["v1"],
    "artifactgenerators.source.extensions.fluxcd.io": ["v1beta1"],
}


def crd(kubectl: Kubectl, name: str) -> dict[str, Any]:
    found = json.loads(kubectl("get", "crd", name, "-o", "json").stdout)
    assert isinstance(found, dict)
    return found


def test_installed_crds_are_fluxs_own(flux_crds: list[str], kubectl: Kubectl) -> None:
    assert sorted(name.removeprefix("customresourcedefinition.apiextensions.k8s.io/") for name in flux_crds) == sorted(
        SERVED
    )
    release = flux_version(flux_crd_dir())
    assert release == "v2.9.5"
    for name, versions in SERVED.items():
        installed = crd(kubectl, name)
        labels = installed["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "flux" and labels["app.kubernetes.io/version"] == release
        assert "controller-gen.kubebuilder.io/version" in installed["metadata"]["annotations"], name
        assert [v["name"] for v in installed["spec"]["versions"] if v["served"]] == versions, name


def test_gitrepository_has_fluxs_strict_v1_schema(flux_crds: list[str], kubectl: Kubectl) -> None:
    installed = crd(kubectl, "gitrepositories.source.toolkit.fluxcd.io")
    assert installed["metadata"]["labels"]["app.kubernetes.io/component"] == "source-controller"
    (v1,) = installed["spec"]["versions"]
    spec = v1["schema"]["openAPIV3Schema"]["properties"]["spec"]
    # The stand-ins keep unknown fields and require nothing; Flux's schema requires interval and url
    # and validates them (a stand-in would store any string).
    assert set(spec["required"]) == {"interval", "url"}
    assert spec["properties"]["url"]["pattern"].startswith("^(http|https|ssh)://")
    assert "x-kubernetes-preserve-unknown-fields" not in spec


def test_a_gitrepository_outside_fluxs_schema_is_refused(
    flux_crds: list[str], kubectl: Kubectl, namespace: str
) -> None:
    bad = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"interval": "1m", "url": "file:///etc"},
    }
    result = kubectl("apply", "--server-side", "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert "spec.url" in result.stderr and "should match" in result.stderr


def test_the_standin_crds_still_pass_a_server_side_dry_run(flux_crds: list[str], kubectl: Kubectl) -> None:
    """manifests/crds stays for clusters without Flux. Here Flux's CRDs of the same names are installed, so
    the dry run is an update taking over their fields: the API server validates each whole CRD."""
    before = crd(kubectl, "kustomizations.kustomize.toolkit.fluxcd.io")["metadata"]["resourceVersion"]
    result = kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--force-conflicts",
        "--field-manager=fluxwarden-standins",
        "-k",
        str(ROOT / "manifests" / "crds"),
    )
    standins = [d for d in yaml.safe_load_all(kubectl("kustomize", str(ROOT / "manifests" / "crds")).stdout) if d]
    applied = [line for line in result.stdout.splitlines() if line.endswith("serverside-applied (server dry run)")]
    assert len(applied) == len(standins), result.stdout
    assert any("kustomizations.kustomize.toolkit.fluxcd.io" in line for line in applied), result.stdout
    assert any("fluxconfigs.clusterconfig.azure.com" in line for line in applied), result.stdout
    after = crd(kubectl, "kustomizations.kustomize.toolkit.fluxcd.io")
    assert after["metadata"]["resourceVersion"] == before  # a dry run wrote nothing
    assert after["metadata"]["labels"]["app.kubernetes.io/part-of"] == "flux"


def test_a_field_outside_fluxs_schema_is_pruned_and_caught(
    flux_crds: list[str], admin_api: client.ApiClient, field_warnings: FieldWarnings, namespace: str
) -> None:
    """Why every e2e test fails on an unknown-field warning (conftest ``no_pruned_fields``): the write
    succeeds and the field is gone. GitRepository v1 has no status.url (v1beta2 had)."""
    custom = client.CustomObjectsApi(admin_api)
    repo = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "pruned", "namespace": namespace},
        "spec": {"interval": "1m", "url": "https://example.com/repo.git"},
    }
    custom.create_namespaced_custom_object(GROUP, "v1", namespace, "gitrepositories", repo)
    field_warnings.take()

    stored = custom.patch_namespaced_custom_object_status(
        GROUP, "v1", namespace, "gitrepositories", "pruned", {"status": {"url": "http://x/", "observedGeneration": 1}}
    )

    assert stored["status"] == {"observedGeneration": 1}
    (warning,) = field_warnings.take()
    assert f"/namespaces/{namespace}/gitrepositories/pruned/status" in warning
    assert 'unknown field \\"status.url\\"' in warning


def test_the_kinds_table_names_fluxs_crds_and_current_versions(flux_crds: list[str], kubectl: Kubectl) -> None:
    """The webhook registration and the rules come from the kinds table: it must match Flux's own CRDs."""
    table = {f"{k.plural}.{k.group}": k for k in KINDS if k.group != FLUXCONFIG}
    for name, flux_kind in table.items():
        installed = crd(kubectl, name)  # raises if the table names a CRD Flux does not have
        assert installed["spec"]["names"]["kind"] == flux_kind.kind
        assert SERVED[name] == [flux_kind.current_version], name
    # Flux kinds the table does not list, so the webhook never judges them (their references are not
    # tenancy-checked): ExternalArtifact (source-controller) and ArtifactGenerator (source-watcher).
    assert set(SERVED) - set(table) == {
        "externalartifacts.source.toolkit.fluxcd.io",
        "artifactgenerators.source.extensions.fluxcd.io",
    }
