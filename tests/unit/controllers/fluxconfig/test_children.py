"""What counts as ours, and when an apply can be skipped: pure parts of the children module."""

from __future__ import annotations

from fluxwarden.controllers.fluxconfig import children

LABELS = {
    "clusterconfig.azure.com/is-managed": "true",
    "clusterconfig.azure.com/name": "cc",
    "clusterconfig.azure.com/namespace": "ns",
}
BODY = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "cc-auth", "namespace": "ns", "labels": LABELS},
    "data": {"a": "Yg=="},
}


def test_a_users_object_of_the_same_name_is_not_ours() -> None:
    assert children.ours({"metadata": {"labels": dict(LABELS)}}, BODY)
    assert not children.ours({"metadata": {"labels": {}}}, BODY)
    other = {**LABELS, "clusterconfig.azure.com/name": "other"}
    assert not children.ours({"metadata": {"labels": other}}, BODY)


def test_paths() -> None:
    assert children.path_of(BODY) == "/api/v1/namespaces/ns/secrets/cc-auth"
    crb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "x"}}
    assert children.path_of(crb) == "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/x"


def test_a_secret_with_other_data_or_an_extra_key_is_applied_again() -> None:
    live = {"metadata": {"labels": dict(LABELS)}, "data": {"a": "Yg=="}}
    assert children._unchanged(live, BODY)
    assert not children._unchanged({**live, "data": {"a": "Yg==", "old": "eA=="}}, BODY)
    assert not children._unchanged({**live, "data": {"a": "eg=="}}, BODY)


def test_holds_compares_maps_recursively_and_lists_exactly() -> None:
    assert children.holds({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}})
    assert not children.holds({"a": [1, 2]}, {"a": [1]})
