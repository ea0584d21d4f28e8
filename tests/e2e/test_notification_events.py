"""The event server end to end: Flux's status codes, metadata cleaning, rate limiting, failed and queued deliveries.

A real API server holds the Alerts and Providers; the event server runs in-process on loopback; a
generic Provider points at a recording HTTP endpoint, so every assertion is about a request that
really arrived (or, after a later one did, really did not).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import hmac
import json
import logging
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
from fluxwarden.controllers.runtime.events import NORMAL, EventRecorder
from fluxwarden.controllers.runtime.kube import Kube
from fluxwarden.controllers.source.api import GIT_REPOSITORY
from tests.support.git_server import GitHttpServer
from tests.support.notification import Notifications, deliveries_done, event_url, flux_event, post, start_notification
from tests.support.recorder import Received, Recorder, Reply
from tests.support.tenants import SHARD, Tenant, condition, configmap, make_tenant
from tests.support.tls import PrivateCA
from tests.support.wait import until

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
    deliveries_done(nt.reconcilers)  # every accepted delivery ended: one not received was never sent
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

    fits = flux_event(nt.namespace, message="y" * (MAX_EVENT_BYTES - envelope))
    exactly = json.dumps(fits).encode()
    assert len(exactly) == MAX_EVENT_BYTES
    assert post(url, exactly, timeout=30).status_code == 202, "3 MiB itself is within Flux's limit"
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
    deliveries_done(nt.reconcilers)  # every accepted delivery ended: one not received was never sent
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


def _kustomize_tenant(
    start_reconcilers: Callable[..., Reconcilers],
    url: str,
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    shard: str,
) -> Tenant:
    """The real source and kustomize controllers, posting their events to ``url``, and a tenant for them."""
    start_reconcilers(("source", "kustomize"), label_selector=f"{SHARD}={shard}", events_addr=url + "/")
    return make_tenant(admin_api, namespace_factory, git_server, tmp_path, shard=shard)


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
    tenant = _kustomize_tenant(
        start_reconcilers, url, admin_api, namespace_factory, git_server, tmp_path, "nt-events-kustomize"
    )
    nt = Notifications(admin_api, tenant.config, controller)
    route_to(nt, recorder, sources=[{"kind": "Kustomization", "name": "app"}])
    route_to(nt, recorder, "git", sources=[{"kind": "GitRepository", "name": "repo"}])
    sha = tenant.push({"app/settings.yaml": configmap("app-settings", "v1")})
    tenant.git_repository()
    tenant.kustomization("app", path="./app", targetNamespace=tenant.target)
    applied = tenant.ready("app", sha)
    revision = applied["status"]["lastAppliedRevision"]
    assert revision == f"main@sha1:{sha}"

    (sent,) = recorder.wait_for(
        1, timeout=30, where=lambda r: r.path == "/generic" and r.json()["reason"] == "ReconciliationSucceeded"
    )
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

    (stored,) = recorder.wait_for(1, timeout=30, where=lambda r: r.path == "/git")
    source = stored.json()
    assert (source["involvedObject"]["kind"], source["involvedObject"]["name"]) == ("GitRepository", "repo")
    assert source["severity"] == "info" and source["reportingController"] == "source-controller"
    assert source["metadata"]["revision"] == revision, "the source's event names the artifact's revision"


def test_a_failing_kustomize_reconcile_sends_an_error_with_the_attempted_revision(
    url: str,
    start_reconcilers: Callable[..., Reconcilers],
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    controller: Reconcilers,
    recorder: Recorder,
) -> None:
    """As Flux's kustomize-controller: a failure is an error event about the revision that failed."""
    tenant = _kustomize_tenant(
        start_reconcilers, url, admin_api, namespace_factory, git_server, tmp_path, "nt-events-kustomize-fail"
    )
    nt = Notifications(admin_api, tenant.config, controller)
    route_to(nt, recorder, "errors", sources=[{"kind": "Kustomization", "name": "app"}], eventSeverity="error")
    good = tenant.push({"app/settings.yaml": configmap("app-settings", "v1")})
    tenant.git_repository()
    tenant.kustomization("app", path="./app", targetNamespace=tenant.target)
    tenant.ready("app", good)
    bad = tenant.push({"app/broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n"})
    tenant.patch("repo", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "bad"}}}, GIT_REPOSITORY)
    failed = until(
        lambda: tenant.get("app"),
        lambda o: (
            (o.get("status") or {}).get("lastAttemptedRevision", "").endswith(bad)
            and condition(o).get("status") == "False"
        ),
        what="Kustomization app failing at the bad commit",
    )
    assert failed["status"]["lastAppliedRevision"] == f"main@sha1:{good}"
    reason = condition(failed)["reason"]
    (sent,) = recorder.wait_for(1, timeout=30, where=lambda r: r.json()["reason"] == reason)
    body = sent.json()
    assert body["severity"] == "error"
    assert body["metadata"]["revision"] == f"main@sha1:{bad}", "the revision that failed, not the last good one"


