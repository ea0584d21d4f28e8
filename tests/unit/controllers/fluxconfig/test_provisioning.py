"""provisioningState as a table: the previous state as read, this reconcile's compliance, the wait."""

from __future__ import annotations

import pytest

from fluxwarden.controllers.fluxconfig.provisioning import Provisioning, provisioning

TIMEOUT = "not Compliant within reconciliationWaitDuration: Kustomization ns/a: failed"


@pytest.mark.parametrize(
    ("previous", "error", "compliance", "wait", "age", "expected"),
    [
        (None, None, "Pending", False, 0, Provisioning("Succeeded")),
        (None, None, "Pending", True, 5, Provisioning("Creating")),
        ("Creating", None, "Non-Compliant", True, 5, Provisioning("Creating")),
        ("Creating", None, "Compliant", True, 5, Provisioning("Succeeded")),
        ("Creating", None, "Non-Compliant", True, 700, Provisioning("Failed", TIMEOUT)),
        # a timeout sticks while the config is still not Compliant, and clears once it is
        ("Failed", TIMEOUT, "Non-Compliant", True, 900, Provisioning("Failed", TIMEOUT)),
        ("Failed", TIMEOUT, "Compliant", True, 900, Provisioning("Succeeded")),
        # Compliant once already: a later failure does not bring Creating back
        ("Succeeded", None, "Non-Compliant", True, 900, Provisioning("Succeeded")),
        # a spec error fixed: not a timeout, so no Failed carried over
        ("Failed", "spec.x: bad", "Pending", True, 900, Provisioning("Succeeded")),
    ],
)
def test_provisioning(
    previous: str | None, error: str | None, compliance: str, wait: bool, age: float, expected: Provisioning
) -> None:
    detail = "Kustomization ns/a: failed"
    assert provisioning(previous, error, compliance, wait, 600, age, detail) == expected
