"""The HelmRelease spec view: release names as Flux makes them, storage namespace, remediation defaults."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from fluxwarden.controllers.helm.actions import go_duration
from fluxwarden.controllers.helm.api import HelmReleaseSpec, release_name
from fluxwarden.controllers.helm.chart import template, template_matches
from fluxwarden.controllers.runtime.errors import Stalling


def release(spec: dict[str, Any], name: str = "app", namespace: str = "config") -> dict[str, Any]:
    chart = {"chart": {"spec": {"chart": "c", "sourceRef": {"kind": "HelmRepository", "name": "r"}}}}
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"interval": "1m", **chart, **spec}}


def test_release_name_defaults_to_target_namespace_dash_name() -> None:
    assert release_name(release({})) == "app"
    assert release_name(release({"targetNamespace": "nginx"})) == "nginx-app"
    assert release_name(release({"targetNamespace": "nginx", "releaseName": "mine"})) == "mine"


def test_a_long_release_name_is_cut_to_40_characters_and_a_hash() -> None:
    long = "n" * 30
    full = f"{long}-{'a' * 30}"
    expected = full[:40] + "-" + hashlib.sha256(full.encode()).hexdigest()[:12]
    name = release_name(release({"targetNamespace": long}, name="a" * 30))
    assert name == expected
    assert len(name) == 53


def test_storage_namespace_is_the_target_namespace_and_any_other_value_stalls() -> None:
    spec = HelmReleaseSpec.of(release({"targetNamespace": "nginx"}))
    assert spec.storage_namespace() == "nginx"
    assert HelmReleaseSpec.of(release({"targetNamespace": "nginx", "storageNamespace": "nginx"})).storage_namespace()
    with pytest.raises(Stalling) as raised:
        HelmReleaseSpec.of(release({"targetNamespace": "nginx", "storageNamespace": "config"})).storage_namespace()
    assert raised.value.reason == "UnsupportedField"
    assert "spec.storageNamespace 'config'" in raised.value.message and "'nginx'" in raised.value.message


def test_remediation_defaults_are_fluxs() -> None:
    spec = HelmReleaseSpec.of(release({"upgrade": {"remediation": {"retries": 2}}}))
    install, upgrade = spec.remediation("install"), spec.remediation("upgrade")
    assert (install.retries, install.strategy, install.remediate_last_failure) == (0, "uninstall", False)
    assert (upgrade.retries, upgrade.strategy, upgrade.remediate_last_failure) == (2, "rollback", True)
    assert upgrade.exhausted({"upgradeFailures": 3}) and not upgrade.exhausted({"upgradeFailures": 2})
    forever = HelmReleaseSpec.of(release({"install": {"remediation": {"retries": -1}}})).remediation("install")
    assert not forever.exhausted({"installFailures": 1000})


def test_chart_and_chart_ref_are_exclusive() -> None:
    both = release({"chartRef": {"kind": "HelmChart", "name": "x"}})
    with pytest.raises(Stalling, match="mutually exclusive"):
        HelmReleaseSpec.of(both)


@pytest.mark.parametrize(
    ("seconds", "expected"), [(0.25, "250ms"), (1.5, "1.5s"), (3.0, "3s"), (62.25, "1m2.25s"), (120, "2m0s")]
)
def test_action_durations_are_written_as_go_durations(seconds: float, expected: str) -> None:
    assert go_duration(seconds) == expected


def test_the_helm_chart_template_is_reapplied_when_a_label_it_set_is_dropped() -> None:
    obj = release({"chart": {"metadata": {"labels": {"team": "a"}}, "spec": {"chart": "c", "sourceRef": {
        "kind": "HelmRepository", "name": "r"}}}})  # fmt: skip
    body = template(obj, "1m")
    ours = {"manager": "helm-controller", "operation": "Apply",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:team": {}, "f:extra": {}}}}}  # fmt: skip
    live = {
        "metadata": {**body["metadata"], "labels": {**body["metadata"]["labels"], "extra": "x"}},
        "spec": body["spec"],
    }
    assert not template_matches({**live, "metadata": {**live["metadata"], "managedFields": [ours]}}, body)
    someone_else = {**ours, "manager": "kubectl"}
    assert template_matches({**live, "metadata": {**live["metadata"], "managedFields": [someone_else]}}, body)