# -- failed and queued deliveries ---------------------------------------------------------------------


def _refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed: connecting is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_provider_that_refuses_connections_gives_a_warning_and_other_alerts_still_get_the_event(
    url: str, nt: Notifications, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
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
    assert "to-dead" in caplog.text, "the failure is logged too"
    assert hidden not in caplog.text and token not in caplog.text, "the Secret's address and token stay out of logs"


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
        deliveries_done(nt.reconcilers)  # every accepted delivery ended: one not received was never sent
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
    deliveries_done(nt.reconcilers)  # every accepted delivery ended: one not received was never sent
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
    deliveries_done(nt.reconcilers)  # every accepted delivery ended: one not received was never sent
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


def test_an_event_with_a_token_refused_for_a_full_queue_is_not_a_duplicate_on_retry(
    start_reconcilers: Callable[..., Reconcilers], admin_api: client.ApiClient, namespace: str
) -> None:
    """``<group>/token`` is part of the rate-limit key and is dropped before sending: the 429 for a full
    queue must forget the key the event was admitted under, token included."""
    tiny = start_notification(start_reconcilers, queue_size=2, delivery_concurrency=1)
    tiny_url = event_url(tiny)
    nt = Notifications(admin_api, namespace, tiny)

    def tokened(number: int) -> dict[str, Any]:
        return flux_event(namespace, message=f"event {number}", metadata={f"{KUSTOMIZE}/token": f"t{number}"})

    with Recorder() as slow:
        route_to(nt, slow)
        answers: list[tuple[int, int]] = []
        with slow.held():
            for number in range(20):
                answers.append((number, post(tiny_url, tokened(number)).status_code))
                if answers[-1][1] == 429:
                    break
            assert answers[-1][1] == 429, f"the queue never filled: {answers}"
        accepted = [n for n, status in answers if status == 202]
        slow.wait_for(len(accepted), timeout=30)
        refused = answers[-1][0]
        retry = post(tiny_url, tokened(refused))
        assert retry.status_code == 202, f"the retry of a refused event is news; got {retry.text!r}"
        slow.wait_for(len(accepted) + 1, timeout=30)
        deliveries_done(nt.reconcilers)  # every accepted delivery ended: one not received was never sent
        assert sorted(messages(slow.received)) == sorted(f"event {n}" for n in [*accepted, refused])
        assert all("token" not in (r.json().get("metadata") or {}) for r in slow.received)


def test_a_commit_status_update_event_is_not_sent_to_a_generic_provider(
    url: str, nt: Notifications, recorder: Recorder
) -> None:
    """Flux: an event marked ``<group>/commit_status: update`` is for commit-status providers only."""
    route_to(nt, recorder)
    marked = {f"{KUSTOMIZE}/commit_status": "update", f"{KUSTOMIZE}/revision": "main@sha1:1"}
    assert post(url, flux_event(nt.namespace, message="status only", metadata=marked)).status_code == 202
    assert post(url, flux_event(nt.namespace, message="for everyone")).status_code == 202
    recorder.wait_for(1, where=lambda r: r.json()["message"] == "for everyone")
    deliveries_done(nt.reconcilers)  # every accepted delivery ended: one not received was never sent
    assert messages(recorder.received) == ["for everyone"]


def test_a_kustomization_waiting_for_its_source_sends_no_error(
    url: str,
    start_reconcilers: Callable[..., Reconcilers],
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    controller: Reconcilers,
    recorder: Recorder,
) -> None:
    """Flux's kustomize-controller only logs "Source ... not found" / "artifact not found": no event, no alert."""
    tenant = _kustomize_tenant(
        start_reconcilers, url, admin_api, namespace_factory, git_server, tmp_path, "nt-events-kustomize-wait"
    )
    nt = Notifications(admin_api, tenant.config, controller)
    route_to(nt, recorder, "errors", sources=[{"kind": "Kustomization", "name": "app"}], eventSeverity="error")
    route_to(nt, recorder, "everything", sources=[{"kind": "Kustomization", "name": "app"}])
    sha = tenant.push({"app/settings.yaml": configmap("app-settings", "v1")})
    tenant.kustomization("app", path="./app", targetNamespace=tenant.target)  # before its GitRepository
    until(lambda: tenant.get("app"), lambda o: condition(o).get("status") == "False", what="app waiting")
    tenant.git_repository()
    tenant.ready("app", sha)
    recorder.wait_for(
        1, timeout=30, where=lambda r: r.path == "/everything" and r.json()["reason"] == ("ReconciliationSucceeded")
    )
    deliveries_done(controller)  # every accepted delivery ended: one not received was never sent
    sent = [(r.path, r.json()["reason"], r.json()["message"][:120]) for r in recorder.received]
    assert not [s for s in sent if s[0] == "/errors"], sent


def test_concurrent_events_are_each_delivered_exactly_once(url: str, nt: Notifications, recorder: Recorder) -> None:
    route_to(nt, recorder)
    count = 200

    def send(number: int) -> int:
        return post(url, flux_event(nt.namespace, name=f"app-{number % 7}", message=f"event {number}")).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, range(count)))
    assert statuses == [202] * count
    recorder.wait_for(count, timeout=60)
    deliveries_done(nt.reconcilers)  # every accepted delivery ended: one not received was never sent
    assert sorted(messages(recorder.received)) == sorted(f"event {n}" for n in range(count))


