"""The recording endpoint the notification tests rely on: what it records and how it answers."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.recorder import Recorder, Reply
from tests.support.tls import PrivateCA


@pytest.fixture(scope="module")
def ca() -> PrivateCA:
    return PrivateCA()


def client_context(ca: PrivateCA, tmp_path: Path, *, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca.ca_pem.decode())
    if with_cert:
        cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
        cert.write_bytes(ca.client.cert_pem)
        key.write_bytes(ca.client.key_pem)
        context.load_cert_chain(cert, key)
    return context


def test_a_request_is_recorded_whole(tmp_path: Path) -> None:
    with Recorder() as recorder, httpx.Client() as client:
        before = time.time()
        answer = client.post(recorder.url + "/hook/a?x=1&y=", json={"k": "v"}, headers={"X-Test": "yes"})
        (got,) = recorder.wait_for(1)
    assert answer.status_code == 200
    assert (got.method, got.path, got.target) == ("POST", "/hook/a", "/hook/a?x=1&y=")
    assert got.query == {"x": ["1"], "y": [""]}
    assert got.header("X-TEST") == "yes" and got.headers["content-type"] == "application/json"
    assert got.json() == {"k": "v"} and got.body == b'{"k":"v"}'
    assert got.client_cert is None and got.client_subject == ()
    assert before <= got.received_at <= time.time()
    assert got.status == 200


def test_https_records_the_client_certificate_subject(ca: PrivateCA, tmp_path: Path) -> None:
    with Recorder(tls=ca, client_certs=True) as recorder:
        assert recorder.url.startswith("https://127.0.0.1:")
        with httpx.Client(verify=client_context(ca, tmp_path, with_cert=True)) as client:
            client.post(recorder.url + "/", content=b"with")
        with httpx.Client(verify=client_context(ca, tmp_path, with_cert=False)) as client:
            client.post(recorder.url + "/", content=b"without")
        with_cert, without = recorder.wait_for(2)
    assert with_cert.client_cert == ca.name and ("commonName", ca.name) in with_cert.client_subject
    assert without.client_cert is None


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_later_are_served(ca: PrivateCA, version: ssl.TLSVersion) -> None:
    context = ssl.create_default_context(cadata=ca.ca_pem.decode())
    context.minimum_version = context.maximum_version = version
    with Recorder(tls=ca) as recorder, httpx.Client(verify=context) as client:
        assert recorder.tls_context is not None
        assert recorder.tls_context.minimum_version == ssl.TLSVersion.TLSv1_2, "nothing older is offered"
        assert client.get(recorder.url).status_code == 200
        assert recorder.count == 1


def test_scripted_failures_then_the_default(tmp_path: Path) -> None:
    with Recorder(status=204) as recorder, httpx.Client() as client:
        recorder.fail(2, 503)
        recorder.script(Reply(201, b"made", {"X-Made": "1"}))
        answers = [client.post(recorder.url, content=b"x") for _ in range(4)]
        assert [a.status_code for a in answers] == [503, 503, 201, 204]
        assert answers[2].text == "made" and answers[2].headers["x-made"] == "1"
        assert [r.status for r in recorder.received] == [503, 503, 201, 204]


def test_a_responder_answers_by_request() -> None:
    def github(request: object) -> Reply | None:
        return (
            Reply(200, b"[]", {"Content-Type": "application/json"}) if getattr(request, "method", "") == "GET" else None
        )

    with Recorder(responder=github) as recorder, httpx.Client() as client:
        assert client.get(recorder.url + "/repos/o/r/commits/sha/statuses").json() == []
        assert client.post(recorder.url, content=b"x").status_code == 200


def test_chunked_bodies_are_read_whole() -> None:
    def parts() -> Iterator[bytes]:
        yield b"ab"
        yield b"cd"

    with Recorder() as recorder, httpx.Client() as client:
        client.post(recorder.url, content=parts())
        (got,) = recorder.wait_for(1)
    assert got.body == b"abcd" and got.header("transfer-encoding") == "chunked"


def test_held_answers_are_recorded_first_and_released_on_stop() -> None:
    recorder = Recorder().start()
    recorder.hold()
    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(httpx.post(recorder.url, content=b"x").status_code))
    thread.start()
    recorder.wait_for(1)
    assert results == [], "recorded, not answered"
    started = time.monotonic()
    recorder.stop()
    thread.join(10)
    assert results == [200] and time.monotonic() - started < 5


def test_wait_for_fails_naming_what_arrived() -> None:
    with Recorder() as recorder:
        httpx.post(recorder.url + "/only", content=b"x")
        with pytest.raises(AssertionError, match=r"1 of 2 expected requests.*POST /only -> 200"):
            recorder.wait_for(2, timeout=0.3)


def test_stop_does_not_wait_for_idle_keep_alive_connections() -> None:
    recorder = Recorder().start()
    client = httpx.Client()
    client.post(recorder.url, content=b"x")  # the pooled connection stays open
    started = time.monotonic()
    recorder.stop()
    assert time.monotonic() - started < 5
    client.close()
