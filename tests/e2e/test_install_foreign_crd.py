"""The install never overwrites a FluxConfig CRD it does not own (AKS with microsoft.flux serves its own).

On a control plane of its own: the test installs a foreign ``fluxconfigs.clusterconfig.azure.com``
(v1alpha1, as Azure's extension serves it, written by the field manager ``helm``), which the session's
cluster, where fluxwarden's CRD is installed for other tests, must never see.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fluxwarden.cli.install import shipped_crds
from fluxwarden.cli.main import main
from tests.support.control_plane import ControlPlane
from tests.support.kube import Kubectl, KubectlRunner, kubectl_binary
from tests.support.manifests import ROOT

NAME = "fluxconfigs.clusterconfig.azure.com"
# The shape public dumps show for Azure's CRD, trimmed: served v1alpha1 only, no fluxwarden label.
FOREIGN = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": NAME, "labels": {"app.kubernetes.io/managed-by": "Helm"}},
    "spec": {
        "group": "clusterconfig.azure.com",
        "names": {
            "kind": "FluxConfig",
            "listKind": "FluxConfigList",
            "plural": "fluxconfigs",
            "singular": "fluxconfig",
            "shortNames": ["fc"],
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


@pytest.fixture(scope="module")
def cluster(test_binaries: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, Kubectl]]:
    with ControlPlane(test_binaries, tmp_path_factory.mktemp("foreign-crd")) as plane:
        yield plane, KubectlRunner(kubectl_binary(test_binaries), plane.kubeconfig, plane.kubeconfig.parent / "cache")


def _check(plane: ControlPlane, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["install", "check", "--kubeconfig", str(plane.kubeconfig)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_check_covers_every_shipped_crd(cluster: tuple[ControlPlane, Kubectl]) -> None:
    _, kubectl = cluster
    shipped = [d for d in yaml.safe_load_all(kubectl("kustomize", str(ROOT / "manifests" / "crds")).stdout) if d]
    assert sorted(d["metadata"]["name"] for d in shipped) == shipped_crds()
    assert all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "fluxwarden" for d in shipped)


def test_a_foreign_fluxconfig_crd_is_refused_and_left_alone(
    cluster: tuple[ControlPlane, Kubectl], capsys: pytest.CaptureFixture[str]
) -> None:
    plane, kubectl = cluster
    code, out, _ = _check(plane, capsys)
    assert (
        code == 0
        and out.strip()
        == f"✔ {len(shipped_crds())} CRDs: 0 fluxwarden's, {len(shipped_crds())} absent, none of another owner"
    )

    kubectl("create", "--field-manager=helm", "-f", "-", input=json.dumps(FOREIGN))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{NAME}")
    before = json.loads(kubectl("get", "crd", NAME, "-o", "json").stdout)["metadata"]["resourceVersion"]

    code, out, err = _check(plane, capsys)
    assert code == 1 and out == ""
    (line,) = err.splitlines()
    assert line == (
        f"✗ CustomResourceDefinition {NAME} is not fluxwarden's (no app.kubernetes.io/part-of=fluxwarden label; "
        "serves v1alpha1; written by helm): refusing to overwrite it; on AKS this is the microsoft.flux "
        "extension's CRD, which fluxwarden does not read; remove the extension first, or install fluxwarden "
        "without manifests/crds"
    )

    # kubectl alone refuses too, without --force-conflicts: spec.versions is helm's.
    for args in (("-k", str(ROOT / "manifests" / "crds")), ("--dry-run=server", "-k", str(ROOT / "manifests"))):
        applied = kubectl("apply", "--server-side", *args, check=False)
        assert applied.returncode != 0
        assert 'conflict with "helm" using apiextensions.k8s.io/v1: .spec.versions' in applied.stderr, applied.stderr
    # And --force-conflicts would not get past Azure's stored objects: v1alpha1 must stay.
    forced = kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "manifests/crds/fluxconfig.yaml"),
                     check=False)  # fmt: skip
    assert forced.returncode != 0 and '"v1alpha1": missing from spec.versions' in forced.stderr, forced.stderr
    after = json.loads(kubectl("get", "crd", NAME, "-o", "json").stdout)
    assert after["metadata"]["resourceVersion"] == before, "the foreign CRD is unchanged"
    assert [v["name"] for v in after["spec"]["versions"]] == ["v1alpha1"]


def test_fluxwardens_own_crds_pass_and_a_flux_crd_is_named_as_flux(
    cluster: tuple[ControlPlane, Kubectl], capsys: pytest.CaptureFixture[str]
) -> None:
    plane, kubectl = cluster
    kubectl("delete", "crd", NAME, "--ignore-not-found")
    kubectl("apply", "--server-side", "-k", str(ROOT / "manifests" / "crds"))
    code, out, _ = _check(plane, capsys)
    assert code == 0 and out.startswith(f"✔ {len(shipped_crds())} CRDs: {len(shipped_crds())} fluxwarden's, 0 absent")

    # A Flux CRD (part-of=flux, as `flux install` labels it) in the place of fluxwarden's stand-in.
    kubectl("label", "crd", "kustomizations.kustomize.toolkit.fluxcd.io", "app.kubernetes.io/part-of=flux",
            "--overwrite", "--field-manager=flux-install")  # fmt: skip
    code, _, err = _check(plane, capsys)
    (line,) = err.splitlines()
    assert code == 1 and line.startswith(
        "✗ CustomResourceDefinition kustomizations.kustomize.toolkit.fluxcd.io is not fluxwarden's "
        "(app.kubernetes.io/part-of=flux; serves "
    )
    assert line.endswith("keep Flux's CRDs: install manifests/overlays/beside-flux, which ships none"), line