def test_a_controller_retries_an_event_post_the_server_could_not_take(
    admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    """Flux's event recorder (go-retryablehttp) retries 5xx and connection errors; the event server
    itself answers 503 until its caches are listed, e.g. while the controllers restart together."""
    recorder.fail(2, 503, b"Alerts are not listed yet; retry\n")
    events = EventRecorder(Kube(admin_api), "kustomize-controller", recorder.url + "/")
    obj = {
        "apiVersion": f"{KUSTOMIZE}/v1",
        "kind": "Kustomization",
        "metadata": {"name": "app", "namespace": namespace, "uid": str(uuid.uuid4()), "resourceVersion": "1"},
    }
    events.record(obj, NORMAL, "ReconciliationSucceeded", "Applied revision: main@sha1:1", {})
    attempts = recorder.wait_for(3, timeout=30)
    assert [r.status for r in attempts] == [503, 503, 200]
    assert {r.json()["message"] for r in attempts} == {"Applied revision: main@sha1:1"}


def test_a_provider_type_fluxwarden_does_not_send_warns_naming_the_field(
    url: str, nt: Notifications, recorder: Recorder
) -> None:
    nt.provider("chat", type="googlechat", address=f"{recorder.url}/chat")
    nt.alert("chat", "chat")
    route_to(nt, recorder, "witness")
    assert post(url, flux_event(nt.namespace, message="to a chat")).status_code == 202
    recorder.wait_for(1)
    warning = nt.wait_event("chat", DISPATCH_FAILED, contains="googlechat")
    assert "spec.type" in warning.message and "generic" in warning.message, warning.message
    assert [r.path for r in recorder.received] == ["/witness"]


def _settle(count: Callable[[], int], *, at_least: int, quiet: float = 1.0, timeout: float = 30.0) -> int:
    """Wait until ``count()`` reaches ``at_least`` and then stops growing for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif now >= at_least and time.monotonic() - since >= quiet:
            return now
    raise AssertionError(f"still {last} (wanted at least {at_least}, then quiet) after {timeout}s")


def test_many_stalled_providers_of_one_tenant_do_not_hold_up_another_tenant(
    start_reconcilers: Callable[..., Reconcilers],
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
) -> None:
    """Enough hanging Providers to fill every sender (16 lanes x 4 = 64, the default) must not stop a
    working Alert elsewhere: Flux sends each notification on its own, so nothing there waits."""
    own = start_notification(start_reconcilers)  # default concurrency: 64 in all, 4 per Provider
    own_url = event_url(own)
    noisy, quiet = namespace_factory(), namespace_factory()
    tenant = Notifications(admin_api, noisy, own)
    other = Notifications(admin_api, quiet, own)
    with contextlib.ExitStack() as stack:
        hanging = [stack.enter_context(Recorder()) for _ in range(16)]  # 16 origins, as 16 real endpoints
        healthy = stack.enter_context(Recorder())
        for number, stalled in enumerate(hanging):
            tenant.provider(f"hang-{number}", address=f"{stalled.url}/hang", timeout="30s")
            tenant.alert(f"hang-{number}", f"hang-{number}")
        tenant.settled()
        route_to(other, healthy, "healthy")
        for stalled in hanging:
            stalled.hold()
        for number in range(5):  # 5 x 16 stalled deliveries: more than the senders
            assert post(own_url, flux_event(noisy, message=f"noise {number}")).status_code == 202
        _settle(lambda: sum(s.count for s in hanging), at_least=16)  # the hanging sends took what they may
        assert post(own_url, flux_event(quiet, message="meanwhile")).status_code == 202
        started = time.monotonic()
        try:
            healthy.wait_for(1, timeout=10)
        finally:
            took = time.monotonic() - started
            for stalled in hanging:
                stalled.release()
        assert took < 5, f"the other tenant's notification waited {took:.1f}s for free senders"


def test_a_hanging_path_does_not_hold_up_another_providers_path_on_the_same_host(
    start_reconcilers: Callable[..., Reconcilers],
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
) -> None:
    """Two teams' Providers on one host (a shared relay, one Alertmanager): one team's endpoint hanging
    must not take the connections the other team's sends need."""
    own = start_notification(start_reconcilers)
    own_url = event_url(own)
    noisy, quiet = namespace_factory(), namespace_factory()
    tenant = Notifications(admin_api, noisy, own)
    other = Notifications(admin_api, quiet, own)
    with Recorder(responder=lambda r: Reply(200, delay=60) if r.path.startswith("/hang") else None) as relay:
        for number in range(3):
            tenant.provider(f"hang-{number}", address=f"{relay.url}/hang-{number}", timeout="30s")
            tenant.alert(f"hang-{number}", f"hang-{number}")
        tenant.settled()
        route_to(other, relay, "ok")
        for number in range(4):  # 3 Providers x 4 in flight each: 12 hanging sends to one host
            assert post(own_url, flux_event(noisy, message=f"noise {number}")).status_code == 202
        _settle(lambda: relay.count, at_least=3)  # the hanging sends took what they may
        assert post(own_url, flux_event(quiet, message="meanwhile")).status_code == 202
        started = time.monotonic()
        try:
            relay.wait_for(1, timeout=10, where=lambda r: r.path == "/ok")
        finally:
            took = time.monotonic() - started
    assert took < 5, f"the other team's notification waited {took:.1f}s for a connection to the shared host"
