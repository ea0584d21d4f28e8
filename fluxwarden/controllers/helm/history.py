"""``status.history``: Flux's snapshots of the releases this HelmRelease made, newest first."""

from __future__ import annotations

import datetime
from typing import Any

from fluxwarden.controllers.helm.storage import Release
from fluxwarden.controllers.helm.values import config_digest

KEPT = 5  # snapshots kept: enough for a rollback target and a test result, as Flux keeps


def _time(value: Any) -> str | None:
    """helm's RFC 3339 (nanoseconds, any offset) as the API's RFC 3339 in UTC, to the second."""
    if not value:
        return None
    text = str(value)
    if "." in text:  # Python parses at most microseconds
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        text = head + tail[len(digits) :]
    text = text.replace("Z", "+00:00")
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _selected(name: str, filters: list[dict[str, Any]]) -> bool:
    """``test.filters``: as helm's ``--filter``, included names (if any) and no excluded one."""
    included = [str(f.get("name")) for f in filters if not f.get("exclude")]
    excluded = {str(f.get("name")) for f in filters if f.get("exclude")}
    return name not in excluded and (not included or name in included)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_hooks(release: Release, filters: list[dict[str, Any]] | None = None) -> dict[str, dict[str, str]]:
    """The test hooks of a release that ``filters`` select, and how their last run went."""
    hooks: dict[str, dict[str, str]] = {}
    for hook in release.hooks:
        if "test" not in (hook.get("events") or []) or not _selected(str(hook.get("name")), filters or []):
            continue
        run = hook.get("last_run") or {}
        entry = {}
        if started := _time(run.get("started_at")):
            entry["lastStarted"] = started
        if completed := _time(run.get("completed_at")):
            entry["lastCompleted"] = completed
        if run.get("phase"):
            entry["phase"] = str(run["phase"])
        hooks[str(hook.get("name"))] = entry
    return hooks


def snapshot(
    release: Release, action: str | None = None, tested: bool = False, filters: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    info = release.info
    chart = release.chart
    snap: dict[str, Any] = {
        "digest": release.digest,
        "name": release.name,
        "namespace": release.namespace,
        "version": release.version,
        "status": release.status,
        "chartName": str(chart.get("name") or ""),
        "chartVersion": str(chart.get("version") or ""),
        "configDigest": config_digest(release.config),
        # The CRD wants date-times: a record without them (hand-made) shows when it was first seen.
        "firstDeployed": _time(info.get("first_deployed")) or _time(info.get("last_deployed")) or _now(),
        "lastDeployed": _time(info.get("last_deployed")) or _now(),
    }
    if chart.get("appVersion"):
        snap["appVersion"] = str(chart["appVersion"])
    if deleted := _time(info.get("deleted")):
        snap["deleted"] = deleted
    if action:
        snap["action"] = action
    if tested:
        snap["testHooks"] = test_hooks(release, filters)
    return snap


def latest(status: dict[str, Any]) -> dict[str, Any] | None:
    history: list[dict[str, Any]] = status.get("history") or []
    return history[0] if history else None


def record(status: dict[str, Any], snap: dict[str, Any]) -> None:
    """Put ``snap`` first, replacing an older snapshot of the same version; keep the newest ``KEPT``."""
    others = [
        s for s in status.get("history") or [] if s.get("version") != snap["version"] or s.get("name") != snap["name"]
    ]
    status["history"] = [snap, *others][:KEPT]


def tested(snap: dict[str, Any] | None) -> bool:
    return snap is not None and "testHooks" in snap


def failed_test(snap: dict[str, Any] | None) -> bool:
    return snap is not None and any(h.get("phase") == "Failed" for h in (snap.get("testHooks") or {}).values())


def previous_deployed(status: dict[str, Any], ignore_test_failures: bool = False) -> dict[str, Any] | None:
    """The snapshot to roll back to: the newest one after the first that was deployed or superseded
    (and, unless test failures are ignored, whose tests did not fail)."""
    snapshots: list[dict[str, Any]] = status.get("history") or []
    return next(
        (
            s
            for s in snapshots[1:]
            if s.get("status") in ("deployed", "superseded") and (ignore_test_failures or not failed_test(s))
        ),
        None,
    )
