"""Each provider type against a real HTTPS endpoint on loopback, which records what was really sent.

The endpoint is tests.support.recorder's Recorder: real sockets, a real TLS 1.2+ handshake with
tests.support.tls's private CA, optional client certificates. Each request is checked independently:
the HMAC recomputed here, the chat bodies parsed field by field, the GitHub and GitLab commit-status
paths and bodies against those APIs' documentation.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Iterator
from dataclasses import replace
from typing import Any, TypeVar

import pytest

from fluxwarden.controllers.notification.event import Event, ObjectRef
from fluxwarden.controllers.notification.providers import DeliveryError, Target, close, deliver, transport
from fluxwarden.controllers.notification.providers import tls as provider_tls
from tests.support.recorder import Received, Recorder, Reply
from tests.support.tls import PrivateCA
from tests.unit.controllers.notification.providers_events import as_sent

SHA = "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1"
UID = "0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a"
TOKEN = "tok-9f8e7d6c5b"
HEADER_SECRET = "hdr-1a2b3c4d5e"
T = TypeVar("T")


class CountingRecorder(Recorder):
    """The shared recorder, counting the connections it accepted (to see the client's pool at work)."""

    connections = 0

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        if add:
            self.connections += 1
        super()._track(connection, add=add)


@pytest.fixture(scope="module")
def ca() -> PrivateCA:
    return PrivateCA()


@pytest.fixture
def https(ca: PrivateCA) -> Iterator[Recorder]:
    with CountingRecorder(tls=ca, client_certs=True) as server:
        yield server


def run(work: Awaitable[T]) -> T:
    """Run one coroutine on a fresh loop, closing the providers' pool before the loop ends."""

    async def body() -> T:
        try:
            return await work
        finally:
            await close()

    return asyncio.run(body())


def event(**changes: Any) -> Event:
    base = Event(
        involved_object=ObjectRef(
            "Kustomization", "webapp", "apps", uid="7d0cdc51", api_version="kustomize.toolkit.fluxcd.io/v1"
        ),
        severity="info",
        timestamp="2022-10-28T07:26:19Z",
        message=f"Applied revision: main@sha1:{SHA}",
        reason="ReconciliationSucceeded",
        metadata={"kustomize.toolkit.fluxcd.io/revision": f"main@sha1:{SHA}", "summary": "eu-west"},
        reporting_controller="kustomize-controller",
        reporting_instance="kustomize-controller-7c7b47f5f-8bhrp",
    )
    return as_sent(replace(base, **changes))


def target(kind: str, address: str, ca: PrivateCA | None, **extra: Any) -> Target:
    data = {"ca.crt": ca.ca_pem} if ca is not None else {}
    if extra.pop("client_cert", False) and ca is not None:
        data |= {"tls.crt": ca.client.cert_pem, "tls.key": ca.client.key_pem}
    context = provider_tls.context(data, "test") if data else None
    secrets = tuple(v for v in (extra.get("token"), extra.get("password"), *extra.get("headers", {}).values()) if v)
    return Target(
        type=kind,
        namespace="apps",
        name="team",
        uid=UID,
        address=address,
        ssl=context,
        tls_key=provider_tls.digest(*(data.get(k, b"") for k in ("ca.crt", "tls.crt", "tls.key"))),
        secret_values=secrets + ((address,) if extra.get("address_from_secret") else ()),
        **extra,
    )


# --- the webhook and chat providers ---------------------------------------------------------------


def test_generic_over_https_with_the_secret_headers(https: CountingRecorder, ca: PrivateCA) -> None:
    headers = {"Authorization": f"Bearer {HEADER_SECRET}", "X-Forwarded-Proto": "https"}
    run(deliver(target("generic", f"{https.url}/hook", ca, headers=headers), event()))
    (seen,) = https.received
    assert (seen.method, seen.path) == ("POST", "/hook")
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["gotk-component"] == "kustomize-controller"
    assert seen.headers["authorization"] == f"Bearer {HEADER_SECRET}"
    assert seen.headers["x-forwarded-proto"] == "https"
    body = seen.json()
    assert body["involvedObject"]["kind"] == "Kustomization" and body["involvedObject"]["name"] == "webapp"
    assert body["metadata"] == {"revision": f"main@sha1:{SHA}", "summary": "eu-west"}
    assert body["reportingController"] == "kustomize-controller" and body["severity"] == "info"


def test_generic_hmac_signature_verifies(https: CountingRecorder, ca: PrivateCA) -> None:
    run(deliver(target("generic-hmac", f"{https.url}/signed", ca, token=TOKEN), event()))
    (seen,) = https.received
    algorithm, _, sent = seen.headers["x-signature"].partition("=")
    assert algorithm == "sha256"
    expected = hmac.new(TOKEN.encode(), seen.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(sent, expected)
    wrong = hmac.new(b"another-key", seen.body, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(sent, wrong)
    assert seen.json()["involvedObject"]["name"] == "webapp"


def test_slack_web_api(ca: PrivateCA) -> None:
    def slack(seen: Received) -> Reply:
        ok = seen.json()["channel"] != "missing"
        return Reply(200, json.dumps({"ok": ok, "error": None if ok else "channel_not_found"}).encode())

    with Recorder(tls=ca, responder=slack) as server:
        address = f"{server.url}/api/chat.postMessage"
        run(
            deliver(
                target("slack", address, ca, token=TOKEN, channel="general", username="flux"), event(severity="error")
            )
        )
        (seen,) = server.received
        assert seen.headers["authorization"] == f"Bearer {TOKEN}"
        body = seen.json()
        assert (body["channel"], body["username"]) == ("general", "flux")
        (attachment,) = body["attachments"]
        assert attachment["color"] == "danger"
        assert attachment["author_name"] == "kustomization/webapp.apps"
        assert attachment["text"] == f"Applied revision: main@sha1:{SHA}"
        fields = {f["title"]: f["value"] for f in attachment["fields"]}
        assert fields == {"revision": f"main@sha1:{SHA}", "summary": "eu-west"}
        # chat.postMessage answers 200 with ok=false: that is a failure, and not one a retry fixes
        with pytest.raises(DeliveryError, match="ok=false: channel_not_found") as caught:
            run(deliver(target("slack", address, ca, token=TOKEN, channel="missing"), event()))
        assert TOKEN not in str(caught.value)
        assert len(server.received) == 2


def test_msteams_workflows_adaptive_card(https: CountingRecorder, ca: PrivateCA) -> None:
    address = f"{https.url}/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=x"
    run(deliver(target("msteams", address, ca), event(severity="error", message="health check failed")))
    (seen,) = https.received
    assert seen.path == "/workflows/abc/triggers/manual/paths/invoke" and seen.query["sig"] == ["x"]
    body = seen.json()
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    items = card["body"][0]["items"]
    assert [i["type"] for i in items] == ["TextBlock", "TextBlock", "FactSet"]
    assert items[0]["text"] == "kustomization/webapp.apps"
    assert (items[1]["text"], items[1]["color"]) == ("health check failed", "attention")
    assert items[2]["facts"][0] == {"title": "summary", "value": "eu-west"}


def test_discord_slack_endpoint(https: CountingRecorder, ca: PrivateCA) -> None:
    run(deliver(target("discord", f"{https.url}/api/webhooks/42/tok", ca, username="flux-bot"), event()))
    (seen,) = https.received
    assert seen.path == "/api/webhooks/42/tok/slack"
    body = seen.json()
    assert body["username"] == "flux-bot"
    assert body["attachments"][0]["color"] == "good"
    assert {f["title"] for f in body["attachments"][0]["fields"]} == {"revision", "summary"}


def test_alertmanager_alerts_with_basic_auth(https: CountingRecorder, ca: PrivateCA) -> None:
    t = target("alertmanager", f"{https.url}/api/v2/alerts", ca, username="am", password="pw-2b3c4d5e")
    run(deliver(t, event(severity="error", reason="HealthCheckFailed")))
    (seen,) = https.received
    scheme, _, pair = seen.headers["authorization"].partition(" ")
    assert scheme == "Basic" and base64.b64decode(pair) == b"am:pw-2b3c4d5e"
    (alert,) = seen.json()  # Alertmanager's API v2 takes a list of alerts
    assert alert["status"] == "firing" and alert["startsAt"] == "2022-10-28T07:26:19Z"
    assert alert["labels"]["alertname"] == "FluxKustomizationHealthcheckfailed"
    assert alert["labels"]["severity"] == "error" and alert["labels"]["revision"] == f"main@sha1:{SHA}"
    assert alert["annotations"] == {"message": f"Applied revision: main@sha1:{SHA}", "summary": "eu-west"}
    assert "summary" not in alert["labels"]


# --- commit statuses --------------------------------------------------------------------------------


def test_github_commit_status_and_dedup(ca: PrivateCA) -> None:
    posted: list[dict[str, Any]] = []

    def github(seen: Received) -> Reply:
        if seen.method == "GET":  # GitHub lists a ref's statuses newest first
            return Reply(200, json.dumps(posted[::-1]).encode(), {"Content-Type": "application/json"})
        posted.append(seen.json())
        return Reply(201, json.dumps(seen.json() | {"id": len(posted)}).encode())

    with Recorder(tls=ca, responder=github) as server:
        t = target("github", f"{server.url}/my-org/my-repo.git", ca, token=TOKEN)
        run(deliver(t, event()))
        run(deliver(t, event()))  # the same status again: listed, not posted
        run(deliver(t, event(severity="error", reason="HealthCheckFailed")))
        methods = [(s.method, s.path) for s in server.received]
        listing = ("GET", f"/api/v3/repos/my-org/my-repo/commits/{SHA}/statuses")
        create = ("POST", f"/api/v3/repos/my-org/my-repo/statuses/{SHA}")
        assert methods == [listing, create, listing, listing, create]
        assert server.received[0].query == {"per_page": ["50"]}
        for seen in server.received:
            assert seen.headers["authorization"] == f"Bearer {TOKEN}"
            assert seen.headers["accept"] == "application/vnd.github+json"
        first, second = (s.json() for s in server.received if s.method == "POST")
        # docs.github.com: state is one of error, failure, pending, success; context and description strings
        assert first == {
            "state": "success",
            "description": "reconciliation succeeded",
            "context": "kustomization/webapp/0c9c2e41",
        }
        assert second["state"] == "failure" and second["description"] == "health check failed"
        assert second["context"] == first["context"]


def test_github_skips_without_a_revision_then_sends_with_one(ca: PrivateCA) -> None:
    with Recorder(tls=ca, responder=lambda s: Reply(200, b"[]")) as server:
        t = target("github", f"{server.url}/org/repo", ca, token=TOKEN)
        run(deliver(t, event(metadata={})))
        run(deliver(t, event(reason="Progressing")))
        run(deliver(t, event()))
        assert [s.method for s in server.received] == ["GET", "POST"]  # only the third was sent


def test_gitlab_commit_status(ca: PrivateCA) -> None:
    answers = {"GET": Reply(200, b"[]"), "POST": Reply(201, b"{}")}
    with Recorder(tls=ca, responder=lambda s: answers[s.method]) as server:
        t = target("gitlab", f"{server.url}/group/sub/project.git", ca, token=TOKEN)
        run(deliver(t, event(severity="error")))
        get, post = server.received
        # docs.gitlab.com: the project is its ID or its URL-encoded path; POST /projects/:id/statuses/:sha
        assert get.target.startswith(f"/api/v4/projects/group%2Fsub%2Fproject/repository/commits/{SHA}/statuses?")
        assert get.query == {"name": ["kustomization/webapp/0c9c2e41"]}
        assert (post.method, post.target) == ("POST", f"/api/v4/projects/group%2Fsub%2Fproject/statuses/{SHA}")
        for seen in (get, post):
            assert seen.headers["private-token"] == TOKEN and "authorization" not in seen.headers
        body = post.json()
        assert body["state"] in {"pending", "running", "success", "failed", "canceled"}
        assert body == {
            "state": "failed",
            "name": "kustomization/webapp/0c9c2e41",
            "description": "reconciliation succeeded",
        }


# --- TLS ------------------------------------------------------------------------------------------


def test_untrusted_ca_fails_at_once_with_the_fix(https: CountingRecorder) -> None:
    other = PrivateCA()
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        run(deliver(target("generic", f"{https.url}/hook", other, headers={"X-Key": HEADER_SECRET}), event()))
    text = str(caught.value)
    assert "certificate is not trusted" in text and "ca.crt" in text and "spec.certSecretRef" in text
    assert text.startswith("Provider apps/team (generic): POST to https://127.0.0.1:")
    assert "\n" not in text and HEADER_SECRET not in text
    assert time.monotonic() - started < 1.5  # a certificate problem is not retried
    assert https.received == []
    with pytest.raises(DeliveryError, match="not trusted"):  # and the system roots do not know the test CA
        run(deliver(target("generic", f"{https.url}/hook", None), event()))


def test_mtls_client_certificate_presented(ca: PrivateCA) -> None:
    server = Recorder(tls=ca, client_certs=True)
    assert server.tls_context is not None
    server.tls_context.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no handshake
    with server:
        run(deliver(target("generic", f"{server.url}/m", ca, client_cert=True), event()))
        (seen,) = server.received
        assert seen.client_cert == ca.name
        with pytest.raises(DeliveryError) as caught:  # without the pair the server ends the handshake
            run(deliver(target("generic", f"{server.url}/m", ca, timeout=3.0), event()))
        # TLS 1.3 refuses the missing certificate after the client's side of the handshake: the client
        # reads either the server's alert or just the closed connection, as Go's client would
        text = str(caught.value)
        assert ("TLS handshake failed" in text and "tls.crt/tls.key" in text) or "the connection failed" in text
        assert len(server.received) == 1


# --- failures, retries, redirects ---------------------------------------------------------------


def test_refused_connection_retries_then_fails_in_bounded_time(ca: PrivateCA) -> None:
    with Recorder() as closed:
        address, port = f"{closed.url}/api/{TOKEN}", closed.port
    t = target("generic", address, None, timeout=3.0, token=TOKEN, address_from_secret=True)
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        run(deliver(t, event()))
    elapsed = time.monotonic() - started
    text = str(caught.value)
    assert 1.9 < elapsed < 3.5, elapsed  # one backoff (2 s), then the next would pass the 3 s timeout
    assert "after 2 attempts" in text and "cannot connect" in text
    assert "the address from its Secret" in text and TOKEN not in text and str(port) not in text


def test_5xx_is_retried_and_4xx_is_not(ca: PrivateCA) -> None:
    server = CountingRecorder(tls=ca, status=202)
    with server:
        server.script(Reply(503, b"busy", {"Retry-After": "1"}), Reply(500, b"oops"))
        started = time.monotonic()
        run(deliver(target("generic", f"{server.url}/h", ca), event()))
        elapsed = time.monotonic() - started
        assert len(server.received) == 3  # 503 (Retry-After: 1), 500 (then 2 s backoff), 202
        assert 2.9 < elapsed < 6, elapsed
        assert [s.status for s in server.received] == [503, 500, 202]
        assert server.connections == 1  # the kept-alive connection outlives a 5xx
    with Recorder(tls=ca, responder=lambda s: Reply(400, f"bad token {TOKEN}\n".encode())) as refusing:
        with pytest.raises(DeliveryError) as caught:
            run(deliver(target("generic-hmac", f"{refusing.url}/h", ca, token=TOKEN), event()))
        text = str(caught.value)
        assert "HTTP 400: bad token ***" in text and TOKEN not in text
        assert len(refusing.received) == 1


def test_redirects_keep_credentials_on_their_origin(ca: PrivateCA) -> None:
    with Recorder(tls=ca) as other:

        def redirect(seen: Received) -> Reply:
            if seen.path == "/same":
                return Reply(307, headers={"Location": "/final"})
            if seen.path == "/away":
                return Reply(307, headers={"Location": f"{other.url}/elsewhere"})
            return Reply(200)

        with Recorder(tls=ca, responder=redirect) as server:
            t = target("alertmanager", f"{server.url}/same", ca, token=TOKEN)
            run(deliver(t, event()))
            assert [s.path for s in server.received] == ["/same", "/final"]
            assert server.received[1].headers["authorization"] == f"Bearer {TOKEN}"
            assert server.received[1].json() == server.received[0].json()  # 307 keeps the method and body
            run(deliver(replace(t, address=f"{server.url}/away"), event()))
            (elsewhere,) = other.received
            assert elsewhere.path == "/elsewhere" and elsewhere.method == "POST"
            assert "authorization" not in elsewhere.headers  # never to another host


def test_pooled_client_reuses_its_connection(https: CountingRecorder, ca: PrivateCA) -> None:
    async def three() -> None:
        t = target("generic", f"{https.url}/p", ca)
        for _ in range(3):
            await deliver(t, event())

    run(three())
    assert len(https.received) == 3
    assert https.connections == 1  # one TLS connection for all three


def test_commit_status_expr_names_the_context(ca: PrivateCA) -> None:
    answers = {"GET": Reply(200, b"[]"), "POST": Reply(201, b"{}")}
    with Recorder(tls=ca, responder=lambda s: answers[s.method]) as server:
        expr = "(event.involvedObject.kind + '/' + event.metadata.cluster + '/' + alert.metadata.name).lowerAscii()"
        t = replace(target("gitlab", f"{server.url}/group/project", ca, token=TOKEN), commit_status_expr=expr)
        with_cluster = event(metadata={"kustomize.toolkit.fluxcd.io/revision": f"main@sha1:{SHA}", "cluster": "EU-1"})
        with pytest.raises(DeliveryError) as caught:  # the expression reads the Alert: none given
            run(deliver(t, with_cluster))
        assert "spec.commitStatusExpr failed for this event: alert is not known here" in str(caught.value)
        with pytest.raises(DeliveryError, match="no such key: cluster"):
            run(deliver(t, event(), alert={"metadata": {"name": "status"}}))
        run(deliver(t, with_cluster, alert={"metadata": {"name": "Status"}}))
        get, post = server.received  # only the last one was sent
        assert get.query == {"name": ["kustomization/eu-1/status"]}
        assert post.json()["name"] == "kustomization/eu-1/status"


def test_proxy_from_the_provider_is_used_with_its_credentials() -> None:
    # a plain-HTTP target through an HTTP proxy: the request reaches the proxy in absolute form
    with Recorder() as proxy, Recorder() as endpoint:
        t = target("generic", f"{endpoint.url}/hook", None, proxy=f"http://pu:{HEADER_SECRET}@127.0.0.1:{proxy.port}")
        run(deliver(t, event()))
        (seen,) = proxy.received
        assert seen.target == f"{endpoint.url}/hook"
        scheme, _, pair = (seen.header("proxy-authorization") or "").partition(" ")
        assert scheme == "Basic" and base64.b64decode(pair) == f"pu:{HEADER_SECRET}".encode()
        assert seen.json()["involvedObject"]["name"] == "webapp"
        assert endpoint.received == []  # the proxy answered; nothing went around it


def test_pool_is_bounded_and_evicts_idle_clients(https: CountingRecorder, ca: PrivateCA) -> None:
    async def many() -> tuple[int, int]:
        base = target("generic", f"{https.url}/p", ca)
        for index in range(transport.POOL_LIMIT + 3):  # as many distinct TLS materials
            await deliver(replace(base, tls_key=f"material-{index}"), event())
        pool = transport._POOLS[asyncio.get_running_loop()]
        return len(pool), sum(1 for key in pool if key[2] == f"material-{transport.POOL_LIMIT + 2}")

    size, newest = run(many())
    assert size == transport.POOL_LIMIT and newest == 1  # the newest client kept, the oldest closed
    assert len(https.received) == transport.POOL_LIMIT + 3  # every delivery went out


def test_a_stalled_endpoint_takes_no_connection_of_another(ca: PrivateCA) -> None:
    with Recorder(tls=ca) as slow, Recorder(tls=ca) as fast:

        async def both() -> float:
            stalled = [
                asyncio.create_task(deliver(target("generic", f"{slow.url}/s", ca, timeout=20.0), event()))
                for _ in range(2 * transport.PER_ORIGIN)  # more than its connections: some wait in its pool
            ]
            await asyncio.to_thread(slow.wait_for, transport.PER_ORIGIN)
            started = time.monotonic()
            await deliver(target("generic", f"{fast.url}/f", ca), event())  # same TLS material, other origin
            took = time.monotonic() - started
            slow.release()
            await asyncio.gather(*stalled)
            return took

        slow.hold()
        took = run(both())
        assert took < 1.0, took
        assert fast.count == 1 and slow.count == 2 * transport.PER_ORIGIN
