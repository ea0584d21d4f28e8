"""The event server bounds what one client can hold: a body that stalls is answered 408 after the read
timeout and its connection closed, and other clients are served meanwhile."""

from __future__ import annotations

import concurrent.futures
import socket
import time
import urllib.parse
from collections.abc import Callable

from fluxwarden.controllers.app import Reconcilers
from tests.support.notification import event_url, flux_event, post, start_notification

READ_TIMEOUT = 1.5


def stalled_request(url: str) -> tuple[bytes, float]:
    """Declare a 1000-byte body, send 10 bytes, stall; what the server answers, and when."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as sock:
        head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        sock.sendall(head.encode() + b'{"involved')
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer, time.monotonic() - started


def test_a_stalled_body_is_answered_408_while_others_are_served(
    start_reconcilers: Callable[..., Reconcilers], namespace: str
) -> None:
    url = event_url(start_notification(start_reconcilers, read_timeout=READ_TIMEOUT))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        stalled = [pool.submit(stalled_request, url) for _ in range(3)]
        time.sleep(0.3)
        assert post(url, flux_event(namespace, message="served meanwhile")).status_code == 202
        assert not any(f.done() for f in stalled), "the stalled ones are still being read"
        for future in stalled:
            answer, took = future.result()
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert READ_TIMEOUT <= took < READ_TIMEOUT + 5
