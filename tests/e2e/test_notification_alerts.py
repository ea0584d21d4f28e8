"""Alert matching end to end: a table of events against a table of Alerts, each Alert with its own endpoint.

The expected deliveries are written out by hand from Flux's documented rules (v1beta3 alerts.md):
``eventSources`` kind and name or ``*`` in the Alert's namespace unless it names one, ``matchLabels`` on
the involved object's labels (ANDed, needs ``name: "*"``), ``eventSeverity: info`` takes everything and
``error`` only errors, ``inclusionList`` then ``exclusionList`` (Go regular expressions, unanchored),
``suspend`` on the Alert or its Provider, ``eventMetadata`` and ``summary`` merged into the metadata.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.notification.api import ALERT, INVALID_CONFIG
from fluxwarden.tenancy.settings import Settings
from tests.support.notification import Notifications, deliveries_done, event_url, flux_event, post, start_notification
from tests.support.recorder import Recorder

KUSTOMIZE = "kustomize.toolkit.fluxcd.io"
K, G, H = "Kustomization", "GitRepository", "HelmRelease"


@pytest.fixture(scope="module")
def controller(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_notification(start_reconcilers)


@pytest.fixture(scope="module")
def url(controller: Reconcilers) -> str:
    return event_url(controller)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as endpoint:
        yield endpoint


def kustomization(api: client.ApiClient, namespace: str, name: str, labels: dict[str, str]) -> None:
    """A suspended Kustomization: an involved object with labels that no controller acts on."""
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        KUSTOMIZE, "v1", namespace, "kustomizations",
        {
            "apiVersion": f"{KUSTOMIZE}/v1", "kind": K,
            "metadata": {"name": name, "labels": labels},
            "spec": {"interval": "10m", "prune": False, "suspend": True,
                     "sourceRef": {"kind": "GitRepository", "name": "none"}},
        },
    )  # fmt: skip


def helmrelease(api: client.ApiClient, namespace: str, name: str, labels: dict[str, str]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "helm.toolkit.fluxcd.io", "v2", namespace, "helmreleases",
        {
            "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": H,
            "metadata": {"name": name, "labels": labels},
            "spec": {"interval": "10m", "suspend": True,
                     "chart": {"spec": {"chart": "web", "sourceRef": {"kind": "HelmRepository", "name": "none"}}}},
        },
    )  # fmt: skip


def delivered(recorder: Recorder) -> dict[str, list[tuple[str, str, str]]]:
    """Per Alert (the endpoint path), the (kind, name, message) of each delivery, sorted."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for request in recorder.received:
        body = request.json()
        obj = body["involvedObject"]
        out.setdefault(request.path.strip("/"), []).append((obj["kind"], obj["name"], body["message"]))
    return {alert: sorted(items) for alert, items in out.items()}


def all_kustomizations(**more: Any) -> list[dict[str, Any]]:
    return [{"kind": K, "name": "*", **more}]


# (kind, name, severity, message); E5 comes from the other namespace
E1 = (K, "app", "info", "Reconciliation finished in 1s")
E2 = (K, "app", "error", "Health check failed after 30s")
E3 = (K, "db", "info", "Applied revision main@sha1:1")
E4 = (G, "app", "info", "stored artifact for commit 'x'")
E5 = (K, "app", "info", "from another namespace")
E6 = (H, "web", "error", "install retries exhausted")
E7 = (K, "nolabels", "info", "dependency 'x' is not ready")
E8 = (K, "ghost", "info", "object gone")  # no such object: matchLabels cannot match it
SENTINEL = (K, "sentinel", "info", "sentinel")

