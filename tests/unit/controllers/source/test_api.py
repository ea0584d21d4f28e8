"""Every spec field of Flux 2.9's source kinds is implemented, defaulted, or in an UNSUPPORTED table.

The lists below are the fields of source-controller v1.9.5's CRDs; a field added there and to
neither list fails ``test_every_flux_field_is_accounted_for`` (the CRDs of ``tests/flux/crds.sh``).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.runtime.unsupported import Table, find
from fluxwarden.controllers.source import api
from tests.support.flux_crds import flux_crd_dir

# Read by the reconcilers (or the shared runtime: interval, suspend), or ignored by Flux too.
HANDLED = {
    "GitRepository": {"url", "ref", "secretRef", "timeout", "ignore", "interval", "suspend"},
    # provider and insecure only count for type 'oci' (a cloud provider stalls it); Flux does not implement accessFrom.
    "HelmRepository": {
        "url",
        "secretRef",
        "certSecretRef",
        "passCredentials",
        "timeout",
        "interval",
        "suspend",
        "provider",
        "insecure",
        "accessFrom",
    },
    "HelmChart": {"chart", "version", "sourceRef", "valuesFiles", "interval", "suspend"},
}
TABLES = {
    api.GIT_REPOSITORY: api.GIT_REPOSITORY_UNSUPPORTED,
    api.HELM_REPOSITORY: api.HELM_REPOSITORY_UNSUPPORTED,
    api.HELM_CHART: api.HELM_CHART_UNSUPPORTED,
}


def stalled_fields(table: Table) -> set[str]:
    return {rule.path.split(".")[1] for rule in table.rules}


def flux_spec_fields(resource: Resource) -> set[str]:
    crd = yaml.safe_load((flux_crd_dir() / f"{resource.group}_{resource.plural}.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == resource.version]
    return set(version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"])


@pytest.mark.parametrize("resource", TABLES, ids=[r.kind for r in TABLES])
def test_every_flux_field_is_accounted_for(resource: Resource) -> None:
    fields = flux_spec_fields(resource)
    assert fields - HANDLED[resource.kind] - stalled_fields(TABLES[resource]) == set()


def git(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "a", "namespace": "n"}, "spec": {"url": "https://x/r.git", **spec}}


def test_a_service_account_stalls_a_git_repository_even_where_the_crd_admits_it_alone() -> None:
    finding = find(git(serviceAccountName="sa"), api.GIT_REPOSITORY_UNSUPPORTED)
    assert finding is not None
    assert finding.where == "spec.serviceAccountName"
    assert find(git(), api.GIT_REPOSITORY_UNSUPPORTED) is None


def test_a_chart_from_an_unknown_source_kind_stalls_as_unsupported() -> None:
    chart: dict[str, Any] = {"metadata": {"name": "a", "namespace": "n"},
             "spec": {"chart": "c", "sourceRef": {"kind": "OCIRepository", "name": "b"}}}  # fmt: skip
    finding = find(chart, api.HELM_CHART_UNSUPPORTED)
    assert finding is not None
    assert finding.message.startswith(
        "spec.sourceRef.kind 'OCIRepository' is not supported by fluxwarden yet; use a HelmRepository, GitRepository"
    )
    for kind in ("HelmRepository", "GitRepository", "Bucket"):
        chart["spec"]["sourceRef"]["kind"] = kind
        assert find(chart, api.HELM_CHART_UNSUPPORTED) is None
