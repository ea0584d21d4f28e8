"""Flux's cleanup before an apply: kubectl's managedFields merged into ours, its annotation removed."""

from __future__ import annotations

from typing import Any

from fluxwarden.controllers.apply.takeover import cleanup_patch, kustomize_cleanup, merge_fields

CLEANUP = kustomize_cleanup("kustomize-controller")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
POINTER = "kubectl.kubernetes.io~1last-applied-configuration"  # RFC 6901: "/" is written "~1"
MERGE = {"kustomize.toolkit.fluxcd.io/ssa": "Merge"}


def entry(manager: str, operation: str, fields: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"manager": manager, "operation": operation, "apiVersion": "v1", "fieldsType": "FieldsV1"}
    found["fieldsV1"] = fields
    if subresource:
        found["subresource"] = subresource
    return found


def live(*entries: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "c", "namespace": "n", "managedFields": list(entries)}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


DESIRED: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}
KUBECTL_FIELDS = {"f:data": {".": {}, "f:a": {}, "f:b": {}}, "f:metadata": {"f:annotations": {f"f:{LAST_APPLIED}": {}}}}
OUR_FIELDS = {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}


def test_fields_sets_merge_as_a_union() -> None:
    assert merge_fields(OUR_FIELDS, KUBECTL_FIELDS) == {
        "f:data": {".": {}, "f:a": {}, "f:b": {}},
        "f:metadata": {"f:labels": {"f:app": {}}, "f:annotations": {f"f:{LAST_APPLIED}": {}}},
    }
    assert OUR_FIELDS == {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}, "inputs untouched"


def test_client_side_kubectl_apply_is_merged_into_our_apply_entry_and_its_annotation_removed() -> None:
    status = entry("kube-controller-manager", "Update", {"f:status": {}}, subresource="status")
    ours = entry("kustomize-controller", "Apply", OUR_FIELDS)
    current = live(
        entry("kubectl-client-side-apply", "Update", KUBECTL_FIELDS), ours, status, annotations={LAST_APPLIED: "{}"}
    )
    patch = cleanup_patch(DESIRED, current, CLEANUP, "kustomize-controller")
    assert patch[0] == {
        "op": "remove",
        "path": "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
    }
    assert patch[1]["op"] == "replace" and patch[1]["path"] == "/metadata/managedFields"
    kept, merged = patch[1]["value"]
    assert kept == status, "a subresource's entry is never taken over"
    assert (merged["manager"], merged["operation"]) == ("kustomize-controller", "Apply")
    assert merged["fieldsV1"]["f:data"] == {".": {}, "f:a": {}, "f:b": {}}
    assert len(patch) == 2


def test_without_an_entry_of_ours_the_first_kubectl_entry_becomes_it() -> None:
    current = live(
        entry("kubectl", "Apply", {"f:data": {"f:x": {}}}),
        entry("before-first-apply", "Update", {"f:data": {"f:y": {}}}),
        entry("kubectl-edit", "Update", {"f:data": {"f:z": {}}}),
    )
    [replace] = cleanup_patch(DESIRED, current, CLEANUP, "kustomize-controller")
    [merged] = replace["value"]
    assert (merged["manager"], merged["operation"]) == ("kustomize-controller", "Apply")
    assert merged["fieldsV1"] == {"f:data": {"f:x": {}, "f:y": {}, "f:z": {}}}


def test_other_managers_and_objects_that_are_already_ours_need_no_patch() -> None:
    others = live(entry("kustomize-controller", "Apply", OUR_FIELDS), entry("hpa-controller", "Update", {"f:spec": {}}))
    assert cleanup_patch(DESIRED, others, CLEANUP, "kustomize-controller") == []
    assert cleanup_patch(DESIRED, live(entry("kubectl", "Apply", {}), annotations={}), CLEANUP, "kubectl") == []


def test_merge_in_git_or_live_leaves_the_object_alone() -> None:
    current = live(entry("kubectl-client-side-apply", "Update", KUBECTL_FIELDS), annotations={LAST_APPLIED: "{}"})
    merging = {
        **DESIRED,
        "metadata": {**DESIRED["metadata"], "annotations": {"kustomize.toolkit.fluxcd.io/ssa": "Merge"}},
    }
    assert cleanup_patch(merging, current, CLEANUP, "kustomize-controller") == []
    current["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/ssa"] = "merge"
    assert cleanup_patch(DESIRED, current, CLEANUP, "kustomize-controller") == []


def test_an_annotation_git_sets_itself_is_not_removed() -> None:
    current = live(entry("kustomize-controller", "Apply", OUR_FIELDS), annotations={LAST_APPLIED: "{}"})
    in_git = {**DESIRED, "metadata": {**DESIRED["metadata"], "annotations": {LAST_APPLIED: "{}"}}}
    assert cleanup_patch(in_git, current, CLEANUP, "kustomize-controller") == []
    assert cleanup_patch(DESIRED, current, CLEANUP, "kustomize-controller") == [
        {"op": "remove", "path": f"/metadata/annotations/{POINTER}"}
    ]


def test_flux_v1s_label_is_removed() -> None:
    current = live(entry("kustomize-controller", "Apply", OUR_FIELDS))
    current["metadata"]["labels"] = {"fluxcd.io/sync-gc-mark": "sha256.x", "app": "a"}
    assert cleanup_patch(DESIRED, current, CLEANUP, "kustomize-controller") == [
        {"op": "remove", "path": "/metadata/labels/fluxcd.io~1sync-gc-mark"}
    ]
