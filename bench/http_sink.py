"""A loopback HTTP/1.1 sink for the notification benchmark: counts every POST by path, as cheaply as asyncio allows.

``python -m bench.http_sink PORT`` (a process of its own, so its CPU is apart from the server's and the load
generator's). A POST to any path is answered ``200`` with no body, and recorded: its path, its arrival
time (``time.monotonic()``: CLOCK_MONOTONIC, the same clock in every process of the machine) and the
number after ``bench-id=`` in its body, so a delivery sent twice shows. ``GET /stats`` answers the counts
as JSON (``?times`` adds every arrival time), ``GET /reset`` clears them. The benchmark also uses it as the
trivial server that measures the load generator's own ceiling.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field

MARKER = b"bench-id="
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@dataclass
class Record:
    count: dict[str, int] = field(default_factory=dict)
    ids: dict[str, set[int]] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)

    def add(self, path: str, body: bytes) -> None:
        self.times.append(time.monotonic())
        self.count[path] = self.count.get(path, 0) + 1
        at = body.find(MARKER)
        if at >= 0:
            end = start = at + len(MARKER)
            while end < len(body) and 48 <= body[end] <= 57:
                end += 1
            self.ids.setdefault(path, set()).add(int(body[start:end] or b"-1"))

    def clear(self) -> None:
        self.count.clear()
        self.ids.clear()
        self.times.clear()

    def stats(self, with_times: bool) -> bytes:
        paths = {p: {"count": n, "unique": len(self.ids.get(p, ()))} for p, n in sorted(self.count.items())}
        out: dict[str, object] = {
            "count": len(self.times),
            "first": self.times[0] if self.times else None,
            "last": self.times[-1] if self.times else None,
            "paths": paths,
        }
        if with_times:
            out["times"] = self.times
        return json.dumps(out).encode()


class _Connection(asyncio.Protocol):
    def __init__(self, record: Record) -> None:
        self.record = record
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end])
            length = _content_length(head)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self._answer(head, body)

    def _answer(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        method, _, rest = head.partition(b" ")
        target = rest.partition(b" ")[0].decode("latin-1")
        if method == b"POST":
            self.record.add(target.partition("?")[0], body)
            self.transport.write(_OK)
            return
        if target.startswith("/reset"):
            self.record.clear()
            payload = b"{}"
        else:
            payload = self.record.stats("times" in target)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)
        self.transport.write(head + payload)


def _content_length(head: bytes) -> int:
    at = head.lower().find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    return int(head[at + 17 :].split(b"\r\n", 1)[0])


async def serve(port: int) -> None:
    record = Record()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(record), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    asyncio.run(serve(int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
