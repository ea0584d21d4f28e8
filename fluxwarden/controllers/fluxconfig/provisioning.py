"""ARM's ``provisioningState`` from the previous one and this reconcile's compliance. Pure.

``Succeeded`` once the objects are made. With ``waitForReconciliation``, a new config is
``Creating`` until its first ``Compliant``, and ``Failed`` (its ``errorMessage`` saying so) when
``reconciliationWaitDuration`` runs out first; it stays ``Failed`` until it is Compliant.
"""

from __future__ import annotations

from dataclasses import dataclass

from fluxwarden.controllers.fluxconfig.compliance import COMPLIANT

TIMED_OUT = "not Compliant within reconciliationWaitDuration"


@dataclass(frozen=True)
class Provisioning:
    state: str
    error: str | None = None  # errorMessage


def provisioning(
    previous: str | None,
    previous_error: str | None,
    compliance: str,
    wait: bool,
    wait_seconds: float,
    age: float,
    detail: str | None,
) -> Provisioning:
    """``previous``/``previous_error`` are the status as read, before this reconcile changed it."""
    if compliance == COMPLIANT or not wait:
        return Provisioning("Succeeded")
    timed_out = previous == "Failed" and (previous_error or "").startswith(TIMED_OUT)
    if timed_out:
        return Provisioning("Failed", previous_error)
    if previous not in (None, "Creating"):  # Compliant once already: the wait is over
        return Provisioning("Succeeded")
    if age >= wait_seconds:
        return Provisioning("Failed", f"{TIMED_OUT}: {detail or compliance}")
    return Provisioning("Creating")
