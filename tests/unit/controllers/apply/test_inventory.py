"""Inventory ids as Flux writes and reads them (cli-utils ObjMetadata): ``_`` in names, ``:`` as ``__``."""

from __future__ import annotations

import pytest

from fluxwarden.controllers.apply.inventory import Entry, read

RBAC = "rbac.authorization.k8s.io"


@pytest.mark.parametrize(
    ("written", "namespace", "name", "group", "kind"),
    [
        ("apps_web_apps_Deployment", "apps", "web", "apps", "Deployment"),
        ("apps_settings__ConfigMap", "apps", "settings", "", "ConfigMap"),
        ("apps_app_reader_rbac.authorization.k8s.io_Role", "apps", "app_reader", RBAC, "Role"),
        ("_system__aggregate-to-edit_rbac.authorization.k8s.io_ClusterRole", "", "system:aggregate-to-edit", RBAC,
         "ClusterRole"),
        ("_a_b_c__Namespace", "", "a_b_c", "", "Namespace"),
    ],
)  # fmt: skip
def test_ids_round_trip(written: str, namespace: str, name: str, group: str, kind: str) -> None:
    entry = Entry.parse({"id": written, "v": "v1"})
    assert (entry.namespace, entry.name, entry.group, entry.kind) == (namespace, name, group, kind)
    assert entry.id == written


@pytest.mark.parametrize("written", ["", "nounderscore", "ns_name", "ns__ConfigMap", "ns_name_group_"])
def test_malformed_ids_are_refused(written: str) -> None:
    with pytest.raises(ValueError, match="is not <namespace>_<name>_<group>_<kind>"):
        Entry.parse({"id": written})


def test_read_skips_malformed_items_and_keeps_the_rest() -> None:
    status = {"inventory": {"entries": [{"id": "ns_a__ConfigMap", "v": "v1"}, {"id": "broken"}, "not-a-map"]}}
    assert [e.id for e in read(status)] == ["ns_a__ConfigMap"]