# name -> (eventSources, other spec fields)
ALERTS: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "all-kustomizations": (all_kustomizations(), {}),
    "app-only": ([{"kind": K, "name": "app"}], {}),
    "errors": ([{"kind": K, "name": "*"}, {"kind": H, "name": "*"}], {"eventSeverity": "error"}),
    "info-helm": ([{"kind": H, "name": "*"}], {"eventSeverity": "info"}),
    "git": ([{"kind": G, "name": "*"}], {}),
    "mixed": ([{"kind": K, "name": "db"}, {"kind": G, "name": "app"}], {}),
    "team-a": (
        [
            {"kind": K, "name": "*", "matchLabels": {"team": "a"}},
            {"kind": H, "name": "*", "matchLabels": {"team": "a"}},
        ],
        {},
    ),
    "team-b": (all_kustomizations(matchLabels={"team": "b"}), {}),
    "team-a-web": (all_kustomizations(matchLabels={"team": "a", "tier": "web"}), {}),
    "team-a-db": (all_kustomizations(matchLabels={"team": "a", "tier": "db"}), {}),  # ANDed: nobody
    "include": (all_kustomizations(), {"inclusionList": ["^Reconciliation", "revision main@"]}),
    "exclude": (all_kustomizations(), {"exclusionList": ["failed", "^dependency"]}),
    "include-exclude": (all_kustomizations(), {"inclusionList": ["e"], "exclusionList": ["finished"]}),
    "suspended": (all_kustomizations(), {"suspend": True}),
    "to-suspended-provider": (all_kustomizations(), {}),
    "decorated": (
        [{"kind": K, "name": "app"}],
        {
            "eventMetadata": {"env": "prod", "cluster": "c1", "app.kubernetes.io/region": "us-east-1"},
            "summary": "Cluster c1 apps",
        },
    ),
}


def triple(event: tuple[str, str, str, str]) -> tuple[str, str, str]:
    return (event[0], event[1], event[3])


EXPECTED = {
    "all-kustomizations": [E1, E2, E3, E7, E8, SENTINEL],
    "app-only": [E1, E2],
    "errors": [E2, E6],
    "info-helm": [E6],
    "git": [E4],
    "mixed": [E3, E4],
    "team-a": [E1, E2, E6],
    "team-b": [E3],
    "team-a-web": [E1, E2],
    "include": [E1, E3],
    "exclude": [E1, E3, E8, SENTINEL],
    "include-exclude": [E2, E3, E7, E8, SENTINEL],
    "decorated": [E1, E2],
    # team-a-db, suspended, to-suspended-provider: nothing
}


def test_a_table_of_events_against_a_table_of_alerts(
    url: str,
    controller: Reconcilers,
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    recorder: Recorder,
) -> None:
    ns, other = namespace_factory(), namespace_factory()
    kustomization(admin_api, ns, "app", {"team": "a", "tier": "web"})
    kustomization(admin_api, ns, "db", {"team": "b"})
    kustomization(admin_api, ns, "nolabels", {})
    helmrelease(admin_api, ns, "web", {"team": "a"})
    kustomization(admin_api, other, "app", {"team": "a", "tier": "web"})
    nt = Notifications(admin_api, ns, controller)
    for name, (sources, spec) in ALERTS.items():
        nt.provider(name, address=f"{recorder.url}/{name}", suspend=name == "to-suspended-provider")
        nt.alert(name, name, sources, **spec)
    nt.settled()

    revision = {f"{KUSTOMIZE}/revision": "main@sha1:1"}
    for kind, name, severity, message in (E1, E2, E3, E4, E6, E7, E8):
        event = flux_event(
            ns, name, kind, severity=severity, message=message, metadata=revision if E1[3] == message else None
        )
        assert post(url, event).status_code == 202, message
    assert post(url, flux_event(other, E5[1], E5[0], message=E5[3])).status_code == 202
    assert post(url, flux_event(ns, SENTINEL[1], message=SENTINEL[3])).status_code == 202

    total = sum(len(events) for events in EXPECTED.values())
    recorder.wait_for(total, timeout=30)
    deliveries_done(controller)  # every accepted delivery ended: one not received was never sent
    assert delivered(recorder) == {alert: sorted(map(triple, events)) for alert, events in EXPECTED.items()}

    decoration = {"env": "prod", "cluster": "c1", "app.kubernetes.io/region": "us-east-1", "summary": "Cluster c1 apps"}
    decorated = {r.json()["message"]: r.json().get("metadata") for r in recorder.received if r.path == "/decorated"}
    assert decorated == {
        E1[3]: {"revision": "main@sha1:1", **decoration},
        E2[3]: decoration,
    }
    plain = {r.json()["message"]: r.json().get("metadata") for r in recorder.received if r.path == "/app-only"}
    assert plain == {E1[3]: {"revision": "main@sha1:1"}, E2[3]: None}


