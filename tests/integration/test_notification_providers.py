"""Each provider type against a real HTTPS endpoint on loopback, which records what was really sent.

The endpoint is a small recorder of this module's own (tests/support/recorder.py was not on main yet
when this was written), built on tests.support.http_files' loopback server: real sockets, a real TLS
1.2+ handshake with tests.support.tls's private CA, optional client certificates. Each request is
checked independently: the HMAC recomputed here, the chat bodies parsed field by field, the GitHub and
GitLab commit-status paths and bodies against those APIs' documentation.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import pytest

from fluxwarden.controllers.notification.event import Event, ObjectRef
from fluxwarden.controllers.notification.providers import DeliveryError, Target, close, deliver
from fluxwarden.controllers.notification.providers import tls as provider_tls
from tests.support.http_files import AuthenticatingHandler, LoopbackHttpServer
from tests.support.tls import PrivateCA

SHA = "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1"
UID = "0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a"
TOKEN = "tok-9f8e7d6c5b"
HEADER_SECRET = "hdr-1a2b3c4d5e"
T = TypeVar("T")


@dataclass(frozen=True)
class Seen:
    method: str
    target: str  # the request target as sent: path and query, percent-encoding untouched
    headers: dict[str, str]  # lower-cased names
    body: bytes
    client_cert: str | None
    peer_port: int

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(self.target.partition("?")[2])

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Responder = Callable[[Seen], Answer]


class _Handler(AuthenticatingHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the pooled client's connection reuse shows
    server: Any

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        owner: Recorder = self.server.owner
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        cert = None
        if isinstance(self.connection, ssl.SSLSocket):
            subject: Any = (self.connection.getpeercert() or {}).get("subject", ())
            cert = {k: v for rdn in subject for k, v in rdn}.get("commonName")
        seen = Seen(
            self.command,
            self.path,
            {k.lower(): v for k, v in self.headers.items()},
            body,
            cert,
            self.client_address[1],
        )
        answer = owner.record(seen)
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)


class Recorder(LoopbackHttpServer):
    """Records every request; answers with ``responder`` (default 200, empty)."""

    handler_class = _Handler

    def __init__(self, tls: ssl.SSLContext | None = None, responder: Responder | None = None) -> None:
        super().__init__(tls=tls)
        self.responder: Responder = responder or (lambda seen: Answer())
        self.seen: list[Seen] = []
        self._lock = threading.Lock()

    def record(self, seen: Seen) -> Answer:
        with self._lock:
            self.seen.append(seen)
        return self.responder(seen)


@pytest.fixture(scope="module")
def ca() -> PrivateCA:
    return PrivateCA()


@pytest.fixture
def https(ca: PrivateCA) -> Iterator[Recorder]:
    with Recorder(tls=ca.server_context(client_certs=True)) as server:
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
    return replace(base, **changes)


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


def test_generic_over_https_with_the_secret_headers(https: Recorder, ca: PrivateCA) -> None:
    headers = {"Authorization": f"Bearer {HEADER_SECRET}", "X-Forwarded-Proto": "https"}
    run(deliver(target("generic", f"{https.url}/hook", ca, headers=headers), event()))
    (seen,) = https.seen
    assert (seen.method, seen.path) == ("POST", "/hook")
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["gotk-component"] == "kustomize-controller"
    assert seen.headers["authorization"] == f"Bearer {HEADER_SECRET}"
    assert seen.headers["x-forwarded-proto"] == "https"
    body = seen.json()
    assert body["involvedObject"]["kind"] == "Kustomization" and body["involvedObject"]["name"] == "webapp"
    assert body["metadata"] == {"revision": f"main@sha1:{SHA}", "summary": "eu-west"}
    assert body["reportingController"] == "kustomize-controller" and body["severity"] == "info"


def test_generic_hmac_signature_verifies(https: Recorder, ca: PrivateCA) -> None:
    run(deliver(target("generic-hmac", f"{https.url}/signed", ca, token=TOKEN), event()))
    (seen,) = https.seen
    algorithm, _, sent = seen.headers["x-signature"].partition("=")
    assert algorithm == "sha256"
    expected = hmac.new(TOKEN.encode(), seen.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(sent, expected)
    wrong = hmac.new(b"another-key", seen.body, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(sent, wrong)
    assert seen.json()["involvedObject"]["name"] == "webapp"


def test_slack_web_api(ca: PrivateCA) -> None:
    def slack(seen: Seen) -> Answer:
        ok = seen.json()["channel"] != "missing"
        return Answer(200, json.dumps({"ok": ok, "error": None if ok else "channel_not_found"}).encode())

    with Recorder(tls=ca.server_context(), responder=slack) as server:
        address = f"{server.url}/api/chat.postMessage"
        run(
            deliver(
                target("slack", address, ca, token=TOKEN, channel="general", username="flux"), event(severity="error")
            )
        )
        (seen,) = server.seen
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
        assert len(server.seen) == 2


def test_msteams_workflows_adaptive_card(https: Recorder, ca: PrivateCA) -> None:
    address = f"{https.url}/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=x"
    run(deliver(target("msteams", address, ca), event(severity="error", message="health check failed")))
    (seen,) = https.seen
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


def test_discord_slack_endpoint(https: Recorder, ca: PrivateCA) -> None:
    run(deliver(target("discord", f"{https.url}/api/webhooks/42/tok", ca, username="flux-bot"), event()))
    (seen,) = https.seen
    assert seen.path == "/api/webhooks/42/tok/slack"
    body = seen.json()
    assert body["username"] == "flux-bot"
    assert body["attachments"][0]["color"] == "good"
    assert {f["title"] for f in body["attachments"][0]["fields"]} == {"revision", "summary"}


def test_alertmanager_alerts_with_basic_auth(https: Recorder, ca: PrivateCA) -> None:
    t = target("alertmanager", f"{https.url}/api/v2/alerts", ca, username="am", password="pw-2b3c4d5e")
    run(deliver(t, event(severity="error", reason="HealthCheckFailed")))
    (seen,) = https.seen
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

    def github(seen: Seen) -> Answer:
        if seen.method == "GET":  # GitHub lists a ref's statuses newest first
            return Answer(200, json.dumps(posted[::-1]).encode(), {"Content-Type": "application/json"})
        posted.append(seen.json())
        return Answer(201, json.dumps(seen.json() | {"id": len(posted)}).encode())

    with Recorder(tls=ca.server_context(), responder=github) as server:
        t = target("github", f"{server.url}/my-org/my-repo.git", ca, token=TOKEN)
        run(deliver(t, event()))
        run(deliver(t, event()))  # the same status again: listed, not posted
        run(deliver(t, event(severity="error", reason="HealthCheckFailed")))
        methods = [(s.method, s.path) for s in server.seen]
        listing = ("GET", f"/api/v3/repos/my-org/my-repo/commits/{SHA}/statuses")
        create = ("POST", f"/api/v3/repos/my-org/my-repo/statuses/{SHA}")
        assert methods == [listing, create, listing, listing, create]
        assert server.seen[0].query == {"per_page": ["50"]}
        for seen in server.seen:
            assert seen.headers["authorization"] == f"Bearer {TOKEN}"
            assert seen.headers["accept"] == "application/vnd.github+json"
        first, second = (s.json() for s in server.seen if s.method == "POST")
        # docs.github.com: state is one of error, failure, pending, success; context and description strings
        assert first == {
            "state": "success",
            "description": "reconciliation succeeded",
            "context": "kustomization/webapp/0c9c2e41",
        }
        assert second["state"] == "failure" and second["description"] == "health check failed"
        assert second["context"] == first["context"]


def test_github_skips_without_a_revision_then_sends_with_one(ca: PrivateCA) -> None:
    with Recorder(tls=ca.server_context(), responder=lambda s: Answer(200, b"[]")) as server:
        t = target("github", f"{server.url}/org/repo", ca, token=TOKEN)
        run(deliver(t, event(metadata={})))
        run(deliver(t, event(reason="Progressing")))
        run(deliver(t, event()))
        assert [s.method for s in server.seen] == ["GET", "POST"]  # only the third was sent


def test_gitlab_commit_status(ca: PrivateCA) -> None:
    answers = {"GET": Answer(200, b"[]"), "POST": Answer(201, b"{}")}
    with Recorder(tls=ca.server_context(), responder=lambda s: answers[s.method]) as server:
        t = target("gitlab", f"{server.url}/group/sub/project.git", ca, token=TOKEN)
        run(deliver(t, event(severity="error")))
        get, post = server.seen
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


def test_untrusted_ca_fails_at_once_with_the_fix(https: Recorder) -> None:
    other = PrivateCA()
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        run(deliver(target("generic", f"{https.url}/hook", other, headers={"X-Key": HEADER_SECRET}), event()))
    text = str(caught.value)
    assert "certificate is not trusted" in text and "ca.crt" in text and "spec.certSecretRef" in text
    assert text.startswith("Provider apps/team (generic): POST to https://127.0.0.1:")
    assert "\n" not in text and HEADER_SECRET not in text
    assert time.monotonic() - started < 1.5  # a certificate problem is not retried
    assert https.seen == []
    with pytest.raises(DeliveryError, match="not trusted"):  # and the system roots do not know the test CA
        run(deliver(target("generic", f"{https.url}/hook", None), event()))


def test_mtls_client_certificate_presented(ca: PrivateCA) -> None:
    required = ca.server_context(client_certs=True)
    required.verify_mode = ssl.CERT_REQUIRED
    with Recorder(tls=required) as server:
        run(deliver(target("generic", f"{server.url}/m", ca, client_cert=True), event()))
        (seen,) = server.seen
        assert seen.client_cert == ca.name
        with pytest.raises(DeliveryError) as caught:  # without the pair the server ends the handshake
            run(deliver(target("generic", f"{server.url}/m", ca, timeout=3.0), event()))
        # TLS 1.3 refuses the missing certificate after the client's side of the handshake: the client
        # reads either the server's alert or just the closed connection, as Go's client would
        text = str(caught.value)
        assert ("TLS handshake failed" in text and "tls.crt/tls.key" in text) or "the connection failed" in text
        assert len(server.seen) == 1


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
    failures = iter([Answer(503, b"busy", {"Retry-After": "1"}), Answer(500, b"oops")])

    def flaky(seen: Seen) -> Answer:
        return next(failures, Answer(202))

    with Recorder(tls=ca.server_context(), responder=flaky) as server:
        started = time.monotonic()
        run(deliver(target("generic", f"{server.url}/h", ca), event()))
        elapsed = time.monotonic() - started
        assert len(server.seen) == 3  # 503 (Retry-After: 1), 500 (then 2 s backoff), 202
        assert 2.9 < elapsed < 6, elapsed
        assert len({s.peer_port for s in server.seen}) <= 2  # kept-alive connection reused after a 5xx
    with Recorder(tls=ca.server_context(), responder=lambda s: Answer(400, f"bad token {TOKEN}\n".encode())) as server:
        with pytest.raises(DeliveryError) as caught:
            run(deliver(target("generic-hmac", f"{server.url}/h", ca, token=TOKEN), event()))
        text = str(caught.value)
        assert "HTTP 400: bad token ***" in text and TOKEN not in text
        assert len(server.seen) == 1


def test_redirects_keep_credentials_on_their_origin(ca: PrivateCA) -> None:
    with Recorder(tls=ca.server_context()) as other:

        def redirect(seen: Seen) -> Answer:
            if seen.path == "/same":
                return Answer(307, headers={"Location": "/final"})
            if seen.path == "/away":
                return Answer(307, headers={"Location": f"{other.url}/elsewhere"})
            return Answer(200)

        with Recorder(tls=ca.server_context(), responder=redirect) as server:
            t = target("alertmanager", f"{server.url}/same", ca, token=TOKEN)
            run(deliver(t, event()))
            assert [s.path for s in server.seen] == ["/same", "/final"]
            assert server.seen[1].headers["authorization"] == f"Bearer {TOKEN}"
            assert server.seen[1].json() == server.seen[0].json()  # 307 keeps the method and body
            run(deliver(replace(t, address=f"{server.url}/away"), event()))
            (elsewhere,) = other.seen
            assert elsewhere.path == "/elsewhere" and elsewhere.method == "POST"
            assert "authorization" not in elsewhere.headers  # never to another host


def test_pooled_client_reuses_its_connection(https: Recorder, ca: PrivateCA) -> None:
    async def three() -> None:
        t = target("generic", f"{https.url}/p", ca)
        for _ in range(3):
            await deliver(t, event())

    run(three())
    assert len(https.seen) == 3
    assert len({s.peer_port for s in https.seen}) == 1  # one TLS connection for all three
