"""ARM fields fluxwarden cannot honour make the FluxConfig Stalled (reason UnsupportedField), naming the
field, with the ARM status saying Failed; nothing is made meanwhile, and removing the field heals it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.fluxconfig import Stages, condition, controllers, current, stages, status

__all__ = ["controllers", "stages"]  # fixtures

OCI = {"url": "oci://registry.example/app", "repositoryRef": {"tag": "1.0"}}
BLOB = {"url": "https://account.blob.core.windows.net", "containerName": "c"}


@pytest.mark.parametrize(
    ("kind", "block", "extra", "field"),
    [
        ("AzureBlob", "azureBlob", {"managedIdentity": {"clientId": "id"}}, "spec.azureBlob.managedIdentity"),
        ("OCIRepository", "ociRepository", {"useWorkloadIdentity": True}, "spec.ociRepository.useWorkloadIdentity"),
        ("OCIRepository", "ociRepository", {"serviceAccountName": "puller"}, "spec.ociRepository.serviceAccountName"),
        ("OCIRepository", "ociRepository", {"verify": {"provider": "cosign"}}, "spec.ociRepository.verify"),
    ],
)
def test_an_unsupported_arm_field_stalls_naming_it_until_removed(
    stages: Stages, namespace_factory: Callable[[], str], kind: str, block: str, extra: dict[str, Any], field: str
) -> None:
    stage = stages(namespace_factory())
    configs = stage.configs
    source = {**(OCI if block == "ociRepository" else BLOB), **extra}
    configs.create("cfg", {"scope": "namespace", "sourceKind": kind, block: source})
    stalled = configs.stalled("cfg")
    assert condition(stalled, "Stalled")["reason"] == "UnsupportedField"
    assert field in condition(stalled)["message"] and condition(stalled)["status"] == "False"
    assert status(stalled)["provisioningState"] == "Failed" and field in status(stalled)["errorMessage"]
    assert configs.kustomizations() == {}, "nothing is made while a field would be ignored"

    configs.patch("cfg", {"spec": {block: {key: None for key in extra}}})
    healed = configs.wait(
        "cfg", lambda o: condition(o, "Stalled").get("status") != "True" and current(o), "no longer Stalled"
    )
    assert field not in condition(healed).get("message", "")
    assert set(configs.kustomizations()) == {"cfg-kustomization-1"}, "the config is made once the field is gone"
