"""A load generator cheap enough to offer thousands of HTTP/1.1 POSTs a second from one Python core.

asyncio Protocols over a few keep-alive connections, one request in flight on each, the requests'
bytes made before the clock starts: no HTTP client library, no stream objects in the loop. Each
connection sends its own list in order, so everything about one involved object stays in order when
the caller gives that object's events to one connection (the on-change mode depends on the order).

Closed loop (``rate`` None): each connection sends its next request when the last is answered; the
latency is from sending to the answer. Open loop: connection ``c`` of ``C`` sends its ``k``-th request
at ``start + (k * C + c) / rate``, whether or not the server kept up, and the latency counts from that
due time (no coordinated omission); ``lag`` is how late the client itself got to each request.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SLOW = 0.010  # seconds: answers slower than this are kept with their time, to show when the tail happened


@dataclass(frozen=True)
class Sent:
    """One request as it goes on the wire, and what the caller wants to know of it if accepted."""

    data: bytes
    tag: Any = None


def post(path: str, body: bytes, port: int) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (path.encode(), port, len(body), body)
    )


@dataclass
class Outcome:
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    latencies: dict[int, list[float]] = field(default_factory=dict)  # status -> seconds
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)  # non-2xx: status + body start
    accepted: list[list[Any]] = field(default_factory=list)  # per connection, in order: tags of the 2xx answers
    lag: list[float] = field(default_factory=list)  # open loop: how late the timer woke for a due request
    slow: list[tuple[float, float]] = field(default_factory=list)  # (due after the start, latency) over SLOW
    started: float = 0.0
    ended: float = 0.0  # the last answer
    errors: int = 0  # connections lost

    @property
    def seconds(self) -> float:
        return max(self.ended - self.started, 1e-9)

    def rate(self, status: int) -> float:
        return self.statuses[status] / self.seconds


class _Client(asyncio.Protocol):
    """One keep-alive connection; ``exchange`` sends one request and returns (status, body)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        length = int(head[at + 17 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def exchange(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


async def _drive(port: int, streams: Sequence[Sequence[Sent]], rate: float | None, seconds: float) -> Outcome:
    loop = asyncio.get_running_loop()
    clients = []
    for _ in streams:
        _, client = await loop.create_connection(_Client, "127.0.0.1", port)
        clients.append(client)
    out = Outcome(accepted=[[] for _ in streams])
    width = len(streams)
    out.started = start = loop.time() + 0.05
    stop_at = start + seconds

    async def connection(index: int) -> None:
        client, accepted = clients[index], out.accepted[index]
        for k, sent in enumerate(streams[index]):
            now = loop.time()
            if rate is None:
                due = now
            else:
                due = start + (k * width + index) / rate
                if due > now:  # late only by the client's own timer; a busy connection is the server's delay
                    await asyncio.sleep(due - now)
                    now = loop.time()
                    out.lag.append(now - due)
            if now >= stop_at:
                return
            try:
                status, body = await client.exchange(sent.data)
            except ConnectionError:
                out.errors += 1
                return
            done = loop.time()
            out.ended = max(out.ended, done)
            out.statuses[status] += 1
            out.latencies.setdefault(status, []).append(done - due)
            if done - due > SLOW:
                out.slow.append((due - start, done - due))
            if 200 <= status < 300:
                accepted.append(sent.tag)
            else:
                out.reasons[f"{status} {body[:48].decode(errors='replace').strip()}"] += 1

    if rate is None:
        await asyncio.sleep(max(0.0, start - loop.time()))
    await asyncio.gather(*(connection(i) for i in range(width)))
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    return out


def drive(port: int, streams: Sequence[Sequence[Sent]], *, rate: float | None = None, seconds: float = 60.0) -> Outcome:
    """Send each stream on a keep-alive connection of its own to ``127.0.0.1:port`` (closed loop, or open at
    ``rate`` requests/s over all connections) until every stream is sent or ``seconds`` have passed."""
    return asyncio.run(_drive(port, streams, rate, seconds))
