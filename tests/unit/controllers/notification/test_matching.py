"""Alert matching (``matching.py``), pure: which events an Alert takes, by Flux's rules (v1beta3 alerts.md).

The expected results are written out by hand, one row per case, not derived from the code.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from fluxwarden.controllers.notification.api import MODE_ANNOTATION, ON_CHANGE
from fluxwarden.controllers.notification.event import Event, ObjectRef
from fluxwarden.controllers.notification.matching import CompiledAlert, compile_alert
from fluxwarden.tenancy.settings import Settings

NS = "apps"
API = {"Kustomization": "kustomize.toolkit.fluxcd.io/v1", "GitRepository": "source.toolkit.fluxcd.io/v1",
       "HelmRelease": "helm.toolkit.fluxcd.io/v2"}  # fmt: skip
LABELS = {"app": {"team": "a", "tier": "web"}, "db": {"team": "b"}, "nolabels": {}}  # "ghost": unreadable


def alert(spec: dict[str, Any], *, namespace: str = NS, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "alert", "namespace": namespace, "uid": "uid-1", "generation": 1}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "kind": "Alert",
        "metadata": meta,
        "spec": {"providerRef": {"name": "p"}, "eventSources": [{"kind": "Kustomization", "name": "*"}], **spec},
    }


def event(
    name: str = "app", kind: str = "Kustomization", severity: str = "info", message: str = "ok", namespace: str = NS
) -> Event:
    obj = ObjectRef(kind, name, namespace, uid=f"uid-{name}", api_version=API[kind], resource_version="1")
    return Event(obj, severity, "2026-12-01T18:00:00Z", message, "Reason", {}, "kustomize-controller")


def labels_of(e: Event) -> dict[str, str] | None:
    return LABELS.get(e.involved_object.name)


def compiled(spec: dict[str, Any], settings: Settings | None = None, **more: Any) -> CompiledAlert:
    return compile_alert(alert(spec, **more), settings or Settings())


K = "Kustomization"
EVENTS = {
    "k-app-info": event("app", K, "info", "Reconciliation finished in 1s"),
    "k-app-error": event("app", K, "error", "Health check failed after 30s"),
    "k-db-info": event("db", K, "info", "Applied revision main@sha1:1"),
    "g-app-info": event("app", "GitRepository", "info", "stored artifact for commit 'x'"),
    "k-app-other-ns": event("app", K, "info", "from another namespace", namespace="other"),
    "h-web-error": event("web", "HelmRelease", "error", "install retries exhausted"),
    "k-nolabels-info": event("nolabels", K, "info", "dependency 'x' is not ready"),
    "k-ghost-info": event("ghost", K, "info", "object gone"),
    "k-app-trace": event("app", K, "trace", "a trace"),
}

STAR = [{"kind": K, "name": "*"}]
TABLE: list[tuple[str, dict[str, Any], set[str]]] = [
    ("every kustomization", {},
     {"k-app-info", "k-app-error", "k-db-info", "k-nolabels-info", "k-ghost-info", "k-app-trace"}),
    ("one name", {"eventSources": [{"kind": K, "name": "app"}]}, {"k-app-info", "k-app-error", "k-app-trace"}),
    ("errors only", {"eventSources": [*STAR, {"kind": "HelmRelease", "name": "*"}], "eventSeverity": "error"},
     {"k-app-error", "h-web-error"}),
    ("info takes errors too", {"eventSources": [{"kind": "HelmRelease", "name": "*"}], "eventSeverity": "info"},
     {"h-web-error"}),
    ("another kind", {"eventSources": [{"kind": "GitRepository", "name": "*"}]}, {"g-app-info"}),
    ("two sources", {"eventSources": [{"kind": K, "name": "db"}, {"kind": "GitRepository", "name": "app"}]},
     {"k-db-info", "g-app-info"}),
    ("the alert's namespace, named", {"eventSources": [{"kind": K, "name": "db", "namespace": NS}]}, {"k-db-info"}),
    ("labels", {"eventSources": [{"kind": K, "name": "*", "matchLabels": {"team": "a"}}]},
     {"k-app-info", "k-app-error", "k-app-trace"}),
    ("labels ANDed", {"eventSources": [{"kind": K, "name": "*", "matchLabels": {"team": "a", "tier": "db"}}]}, set()),
    ("labels, another team", {"eventSources": [{"kind": K, "name": "*", "matchLabels": {"team": "b"}}]}, {"k-db-info"}),
    ("inclusion", {"inclusionList": ["^Reconciliation", "revision main@"]}, {"k-app-info", "k-db-info"}),
    ("exclusion", {"exclusionList": ["failed", "^dependency"]},
     {"k-app-info", "k-db-info", "k-ghost-info", "k-app-trace"}),
    ("exclusion beats inclusion", {"inclusionList": ["e"], "exclusionList": ["finished"]},
     {"k-app-error", "k-db-info", "k-nolabels-info", "k-ghost-info", "k-app-trace"}),
    ("patterns are unanchored searches", {"inclusionList": ["finished"]}, {"k-app-info"}),
    ("suspended", {"suspend": True}, set()),
    ("no sources", {"eventSources": []}, set()),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "expected"), [(spec, want) for _, spec, want in TABLE], ids=[t[0] for t in TABLE])
def test_a_table_of_events_against_one_alert(spec: dict[str, Any], expected: set[str]) -> None:
    rule = compiled(spec)
    assert {name for name, e in EVENTS.items() if rule.matches(e, labels_of)} == expected


def test_an_alert_elsewhere_takes_nothing_from_this_namespace() -> None:
    rule = compiled({}, namespace="other")
    assert {name for name, e in EVENTS.items() if rule.matches(e, labels_of)} == {"k-app-other-ns"}


def test_labels_are_read_only_for_star_sources_with_match_labels() -> None:
    asked: list[str] = []

    def counting(e: Event) -> dict[str, str] | None:
        asked.append(e.involved_object.name)
        return labels_of(e)

    assert compiled({"eventSources": [{"kind": K, "name": "app"}]}).matches(EVENTS["k-app-info"], counting)
    assert compiled({}).matches(EVENTS["k-app-info"], counting)
    assert not asked
    assert compiled({"eventSources": [{"kind": K, "name": "*", "matchLabels": {"team": "a"}}]}).matches(
        EVENTS["k-app-info"], counting
    )
    assert asked == ["app"]


def test_cross_namespace_sources_are_dropped_under_multi_tenancy_and_kept_without() -> None:
    spec = {"eventSources": [{"kind": K, "name": "*", "namespace": "other"}]}
    enforced = compiled(spec)
    assert not enforced.matches(EVENTS["k-app-other-ns"], labels_of)
    assert any(p.startswith("spec.eventSources[0]") for p in enforced.problems), enforced.problems
    relaxed = compiled(spec, Settings(enforce=False))
    assert relaxed.matches(EVENTS["k-app-other-ns"], labels_of)
    assert not relaxed.matches(EVENTS["k-app-info"], labels_of), "a source naming another namespace is only that one"
    assert relaxed.problems == ()


def test_an_exempt_namespace_may_take_events_from_elsewhere() -> None:
    spec = {"eventSources": [{"kind": K, "name": "*", "namespace": "other"}]}
    assert compiled(spec, namespace="flux-system").matches(EVENTS["k-app-other-ns"], labels_of)


@pytest.mark.parametrize("field", ["inclusionList", "exclusionList"])
def test_an_invalid_pattern_is_a_one_line_problem_naming_the_field_and_pattern(field: str) -> None:
    rule = compiled({field: ["ok", "(unclosed"]})
    (problem,) = rule.problems
    assert f"spec.{field}[1]" in problem
    assert "(unclosed" in problem and "\n" not in problem


def test_an_invalid_inclusion_pattern_matches_nothing_but_the_others_still_do() -> None:
    """Flux messageIsIncluded: a pattern that does not compile is skipped, the rest of the list applies."""
    rule = compiled({"inclusionList": ["(unclosed", "^Reconciliation"]})
    assert rule.matches(EVENTS["k-app-info"], labels_of)
    assert not rule.matches(EVENTS["k-db-info"], labels_of)
    assert not compiled({"inclusionList": ["(unclosed"]}).matches(EVENTS["k-app-info"], labels_of)


def test_an_invalid_exclusion_pattern_excludes_nothing() -> None:
    """Flux messageIsExcluded: a pattern that does not compile excludes nothing, the event is still sent."""
    rule = compiled({"exclusionList": ["[z-a]", "failed"]})
    assert rule.matches(EVENTS["k-app-info"], labels_of)
    assert not rule.matches(EVENTS["k-app-error"], labels_of)


def test_compiled_fields() -> None:
    rule = compiled(
        {"eventSeverity": "error", "eventMetadata": {"env": "prod"}, "summary": "s"},
        annotations={MODE_ANNOTATION: ON_CHANGE},
    )
    assert (rule.namespace, rule.name, rule.uid, rule.provider) == (NS, "alert", "uid-1", "p")
    assert (rule.severity, rule.event_metadata, rule.summary, rule.on_change) == ("error", {"env": "prod"}, "s", True)
    assert compiled({}).severity == "info", "Flux's default"
    assert not compiled({}, annotations={MODE_ANNOTATION: "always"}).on_change


def test_notification_adds_event_metadata_and_summary_without_changing_the_event() -> None:
    original = EVENTS["k-app-info"]
    rule = compiled({"eventMetadata": {"env": "prod", "cluster": "c1"}, "summary": "Cluster c1"})
    sent, conflicts = rule.notification(original)
    assert sent.metadata == {"env": "prod", "cluster": "c1", "summary": "Cluster c1"}
    assert conflicts == {}
    assert original.metadata == {}
    assert compiled({}).notification(original)[0].metadata == {}


def test_notification_merges_metadata_in_flux_order_and_reports_conflicts() -> None:
    """RFC 0008, lowest first: event.toolkit.fluxcd.io/*, eventMetadata, summary, <group>/*; prefixes stripped."""
    meta = {
        "event.toolkit.fluxcd.io/env": "from the object",
        "event.toolkit.fluxcd.io/team": "platform",
        "kustomize.toolkit.fluxcd.io/revision": "main@sha1:1",
        "kustomize.toolkit.fluxcd.io/summary": "from the controller",
    }
    original = dataclasses.replace(EVENTS["k-app-info"], metadata=meta)
    rule = compiled({"eventMetadata": {"env": "prod", "revision": "from the alert"}, "summary": "from the alert"})
    sent, conflicts = rule.notification(original)
    assert sent.metadata == {
        "env": "prod",
        "team": "platform",
        "revision": "main@sha1:1",
        "summary": "from the controller",
    }
    assert sorted(conflicts) == ["env", "revision", "summary"]
    assert all(len(found) == 2 for found in conflicts.values()), conflicts
    assert original.metadata == meta
