"""The webhook under change: certificate rotation and SIGTERM while requests are in flight."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import httpx
from cryptography import x509

from tests.support.reviews import admission_review, legacy_helmrelease
from tests.support.webhook import WebhookProcess

BODY = json.dumps(admission_review(legacy_helmrelease())).encode()


def served_serial(server: WebhookProcess) -> int:
    """The serial number of the certificate a new connection is shown."""
    with (
        socket.create_connection(("127.0.0.1", server.port)) as raw,
        server.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_rotated_certificate_is_served_without_restart_or_failed_request(webhook: WebhookProcess) -> None:
    before = served_serial(webhook)
    outcomes: list[str] = []
    stop = threading.Event()

    def load(new_connection_each_time: bool) -> None:
        client = webhook.client()
        try:
            while not stop.is_set():
                if new_connection_each_time:
                    client.close()
                    client = webhook.client()
                try:
                    answer = client.post("/validate", content=BODY)
                    ok = answer.status_code == 200 and answer.json()["response"]["allowed"] is False
                    outcomes.append("ok" if ok else f"bad answer {answer.status_code}")
                except httpx.HTTPError as exc:
                    outcomes.append(f"error {exc!r}")
        finally:
            client.close()

    threads = [threading.Thread(target=load, args=(fresh,)) for fresh in (True, False)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    subprocess.run(
        [sys.executable, "-m", "fluxwarden.cli.main", "certs", "generate", "--out", str(webhook.cert_dir)],
        check=True,
        capture_output=True,
    )
    deadline = time.monotonic() + 10
    while served_serial(webhook) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    after = served_serial(webhook)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert after != before, "the rotated certificate was not picked up"
    assert len(outcomes) > 20
    assert [o for o in outcomes if o != "ok"] == []
    assert '"certificate reloaded"' in webhook.log_file.read_text()


def _open_request(server: WebhookProcess, sent: bytes) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.port))
    tls = server.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")
    tls.sendall(
        b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
        + sent
    )
    return tls


def _read_response(tls: ssl.SSLSocket) -> bytes:
    tls.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _content_length(data):
        chunk = tls.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _content_length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def test_sigterm_finishes_in_flight_requests_and_closes_keep_alive(
    start_webhook: Callable[..., WebhookProcess],
) -> None:
    server = start_webhook("--request-timeout", "10")
    idle = _open_request(server, BODY)
    assert _read_response(idle).startswith(b"HTTP/1.1 200")  # the connection stays open (keep-alive)
    in_flight = [_open_request(server, BODY[:100]) for _ in range(5)]
    time.sleep(0.3)  # the server has read the headers: these requests are in progress

    server.terminate()
    time.sleep(0.5)
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        refused = False
    except OSError:
        refused = True

    answers = []
    for tls in in_flight:
        tls.sendall(BODY[100:])
        answers.append(_read_response(tls))
    answered = time.monotonic()  # the in-flight clients stay connected and never send close_notify
    idle.settimeout(10)
    idle_after_shutdown = idle.recv(1)
    assert server.process is not None
    code = server.process.wait(timeout=30)
    stopped_after = time.monotonic() - answered
    for tls in (*in_flight, idle):
        tls.close()

    assert refused, "a stopping server must not accept new connections"
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["response"]["allowed"] is False
    assert idle_after_shutdown == b"", "idle keep-alive connections are closed on shutdown"
    assert stopped_after < 2, f"exited {stopped_after:.1f}s after the last in-flight answer"
    assert code == 0
    assert '"stopped"' in server.log_file.read_text()


def test_sigterm_with_an_idle_keep_alive_connection_stops_at_once(
    start_webhook: Callable[..., WebhookProcess],
) -> None:
    """The API server always keeps a connection open; it must not hold the shutdown (it held it 20 s)."""
    server = start_webhook()
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=10)
    connection.request("POST", "/validate", body=BODY, headers={"Content-Type": "application/json"})
    answer = connection.getresponse()
    assert answer.status == 200 and answer.getheader("connection") != "close"
    answer.read()
    assert connection.sock is not None  # idle and open, as the API server leaves it
    assert server.process is not None

    started = time.monotonic()
    server.terminate()
    code = server.process.wait(timeout=30)
    seconds = time.monotonic() - started
    connection.close()
    assert code == 0
    assert seconds < 2, f"SIGTERM took {seconds:.1f}s with one idle keep-alive connection"
    assert "timeout graceful shutdown exceeded" not in server.log_file.read_text()
