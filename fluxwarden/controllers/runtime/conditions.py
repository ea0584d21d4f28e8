"""kstatus-compatible conditions on a status dict: set, drop, and summarise into Ready.

Pure functions over plain dicts, called by the runtime once per reconcile; controllers set their
own detail conditions (``ArtifactInStorage``, ``FetchFailed``...) and never Ready directly.
"""

from __future__ import annotations

import datetime
from typing import Any

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"

MESSAGE_LIMIT = 1024


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == type_:
            return dict(condition)
    return None


def is_true(obj: dict[str, Any], type_: str = READY) -> bool:
    condition = get(obj.get("status") or {}, type_)
    return condition is not None and condition.get("status") == "True"


def set_condition(
    status: dict[str, Any], type_: str, value: bool, reason: str, message: str, generation: int | None
) -> None:
    """Set one condition; ``lastTransitionTime`` moves only when the status value changes."""
    conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
    text = "True" if value else "False"
    previous = next((c for c in conditions if c.get("type") == type_), None)
    changed_at = previous["lastTransitionTime"] if previous and previous.get("status") == text else now_rfc3339()
    condition: dict[str, Any] = {
        "type": type_,
        "status": text,
        "reason": reason,
        "message": message[:MESSAGE_LIMIT],
        "lastTransitionTime": changed_at,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    others = [c for c in conditions if c.get("type") != type_]
    status["conditions"] = _ordered([*others, condition])


def drop(status: dict[str, Any], type_: str) -> None:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def _ordered(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ready, Reconciling, Stalled first (as Flux lists them), then the rest by type."""
    rank = {READY: 0, RECONCILING: 1, STALLED: 2}
    return sorted(conditions, key=lambda c: (rank.get(c.get("type", ""), 3), c.get("type", "")))


def summarize(status: dict[str, Any], outcome: str, reason: str, message: str, generation: int | None) -> None:
    """Derive Ready / Reconciling / Stalled from the outcome of one reconcile.

    ``outcome`` is ``succeeded``, ``retrying`` (Failure or Waiting) or ``stalled``.
    """
    if outcome == "succeeded":
        set_condition(status, READY, True, reason, message, generation)
        drop(status, RECONCILING)
        drop(status, STALLED)
    elif outcome == "stalled":
        set_condition(status, READY, False, reason, message, generation)
        set_condition(status, STALLED, True, reason, message, generation)
        drop(status, RECONCILING)
    else:
        set_condition(status, READY, False, reason, message, generation)
        set_condition(status, RECONCILING, True, "ProgressingWithRetry", message, generation)
        drop(status, STALLED)
