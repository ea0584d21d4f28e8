"""Parsing and cleaning a Flux event (``event.py``): what the event server accepts, refuses and keeps."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from fluxwarden.controllers.notification.event import BadEvent, Event, ObjectRef, clean_metadata, parse

KUSTOMIZE = "kustomize.toolkit.fluxcd.io"


def event(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "involvedObject": {
            "kind": "Kustomization",
            "namespace": "apps",
            "name": "web",
            "uid": "0d6f6a3e-0000-4000-8000-000000000001",
            "apiVersion": f"{KUSTOMIZE}/v1",
            "resourceVersion": "42",
        },
        "severity": "info",
        "timestamp": "2026-12-01T18:00:00Z",
        "message": "ConfigMap/apps/web created",
        "reason": "ReconciliationSucceeded",
        "metadata": {f"{KUSTOMIZE}/revision": "main@sha1:abc"},
        "reportingController": "kustomize-controller",
        "reportingInstance": "kustomize-controller-7d9",
    }
    return {**body, **fields}


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def test_a_flux_event_parses_into_its_fields() -> None:
    parsed = parse(encode(event()))
    assert parsed.involved_object == ObjectRef(
        kind="Kustomization",
        name="web",
        namespace="apps",
        uid="0d6f6a3e-0000-4000-8000-000000000001",
        api_version=f"{KUSTOMIZE}/v1",
        resource_version="42",
    )
    assert parsed.involved_object.group == KUSTOMIZE
    assert (parsed.severity, parsed.message, parsed.reason) == (
        "info",
        "ConfigMap/apps/web created",
        "ReconciliationSucceeded",
    )
    assert parsed.timestamp == "2026-12-01T18:00:00Z"
    assert parsed.metadata == {f"{KUSTOMIZE}/revision": "main@sha1:abc"}
    assert (parsed.reporting_controller, parsed.reporting_instance) == (
        "kustomize-controller",
        "kustomize-controller-7d9",
    )


def test_body_gives_back_flux_json_with_flux_field_names() -> None:
    original = event()
    assert parse(encode(original)).body() == original


def test_body_leaves_out_empty_optional_fields() -> None:
    minimal = {
        "involvedObject": {"kind": "GitRepository", "name": "repo", "namespace": "flux-system"},
        "severity": "error",
        "timestamp": "",
        "message": "auth failed",
        "reason": "AuthenticationFailed",
        "reportingController": "source-controller",
    }
    body = parse(encode(minimal)).body()
    assert body["involvedObject"] == {"kind": "GitRepository", "name": "repo", "namespace": "flux-system"}
    assert "metadata" not in body and "reportingInstance" not in body


def test_the_core_group_and_a_missing_api_version_have_no_group() -> None:
    assert ObjectRef("ConfigMap", "x", api_version="v1").group == ""
    assert ObjectRef("Kustomization", "x").group == ""
    assert ObjectRef("HelmRelease", "x", api_version="helm.toolkit.fluxcd.io/v2").group == "helm.toolkit.fluxcd.io"


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"", "JSON"),
        (b"{", "JSON"),
        (b'{"involvedObject": }', "JSON"),
        (b"\xff\xfe{}", "JSON"),
        (b"[]", "object"),
        (b'"a string"', "object"),
        (b"null", "object"),
        (b"[" * 100_000 + b"]" * 100_000, "nests"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nests"),
    ],
    ids=["empty", "truncated", "syntax", "not utf-8", "array", "string", "null", "deep array", "deep object"],
)
def test_what_is_not_a_json_object_is_refused_in_one_line(body: bytes, names: str) -> None:
    with pytest.raises(BadEvent) as raised:
        parse(body)
    text = str(raised.value)
    assert names in text
    assert "\n" not in text and len(text) < 300


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"involvedObject": None}, "involvedObject"),
        ({"involvedObject": "Kustomization/apps/web"}, "involvedObject"),
        ({"involvedObject": {"kind": "Kustomization"}}, "name"),
        ({"involvedObject": {"name": "web"}}, "kind"),
        ({"involvedObject": {"kind": "Kustomization", "name": 7}}, "involvedObject.name"),
        ({"severity": 3}, "severity"),
        ({"severity": "fatal"}, "severity"),
        ({"message": ["a"]}, "message"),
        ({"reason": {"a": "b"}}, "reason"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"metadata": {"a": 1}}, "metadata"),
        ({"metadata": ["a"]}, "metadata"),
        ({"reportingController": 1}, "reportingController"),
    ],
)
def test_a_field_of_the_wrong_type_is_refused_naming_it(change: dict[str, Any], field: str) -> None:
    with pytest.raises(BadEvent) as raised:
        parse(encode(event(**change)))
    assert field in str(raised.value)


def test_the_reason_never_echoes_a_long_value() -> None:
    with pytest.raises(BadEvent) as raised:
        parse(encode(event(timestamp="x" * 10_000)))
    assert len(str(raised.value)) < 200


def test_severities_flux_uses_are_accepted() -> None:
    assert [parse(encode(event(severity=s))).severity for s in ("info", "error", "trace")] == ["info", "error", "trace"]


def test_metadata_is_cleaned_on_parse() -> None:
    parsed = parse(
        encode(
            event(
                metadata={
                    f"{KUSTOMIZE}/revision": "main@sha1:abc",
                    f"{KUSTOMIZE}/checksum": "sha256:1",
                    "source.toolkit.fluxcd.io/revision": "other group",
                    "event.toolkit.fluxcd.io/team": "platform",
                    "summary": "bare",
                }
            )
        )
    )
    assert parsed.metadata == {f"{KUSTOMIZE}/revision": "main@sha1:abc", "event.toolkit.fluxcd.io/team": "platform"}


def test_an_absent_or_null_metadata_is_empty() -> None:
    without = event()
    del without["metadata"]
    assert parse(encode(without)).metadata == {}
    assert parse(encode(event(metadata=None))).metadata == {}


OBJECT = ObjectRef("Kustomization", "web", "apps", api_version=f"{KUSTOMIZE}/v1")


@pytest.mark.parametrize(
    ("key", "kept"),
    [
        (f"{KUSTOMIZE}/revision", True),
        (f"{KUSTOMIZE}/originRevision", True),
        (f"{KUSTOMIZE}/token", True),  # kept for the rate-limit key; Flux removes it only before sending
        (f"{KUSTOMIZE}/checksum", False),
        (f"{KUSTOMIZE}/digest", False),
        (f"{KUSTOMIZE}/Checksum", False),  # Flux compares the excluded keys case-insensitively
        (f"{KUSTOMIZE}/DIGEST", False),
        ("event.toolkit.fluxcd.io/anything", True),
        ("event.toolkit.fluxcd.io/checksum", True),  # only the object's group loses checksum/digest
        ("source.toolkit.fluxcd.io/revision", False),
        (f"{KUSTOMIZE}.example.com/x", False),  # a longer group is another group
        ("revision", False),
        ("", False),
    ],
)
def test_clean_metadata_keeps_the_event_group_and_the_objects_group(key: str, kept: bool) -> None:
    assert clean_metadata(OBJECT, {key: "v"}) == ({key: "v"} if kept else {})


def test_clean_metadata_without_a_group_keeps_only_the_event_group() -> None:
    core = ObjectRef("ConfigMap", "x", "apps", api_version="v1")
    cleaned = clean_metadata(core, {"event.toolkit.fluxcd.io/a": "1", "/b": "2", "c": "3"})
    assert cleaned == {"event.toolkit.fluxcd.io/a": "1"}


def test_meta_reads_the_objects_group_then_the_event_group_then_the_bare_key() -> None:
    both = Event(OBJECT, "info", "", "m", "r", {f"{KUSTOMIZE}/revision": "a", "event.toolkit.fluxcd.io/revision": "b"})
    assert both.meta("revision") == "a"
    assert dataclasses.replace(both, metadata={f"{KUSTOMIZE}/revision": "c"}).meta("revision") == "c"
    event_group = Event(OBJECT, "info", "", "m", "r", {"event.toolkit.fluxcd.io/revision": "b"})
    assert event_group.meta("revision") == "b"
    assert Event(OBJECT, "info", "", "m", "r", {"revision": "bare"}).meta("revision") == "bare"
    assert Event(OBJECT, "info", "", "m", "r", {}).meta("revision") is None


def test_without_internal_drops_only_the_groups_token_and_leaves_the_original_alone() -> None:
    original = Event(OBJECT, "info", "", "m", "r", {f"{KUSTOMIZE}/token": "t", f"{KUSTOMIZE}/revision": "a"})
    assert original.without_internal().metadata == {f"{KUSTOMIZE}/revision": "a"}
    assert original.metadata == {f"{KUSTOMIZE}/token": "t", f"{KUSTOMIZE}/revision": "a"}
    other = Event(OBJECT, "info", "", "m", "r", {"event.toolkit.fluxcd.io/token": "t"})
    assert other.without_internal() is other