def test_the_events_own_metadata_wins_over_the_alerts_event_metadata(
    url: str, controller: Reconcilers, admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    """Flux (alerts.md, eventMetadata): a key the emitter set is not overridden by the Alert."""
    nt = Notifications(admin_api, namespace, controller)
    nt.provider("p", address=f"{recorder.url}/p")
    nt.alert("a", "p", eventMetadata={"revision": "from the alert", "env": "prod"})
    nt.settled()
    metadata = {f"{KUSTOMIZE}/revision": "main@sha1:2", "event.toolkit.fluxcd.io/env": "from the object"}
    assert post(url, flux_event(namespace, metadata=metadata)).status_code == 202
    (sent,) = recorder.wait_for(1)
    # RFC 0008 order, lowest first: event.toolkit.fluxcd.io/*, eventMetadata, summary, <group>/*
    assert sent.json()["metadata"] == {"revision": "main@sha1:2", "env": "prod"}
    conflict = nt.wait_event("a", "MetadataAppendFailed")  # as Flux: one Warning naming the keys
    assert "revision" in conflict.message and "env" in conflict.message, conflict.message


def test_resuming_a_suspended_alert_delivers_again(
    url: str, controller: Reconcilers, admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    nt = Notifications(admin_api, namespace, controller)
    nt.provider("p", address=f"{recorder.url}/p")
    nt.alert("a", "p", suspend=True)
    nt.provider("witness", address=f"{recorder.url}/witness")
    nt.alert("witness", "witness")
    nt.settled()
    assert post(url, flux_event(namespace, message="while suspended")).status_code == 202
    recorder.wait_for(1, where=lambda r: r.path == "/witness")
    deliveries_done(controller)  # every accepted delivery ended: one not received was never sent
    assert [r.path for r in recorder.received] == ["/witness"]

    nt.patch(ALERT, "a", {"spec": {"suspend": False}})
    nt.settled()
    assert post(url, flux_event(namespace, message="resumed")).status_code == 202
    (sent,) = recorder.wait_for(1, where=lambda r: r.path == "/p")
    assert sent.json()["message"] == "resumed"


def test_an_invalid_regex_warns_invalid_config_and_other_alerts_keep_working(
    url: str, controller: Reconcilers, admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    nt = Notifications(admin_api, namespace, controller)
    for name in ("bad-include", "bad-exclude", "good"):
        nt.provider(name, address=f"{recorder.url}/{name}")
    nt.alert("bad-include", "bad-include", inclusionList=["(unclosed"])
    nt.alert("bad-exclude", "bad-exclude", exclusionList=["[z-a]"])
    nt.alert("good", "good")
    nt.settled()
    assert post(url, flux_event(namespace, message="first")).status_code == 202
    recorder.wait_for(1, where=lambda r: r.path == "/good")

    include = nt.wait_event("bad-include", INVALID_CONFIG)
    assert "(unclosed" in include.message and "inclusion" in include.message.lower(), include.message
    exclude = nt.wait_event("bad-exclude", INVALID_CONFIG)
    assert "[z-a]" in exclude.message and "exclusion" in exclude.message.lower(), exclude.message

    assert post(url, flux_event(namespace, message="second")).status_code == 202, "the server still serves"
    recorder.wait_for(2, where=lambda r: r.path == "/good")
    assert next(s for s in controller.manager.services if s.name == "event-server").healthy()
    # As Flux: an inclusion pattern that does not compile matches nothing, an exclusion one excludes nothing.
    recorder.wait_for(2, where=lambda r: r.path == "/bad-exclude")
    deliveries_done(controller)  # every accepted delivery ended: one not received was never sent
    assert not [r for r in recorder.received if r.path == "/bad-include"]


def test_patterns_are_go_regular_expressions(
    url: str, controller: Reconcilers, admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    """Flux compiles inclusionList/exclusionList with Go's regexp (RE2): its syntax, not Python's."""
    nt = Notifications(admin_api, namespace, controller)
    patterns = {
        "posix-class": ["^[[:digit:]]+ objects applied"],  # RE2 has POSIX classes
        "end-of-text": ["applied\\z"],  # RE2's \z
        "lookahead": ["(?=applied)"],  # RE2 has no lookaround: invalid, matches nothing
    }
    try:
        for name, inclusion in patterns.items():
            nt.provider(name, address=f"{recorder.url}/{name}")
            nt.alert(name, name, inclusionList=inclusion)
        nt.provider("witness", address=f"{recorder.url}/witness")
        nt.alert("witness", "witness")
        nt.settled()
        assert post(url, flux_event(namespace, message="3 objects applied")).status_code == 202
        recorder.wait_for(1, where=lambda r: r.path == "/witness")
        recorder.wait_for(1, where=lambda r: r.path == "/posix-class")
        recorder.wait_for(1, where=lambda r: r.path == "/end-of-text")
        nt.wait_event("lookahead", INVALID_CONFIG)
        assert not [r for r in recorder.received if r.path == "/lookahead"]
    finally:  # every event server of the session compiles every Alert: leave none of these behind
        for name in patterns:
            with contextlib.suppress(client.ApiException):
                nt.delete(ALERT, name)


def test_a_pathological_pattern_does_not_stall_the_event_server(
    start_reconcilers: Callable[..., Reconcilers], admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    """RE2 (Flux's engine) matches in linear time; a backtracking engine takes ~2^n steps on ``(a+)+$``."""
    own = start_notification(start_reconcilers)  # its own server: a stalled one must not slow other tests
    own_url = event_url(own)
    nt = Notifications(admin_api, namespace, own)
    nt.provider("redos", address=f"{recorder.url}/redos")
    nt.alert("redos", "redos", exclusionList=["(a+)+$"])
    nt.provider("witness", address=f"{recorder.url}/witness")
    nt.alert("witness", "witness", [{"kind": G, "name": "*"}])
    nt.settled()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # 27 a's: about 13 s of backtracking for Python's re on this machine, nothing for RE2
        hostile = pool.submit(post, own_url, flux_event(namespace, message="a" * 27 + "!"), timeout=120)
        slowest, number, deadline = 0.0, 0, time.monotonic() + 3
        while time.monotonic() < deadline:  # other events meanwhile, whenever the hostile one lands
            started = time.monotonic()
            try:
                answer = post(own_url, flux_event(namespace, "repo", G, message=f"meanwhile {number}"), timeout=5)
            except httpx.TimeoutException:
                slowest = float("inf")
                break
            assert answer.status_code == 202
            slowest, number = max(slowest, time.monotonic() - started), number + 1
            time.sleep(0.1)
        assert hostile.result().status_code == 202
    assert slowest < 2, f"another event waited {slowest:.1f}s behind one Alert's pattern"
    (sent,) = recorder.wait_for(1, where=lambda r: r.path == "/redos")
    assert sent.json()["message"] == "a" * 27 + "!", "the pattern does not match (the message ends in !)"


def _cross_namespace_setup(nt: Notifications, recorder: Recorder, other: str) -> None:
    nt.provider("cross", address=f"{recorder.url}/cross")
    nt.alert("cross", "cross", [{"kind": K, "name": "*", "namespace": other}])
    nt.provider("local", address=f"{recorder.url}/local")
    nt.alert("local", "local")
    nt.settled()


def test_under_multi_tenancy_an_alert_gets_nothing_from_another_namespace(
    url: str,
    controller: Reconcilers,
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    recorder: Recorder,
) -> None:
    ns, other = namespace_factory(), namespace_factory()
    nt = Notifications(admin_api, ns, controller)
    _cross_namespace_setup(nt, recorder, other)
    assert post(url, flux_event(other, message="from the other namespace")).status_code == 202
    assert post(url, flux_event(ns, message="from here")).status_code == 202
    (local,) = recorder.wait_for(1, where=lambda r: r.path == "/local")
    assert local.json()["message"] == "from here"
    deliveries_done(controller)  # every accepted delivery ended: one not received was never sent
    assert [r.path for r in recorder.received] == ["/local"]


def test_without_enforcement_an_alert_may_name_another_namespace(
    start_reconcilers: Callable[..., Reconcilers],
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    recorder: Recorder,
) -> None:
    relaxed = start_notification(start_reconcilers, settings=Settings(enforce=False))
    ns, other = namespace_factory(), namespace_factory()
    nt = Notifications(admin_api, ns, relaxed)
    _cross_namespace_setup(nt, recorder, other)
    relaxed_url = event_url(relaxed)
    assert post(relaxed_url, flux_event(other, message="from the other namespace")).status_code == 202
    (cross,) = recorder.wait_for(1, where=lambda r: r.path == "/cross")
    assert cross.json()["message"] == "from the other namespace"
    assert cross.json()["involvedObject"]["namespace"] == other
    assert not [r for r in recorder.received if r.path == "/local"], "the local Alert still takes only its own"
