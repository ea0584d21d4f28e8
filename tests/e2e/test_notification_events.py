"""The event server end to end: Flux's status codes, metadata cleaning, rate limiting, failed and queued deliveries.

A real API server holds the Alerts and Providers; the event server runs in-process on loopback; a
generic Provider points at a recording HTTP endpoint, so every assertion is about a request that
really arrived (or, after a later one did, really did not).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.notification.api import ALERT, DISPATCH_FAILED, MAX_EVENT_BYTES
from tests.support.git_server import GitHttpServer
from tests.support.notification import Notifications, event_url, flux_event, post, start_notification
from tests.support.recorder import Received, Recorder
from tests.support.tenants import SHARD, configmap, make_tenant
from tests.support.tls import PrivateCA

KUSTOMIZE = "kustomize.toolkit.fluxcd.io"


@pytest.fixture(scope="module")
def controller(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_notification(start_reconcilers, rate_limit_interval=300.0)


@pytest.fixture(scope="module")
def url(controller: Reconcilers) -> str:
    return event_url(controller)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as endpoint:
        yield endpoint


@pytest.fixture
def nt(admin_api: client.ApiClient, namespace: str, controller: Reconcilers) -> Notifications:
    return Notifications(admin_api, namespace, controller)


def route_to(nt: Notifications, recorder: Recorder, name: str = "generic", **alert: Any) -> str:
    """A generic Provider at ``recorder`` (path ``/<name>``) and an Alert on every Kustomization; settled."""
    nt.provider(name, address=f"{recorder.url}/{name}")
    nt.alert(name, name, **alert)
    nt.settled()
    return f"/{name}"


def messages(received: list[Received]) -> list[str]:
    return [r.json()["message"] for r in received]


# -- status codes -------------------------------------------------------------------------------------


def test_a_valid_event_is_accepted_with_202_with_or_without_an_alert(
    url: str, nt: Notifications, recorder: Recorder
) -> None:
    assert post(url, flux_event(nt.namespace, message="nobody listens")).status_code == 202
    path = route_to(nt, recorder)
    event = flux_event(nt.namespace, message="someone listens", metadata={f"{KUSTOMIZE}/revision": "main@sha1:1"})
    response = post(url, event, path="/any/path/at/all")
    assert response.status_code == 202
    (sent,) = recorder.wait_for(1)
    assert sent.method == "POST" and sent.path == path
    assert (sent.header("content-type") or "").startswith("application/json")
    assert sent.header("gotk-component") == "kustomize-controller"
    body = sent.json()
    assert body["involvedObject"] == event["involvedObject"]
    assert (body["severity"], body["message"], body["reason"]) == ("info", "someone listens", event["reason"])
    assert body["reportingController"] == "kustomize-controller"
    assert body["timestamp"] == event["timestamp"]
    assert recorder.count == 1, "the event posted before the Alert existed was dropped, not delivered late"


BAD_BODIES = {
    "not JSON": b'{"involvedObject": {"kind": "Kustomization"',
    "not an object": b'["an", "array"]',
    "deeply nested": b'{"involvedObject": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "nested object": b'{"metadata": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}",
    "severity a number": json.dumps(
        {**flux_event("ns"), "severity": 3},
    ).encode(),
    "involvedObject a string": json.dumps({**flux_event("ns"), "involvedObject": "Kustomization/ns/app"}).encode(),
    "metadata values not strings": json.dumps({**flux_event("ns"), "metadata": {f"{KUSTOMIZE}/revision": 1}}).encode(),
    "message a list": json.dumps({**flux_event("ns"), "message": ["a", "b"]}).encode(),
    "not UTF-8": b'{"message": "\xff\xfe"}',
    "empty": b"",
}


def test_bad_bodies_get_400_with_a_one_line_reason_and_nothing_is_delivered(
    url: str, nt: Notifications, recorder: Recorder
) -> None:
    route_to(nt, recorder)
    answers = {}
    for what, body in BAD_BODIES.items():
        # the namespace is the test's: a bad body that were routed anyway would reach the recorder
        response = post(url, body.replace(b'"ns"', json.dumps(nt.namespace).encode()))
        answers[what] = (response.status_code, response.text)
    assert {what: status for what, (status, _) in answers.items()} == dict.fromkeys(BAD_BODIES, 400)
    for what, (_, text) in answers.items():
        assert text.strip() and "\n" not in text.strip(), f"{what}: not a one-line reason: {text[:300]!r}"
        assert len(text) < 400, f"{what}: the reason echoes the body: {text[:300]!r}"
    assert post(url, flux_event(nt.namespace, message="the good one")).status_code == 202
    recorder.wait_for(1)
    time.sleep(0.5)  # the good event arrived; a bad one queued before it would have had as long
    assert messages(recorder.received) == ["the good one"]


def test_an_event_over_3_mib_gets_413_and_one_just_under_is_accepted(
    url: str, nt: Notifications, recorder: Recorder
) -> None:
    route_to(nt, recorder)
    envelope = len(json.dumps(flux_event(nt.namespace, message="")).encode())
    big = json.dumps(flux_event(nt.namespace, message="x" * (MAX_EVENT_BYTES - envelope + 1))).encode()
    assert len(big) == MAX_EVENT_BYTES + 1
    assert post(url, big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count what it reads
        data = big
        for start in range(0, len(data), 64 << 10):
            yield data[start : start + (64 << 10)]

    streamed = httpx.post(url, content=chunks(), headers={"Content-Type": "application/json"}, timeout=30)
    assert streamed.status_code == 413

    fits = flux_event(nt.namespace, message="y" * (MAX_EVENT_BYTES - envelope - 1024))
    assert post(url, fits, timeout=30).status_code == 202
    (sent,) = recorder.wait_for(1, timeout=30)
    assert sent.json()["message"] == fits["message"], "the largest accepted event is delivered whole"
    assert recorder.count == 1


# -- rate limiting ------------------------------------------------------------------------------------


def test_the_same_event_twice_within_the_interval_is_sent_once(url: str, nt: Notifications, recorder: Recorder) -> None:
    route_to(nt, recorder)
    rev = f"{KUSTOMIZE}/revision"
    first = flux_event(nt.namespace, message="applied", metadata={rev: "main@sha1:aaa"})
    assert post(url, first).status_code == 202
    again = {**first, "timestamp": "2030-01-01T00:00:00Z", "reason": "Other"}  # not part of the key
    assert post(url, again).status_code == 429
    # a metadata key the cleaning drops is not part of the key either
    noise = {**first, "metadata": {rev: "main@sha1:aaa", "source.toolkit.fluxcd.io/revision": "other"}}
    assert post(url, noise).status_code == 429
    other_uid = {**first, "involvedObject": {**first["involvedObject"], "uid": "another-uid"}}
    assert post(url, other_uid).status_code == 429, "name, namespace and kind are the key, not the uid"

    new_revision = flux_event(nt.namespace, message="applied", metadata={rev: "main@sha1:bbb"})
    assert post(url, new_revision).status_code == 202
    new_token = flux_event(nt.namespace, message="applied", metadata={rev: "main@sha1:bbb", f"{KUSTOMIZE}/token": "t2"})
    assert post(url, new_token).status_code == 202
    other_message = flux_event(nt.namespace, message="applied again", metadata={rev: "main@sha1:bbb"})
    assert post(url, other_message).status_code == 202
    other_kind = flux_event(nt.namespace, kind="GitRepository", message="applied", metadata={rev: "main@sha1:aaa"})
    assert post(url, other_kind).status_code == 202  # accepted (no Alert for GitRepository: not delivered)
    sentinel = flux_event(nt.namespace, name="sentinel", message="last")
    assert post(url, sentinel).status_code == 202

    received = recorder.wait_for(5)
    time.sleep(0.5)
    assert recorder.count == 5
    revisions = sorted(
        (r.json()["message"], (r.json().get("metadata") or {}).get("revision", "")) for r in recorder.received
    )
    assert revisions == [
        ("applied", "main@sha1:aaa"),
        ("applied", "main@sha1:bbb"),
        ("applied", "main@sha1:bbb"),
        ("applied again", "main@sha1:bbb"),
        ("last", ""),
    ], received


def test_metadata_is_cleaned_and_prefixes_stripped_as_flux_does(
    url: str, nt: Notifications, recorder: Recorder
) -> None:
    """Flux v1.9: keep ``event.toolkit.fluxcd.io/*`` and ``<group>/*``, drop checksum/digest and the token,
    then send the keys without their prefixes (RFC 0008)."""
    route_to(nt, recorder)
    metadata = {
        f"{KUSTOMIZE}/revision": "main@sha1:abc",
        f"{KUSTOMIZE}/originRevision": "main@sha1:def",
        f"{KUSTOMIZE}/checksum": "sha256:dropped",
        f"{KUSTOMIZE}/digest": "sha256:dropped-too",
        f"{KUSTOMIZE}/token": "rate-limit-only",
        "event.toolkit.fluxcd.io/team": "platform",
        "source.toolkit.fluxcd.io/revision": "another group",
        "kustomize.toolkit.fluxcd.io.evil/x": "a longer group",
        "revision": "bare",
        "summary": "bare too",
    }
    assert post(url, flux_event(nt.namespace, metadata=metadata)).status_code == 202
    (sent,) = recorder.wait_for(1)
    assert sent.json()["metadata"] == {
        "revision": "main@sha1:abc",
        "originRevision": "main@sha1:def",
        "team": "platform",
    }


# -- a real reconcile -----------------------------------------------------------------------------------


def test_a_kustomize_reconcile_event_reaches_a_generic_provider_with_its_revision(
    url: str,
    start_reconcilers: Callable[..., Reconcilers],
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    controller: Reconcilers,
    recorder: Recorder,
) -> None:
    shard = "nt-events-kustomize"
    start_reconcilers(("source", "kustomize"), label_selector=f"{SHARD}={shard}", events_addr=url + "/")
    tenant = make_tenant(admin_api, namespace_factory, git_server, tmp_path, shard=shard)
    nt = Notifications(admin_api, tenant.config, controller)
    route_to(nt, recorder, sources=[{"kind": "Kustomization", "name": "app"}])
    sha = tenant.push({"app/settings.yaml": configmap("app-settings", "v1")})
    tenant.git_repository()
    tenant.kustomization("app", path="./app", targetNamespace=tenant.target)
    applied = tenant.ready("app", sha)
    revision = applied["status"]["lastAppliedRevision"]
    assert revision == f"main@sha1:{sha}"

    (sent,) = recorder.wait_for(1, timeout=30, where=lambda r: r.json()["reason"] == "ReconciliationSucceeded")
    body = sent.json()
    assert body["involvedObject"]["kind"] == "Kustomization"
    assert body["involvedObject"]["name"] == "app"
    assert body["involvedObject"]["namespace"] == tenant.config
    assert body["involvedObject"]["uid"] == applied["metadata"]["uid"]
    assert body["involvedObject"]["apiVersion"].startswith(f"{KUSTOMIZE}/")
    assert body["metadata"]["revision"] == revision
    assert f"ConfigMap/{tenant.target}/app-settings created" in body["message"]
    assert body["reportingController"] == "kustomize-controller"
    assert sent.header("gotk-component") == "kustomize-controller"


# -- failed and queued deliveries ---------------------------------------------------------------------


def _refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed: connecting is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_provider_that_refuses_connections_gives_a_warning_and_other_alerts_still_get_the_event(
    url: str, nt: Notifications, recorder: Recorder
) -> None:
    hidden = f"hidden-{uuid.uuid4().hex}"
    token = f"token-{uuid.uuid4().hex}"
    nt.secret("dead-secret", address=f"http://127.0.0.1:{_refused_port()}/{hidden}", token=token)
    nt.provider("dead", secret="dead-secret", timeout="5s")
    nt.alert("to-dead", "dead")
    route_to(nt, recorder, "live")
    started = time.monotonic()
    assert post(url, flux_event(nt.namespace, name="web", severity="error", message="boom")).status_code == 202
    (sent,) = recorder.wait_for(1, timeout=5)
    assert sent.json()["message"] == "boom"
    assert sent.monotonic - started < 5, "the live Alert did not wait for the dead Provider's retries"

    warning = nt.wait_event("to-dead", DISPATCH_FAILED, timeout=60)
    assert "dead" in warning.message, warning.message
    assert "web" in warning.message, "the message names the involved object"
    assert hidden not in warning.message and token not in warning.message, warning.message
    assert warning.source.component == "notification-controller" or warning.reporting_component == (
        "notification-controller"
    )
    assert not [e for e in nt.events_on("live") if e.reason == DISPATCH_FAILED]


def test_a_full_queue_answers_429_and_keeps_nothing(
    start_reconcilers: Callable[..., Reconcilers], admin_api: client.ApiClient, namespace: str
) -> None:
    tiny = start_notification(start_reconcilers, queue_size=2, delivery_concurrency=1)
    tiny_url = event_url(tiny)
    nt = Notifications(admin_api, namespace, tiny)
    with Recorder() as slow:
        route_to(nt, slow)
        answers: list[tuple[str, int]] = []
        with slow.held():  # the provider answers nothing: one delivery in flight, the queue fills
            for number in range(20):
                message = f"event {number}"
                answers.append((message, post(tiny_url, flux_event(namespace, message=message)).status_code))
                if answers[-1][1] == 429:
                    break
            accepted = [m for m, status in answers if status == 202]
            assert answers[-1][1] == 429, f"the queue never filled: {answers}"
            assert 2 <= len(accepted) <= 4, answers  # queue_size 2, plus the one in flight
        slow.wait_for(len(accepted), timeout=30)
        refused = answers[-1][0]
        # the refused event was kept nowhere: posting it again is not a duplicate, and it goes out once
        assert post(tiny_url, flux_event(namespace, message=refused)).status_code == 202
        slow.wait_for(len(accepted) + 1, timeout=30)
        time.sleep(0.5)
        assert sorted(messages(slow.received)) == sorted([*accepted, refused])


def test_a_provider_failing_twice_with_500_gets_the_event_on_a_retry(
    url: str, nt: Notifications, recorder: Recorder
) -> None:
    path = route_to(nt, recorder)
    recorder.fail(2, 500)
    assert post(url, flux_event(nt.namespace, message="through retries")).status_code == 202
    attempts = recorder.wait_for(3, timeout=60)
    assert [(r.path, r.status) for r in attempts] == [(path, 500), (path, 500), (path, 200)]
    assert {r.body for r in attempts} == {attempts[0].body}, "every attempt sends the same body"
    assert attempts[1].monotonic > attempts[0].monotonic, "retried after the first failure"
    time.sleep(1)
    assert recorder.count == 3, "no attempt after the one that succeeded"
    assert not [e for e in nt.events_on("generic") if e.reason == DISPATCH_FAILED]


def test_a_provider_answering_400_is_not_retried_and_warns(url: str, nt: Notifications, recorder: Recorder) -> None:
    """As Flux's retrying client: 5xx and connection errors are retried, another 4xx is final."""
    route_to(nt, recorder)
    recorder.fail(1, 400, b"bad payload\n")
    assert post(url, flux_event(nt.namespace, message="refused by the provider")).status_code == 202
    warning = nt.wait_event("generic", DISPATCH_FAILED, timeout=60)
    assert "400" in warning.message, warning.message
    assert [r.status for r in recorder.received] == [400]


def test_a_rotated_secret_address_is_used_from_the_next_event(url: str, nt: Notifications, recorder: Recorder) -> None:
    nt.secret("hook", address=f"{recorder.url}/old")
    nt.provider("rotating", secret="hook")
    nt.alert("rotating", "rotating")
    nt.settled()
    assert post(url, flux_event(nt.namespace, message="before")).status_code == 202
    (before,) = recorder.wait_for(1)
    assert before.path == "/old"
    nt.core.patch_namespaced_secret("hook", nt.namespace, {"stringData": {"address": f"{recorder.url}/new"}})
    deadline = time.monotonic() + 20
    number = 0
    while recorder.received[-1].path != "/new":  # the Secret informer catches up within moments
        assert time.monotonic() < deadline, [r.path for r in recorder.received]
        number += 1
        assert post(url, flux_event(nt.namespace, message=f"after {number}")).status_code == 202
        recorder.wait_for(number + 1)
    paths = [r.path for r in recorder.received]
    assert paths[-1] == "/new" and "/new" not in paths[:-1] and set(paths) == {"/old", "/new"}


def test_an_alert_whose_provider_is_missing_warns_naming_it(url: str, nt: Notifications, recorder: Recorder) -> None:
    nt.alert("orphan", "not-there")
    route_to(nt, recorder, "witness")
    assert post(url, flux_event(nt.namespace, message="to nowhere")).status_code == 202
    recorder.wait_for(1)
    warning = nt.wait_event("orphan", DISPATCH_FAILED, contains="not-there")
    assert nt.namespace in warning.message or "not-there" in warning.message


def test_a_deleted_alert_gets_nothing_more(url: str, nt: Notifications, recorder: Recorder) -> None:
    route_to(nt, recorder, "gone")
    route_to(nt, recorder, "witness")
    assert post(url, flux_event(nt.namespace, message="one")).status_code == 202
    recorder.wait_for(2)
    nt.delete(ALERT, "gone")
    nt.settled()
    assert post(url, flux_event(nt.namespace, message="two")).status_code == 202
    recorder.wait_for(3)
    time.sleep(0.3)
    assert sorted((r.path, r.json()["message"]) for r in recorder.received) == [
        ("/gone", "one"),
        ("/witness", "one"),
        ("/witness", "two"),
    ]


def test_a_stalled_provider_does_not_hold_up_another_alert(
    start_reconcilers: Callable[..., Reconcilers], admin_api: client.ApiClient, namespace: str
) -> None:
    """The issue: a failing send "never blocks or drops other alerts" — nor does one that hangs."""
    own = start_notification(start_reconcilers)  # default delivery concurrency
    own_url = event_url(own)
    nt = Notifications(admin_api, namespace, own)
    with Recorder() as stalled, Recorder() as healthy:
        nt.provider("stalled", address=f"{stalled.url}/stalled", timeout="30s")
        nt.alert("stalled", "stalled")
        route_to(nt, healthy, "healthy")
        events = 100  # more than the senders in flight at once
        with stalled.held():  # it reads every request and answers none
            for number in range(events):
                assert post(own_url, flux_event(namespace, message=f"event {number}")).status_code == 202
            started = time.monotonic()
            try:
                healthy.wait_for(events, timeout=15)
            finally:
                took, delivered = time.monotonic() - started, healthy.count
        assert delivered == events and took < 10, f"{delivered} of {events} delivered to the healthy Alert"
        stalled.wait_for(events, timeout=60)  # released: the stalled Provider gets its share too


def test_a_generic_hmac_provider_over_mtls_end_to_end(url: str, nt: Notifications, authority: PrivateCA) -> None:
    """Secret (address, token, headers) and certSecretRef (ca.crt, tls.crt/tls.key) through the event server."""
    token = f"hmac-{uuid.uuid4().hex}"
    with Recorder(tls=authority, client_certs=True) as https:
        nt.secret("hook", address=f"{https.url}/hook", token=token, headers="X-Team: platform\n")
        nt.secret("tls", {"ca.crt": authority.ca_pem, "tls.crt": authority.client.cert_pem,
                          "tls.key": authority.client.key_pem})  # fmt: skip
        nt.provider("signed", type="generic-hmac", secret="hook", cert_secret="tls")
        nt.alert("signed", "signed")
        nt.settled()
        event = flux_event(nt.namespace, message="signed and sealed")
        assert post(url, event).status_code == 202
        (sent,) = https.wait_for(1, timeout=30)
    assert sent.path == "/hook"
    assert sent.client_cert == authority.name, "the client certificate of certSecretRef was presented"
    expected = "sha256=" + hmac.new(token.encode(), sent.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(sent.header("x-signature") or "", expected)
    assert sent.header("x-team") == "platform"
    assert sent.json()["message"] == "signed and sealed"
    assert sent.json()["involvedObject"] == event["involvedObject"]
    assert token not in sent.body.decode() and token not in str(sent.headers)
