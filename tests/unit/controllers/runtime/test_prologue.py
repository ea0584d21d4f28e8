"""The pure parts of the prologue and the manager: finalizer and status patches, event filtering."""

from __future__ import annotations

from fluxwarden.controllers.runtime.manager import needs_reconcile
from fluxwarden.controllers.runtime.prologue import REQUESTED_AT, _finalizer_patch, _status_patch, interval_of


def obj(generation: int = 1, annotations: dict[str, str] | None = None, **meta: object) -> dict[str, object]:
    return {"metadata": {"name": "a", "generation": generation, "annotations": annotations or {}, **meta}}


def test_watch_events_that_ask_for_work() -> None:
    assert needs_reconcile(obj(), None)
    assert not needs_reconcile(obj(), obj()), "a status-only update is our own write"
    assert needs_reconcile(obj(2), obj(1))
    assert needs_reconcile(obj(annotations={REQUESTED_AT: "now"}), obj())
    assert needs_reconcile(obj(deletionTimestamp="2026-01-01T00:00:00Z"), obj())


def test_finalizer_patches_test_the_resource_version() -> None:
    fresh = {"metadata": {"resourceVersion": "7"}}
    add = _finalizer_patch(fresh, "finalizers.fluxcd.io", add=True)
    assert add == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["finalizers.fluxcd.io"]},
    ]
    other = {"metadata": {"resourceVersion": "8", "finalizers": ["x", "finalizers.fluxcd.io"]}}
    assert _finalizer_patch(other, "finalizers.fluxcd.io", add=True) is None
    remove = _finalizer_patch(other, "finalizers.fluxcd.io", add=False)
    assert remove is not None and remove[1] == {"op": "remove", "path": "/metadata/finalizers/1"}


def test_status_patch_sends_changes_and_nulls_for_removed_keys() -> None:
    old = {"a": 1, "b": 2, "c": 3}
    new = {"a": 1, "b": 5, "d": 4}
    assert _status_patch(old, new) == {"b": 5, "d": 4, "c": None}
    assert _status_patch(new, new) == {}


def test_interval_defaults_when_missing_or_malformed() -> None:
    assert interval_of({"spec": {"interval": "2m"}}) == 120
    assert interval_of({"spec": {}}) == 600
    assert interval_of({"spec": {"interval": "soon"}}) == 600
