"""Which FluxConfig a child's change wakes: its own children by label, applied objects by their Kustomization."""

from __future__ import annotations

from typing import Any

from fluxwarden.controllers.fluxconfig.watches import Watches

CONFIG = {
    "metadata": {"name": "cc", "namespace": "cluster-config"},
    "spec": {"kustomizations": {"apps": {}, "infra": {}}},
}


def obj(labels: dict[str, str], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "o", "namespace": "cluster-config", "labels": labels, "generation": 1},
        "status": status or {},
    }


OURS = {
    "clusterconfig.azure.com/is-managed": "true",
    "clusterconfig.azure.com/name": "cc",
    "clusterconfig.azure.com/namespace": "cluster-config",
}


def test_own_children_map_by_label_on_status_changes_only() -> None:
    mapper = Watches().sources["GitRepository"].mapper
    assert mapper(obj(OURS, {"conditions": [{"type": "Ready"}]}), obj(OURS), [CONFIG]) == [("cluster-config", "cc")]
    # a FluxConfig of another shard (not among this controller's own) is not woken
    assert mapper(obj(OURS, {"conditions": [{"type": "Ready"}]}), obj(OURS), []) == []
    # a requested reconcile handled: nothing compliance reads moved
    assert (
        mapper(obj(OURS, {"lastHandledReconcileAt": "2"}), obj(OURS, {"lastHandledReconcileAt": "1"}), [CONFIG]) == []
    )
    assert mapper(obj(OURS), obj(OURS), [CONFIG]) == []  # our own apply: no status change, no reconcile


def test_applied_objects_map_through_their_kustomization() -> None:
    mapper = Watches().kustomizations.mapper
    applied = {"kustomize.toolkit.fluxcd.io/name": "cc-apps", "kustomize.toolkit.fluxcd.io/namespace": "cluster-config"}
    assert mapper(obj(applied, {"observedGeneration": 1}), None, [CONFIG]) == [("cluster-config", "cc")]
    other = {"kustomize.toolkit.fluxcd.io/name": "cc-db", "kustomize.toolkit.fluxcd.io/namespace": "cluster-config"}
    assert mapper(obj(other, {"x": 1}), None, [CONFIG]) == []
    assert mapper(obj({}, {"x": 1}), None, [CONFIG]) == []


def test_a_changed_protected_settings_secret_wakes_the_configs_that_name_it() -> None:
    mapper = Watches().protected_settings.mapper
    config = {
        "metadata": {"name": "cc", "namespace": "ns"},
        "spec": {"configurationProtectedSettingsRef": {"name": "p"}},
    }
    secret = {"metadata": {"name": "p", "namespace": "ns", "resourceVersion": "2"}}
    assert mapper(secret, {"metadata": {"resourceVersion": "1"}}, [config]) == [("ns", "cc")]
    assert mapper(secret, {"metadata": {"resourceVersion": "2"}}, [config]) == []
    assert mapper({"metadata": {"name": "q", "namespace": "ns", "resourceVersion": "3"}}, None, [config]) == []
    assert Watches().protected_settings.metadata_only
