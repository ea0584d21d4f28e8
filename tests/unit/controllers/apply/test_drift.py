"""Flux's drift compare: a dry-run answer equal to the live object, volatile metadata aside, is no drift."""

from __future__ import annotations

import copy
from typing import Any

from fluxwarden.controllers.apply.drift import drifted
from fluxwarden.controllers.apply.redact import MASK, Redactor

LIVE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "settings",
        "namespace": "apps",
        "resourceVersion": "41",
        "labels": {"kustomize.toolkit.fluxcd.io/name": "apps"},
        "managedFields": [{"manager": "kustomize-controller", "time": "2026-01-01T00:00:00Z"}],
    },
    "data": {"value": "from-git"},
}


def with_changes(**changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(LIVE)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = obj
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return obj


def test_an_equal_answer_is_no_drift_even_with_new_managed_fields_and_version() -> None:
    dry = with_changes(metadata__resourceVersion="42", metadata__managedFields=[{"manager": "x"}])
    assert not drifted(LIVE, dry)


def test_a_changed_value_a_restored_label_or_a_deletion_is_drift() -> None:
    assert drifted(LIVE, with_changes(data={"value": "edited"}))
    assert drifted(LIVE, with_changes(metadata__labels={}))
    assert drifted(LIVE, with_changes(metadata__deletionTimestamp="2026-01-01T00:00:00Z"))


def test_status_differences_are_not_drift() -> None:
    assert not drifted(with_changes(status={"ready": True}), with_changes(status={"ready": False}))


def test_redactor_masks_every_form_an_error_may_echo() -> None:
    redact = Redactor(['s3cr3t"x', "a"])
    text = 'Invalid value: "s3cr3t\\"x", raw s3cr3t"x, base64 czNjcjN0Ing=; a stays'
    masked = redact(text)
    assert "s3cr3t" not in masked and "czNjcjN0Ing=" not in masked
    assert masked.count(MASK) == 3
    assert masked.endswith("a stays"), "single characters are left alone"
    assert not Redactor([]) and Redactor(["ab"])
