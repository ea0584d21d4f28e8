"""Load generators: wrk for peak throughput (closed loop), and a Python open-loop client at a fixed rate.

wrk is C and spends far less of its core than the server under test, so the server's core is the
bottleneck and the peak is the server's. Latency under ordinary load needs an open loop: requests
leave on schedule whether or not earlier ones came back, and latency is counted from when a request
was due, not from when it was sent, so a stalled server cannot hide its stall (coordinated
omission). wrk2 does that but is not packaged in Debian; at half of fluxwarden's peak a few hundred
requests a second are well within one Python core.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.stats import pct

ROTATE_SCRIPT = Path(__file__).with_name("rotate.lua")


@dataclass(frozen=True)
class LoadResult:
    """One load run against one server: throughput and latency percentiles, and failures."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    lag_p99_ms: float = 0.0  # open loop: how late the client itself got to a request (counted in latency)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def write_manifest(directory: Path, requests: Sequence[tuple[str, bytes]]) -> Path:
    """Bodies as files and the manifest ``rotate.lua`` reads (wrk's Lua gets no other input)."""
    lines = []
    for index, (path, body) in enumerate(requests):
        file = directory / f"body-{index:02d}.json"
        file.write_bytes(body)
        lines.append(f"{path}\t{file}\n")
    manifest = directory / "manifest.tsv"
    manifest.write_text("".join(lines))
    return manifest


def run_wrk(url: str, manifest: Path, *, seconds: float, connections: int, core: int) -> LoadResult:
    """Closed-loop keep-alive load from one wrk thread pinned to ``core``."""
    command = [
        "taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s",
        "-s", str(ROTATE_SCRIPT), url, "--", str(manifest),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    summary = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(summary[key] for key in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        p50_ms=summary["p50_us"] / 1e3,
        p99_ms=summary["p99_us"] / 1e3,
        max_ms=summary["max_us"] / 1e3,
        errors=errors,
    )


def http_request(path: str, body: bytes, port: int) -> bytes:
    """One POST of ``body`` as HTTP/1.1 bytes, ready to write on a keep-alive connection."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(frozen=True)
class Answer:
    """One response: its status, whether the server asked to close the connection, its body."""

    status: int
    close: bool
    body: bytes


async def exchange(connection: Connection, data: bytes) -> Answer:
    """Send one request and read its whole response (Content-Length framed, as uvicorn answers)."""
    reader, writer = connection
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    length, close = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    body = await reader.readexactly(length)
    return Answer(int(head.split(b" ", 2)[1]), close, body)


async def _exchange(connection: Connection, data: bytes) -> bool:
    """True when the response is a 200 AdmissionReview."""
    answer = await exchange(connection, data)
    return answer.status == 200 and b'"allowed"' in answer.body


async def _open_loop(
    port: int, context: ssl.SSLContext, requests: Sequence[tuple[str, bytes]], rate: float, seconds: float, pool: int
) -> LoadResult:
    async def connect() -> Connection:
        return await asyncio.open_connection("127.0.0.1", port, ssl=context)

    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(pool):
        idle.put_nowait(await connect())
    raw = [http_request(path, body, port) for path, body in requests]
    loop = asyncio.get_running_loop()
    latencies: list[float] = []  # of the requests answered 200 with an AdmissionReview
    lags: list[float] = []  # due → the client got to the request: its own share of the latency

    async def one(due: float, data: bytes) -> None:
        lags.append(loop.time() - due)
        connection = await idle.get()  # waiting for a free connection counts as latency
        try:
            ok = await _exchange(connection, data)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            connection[1].close()
            idle.put_nowait(await connect())
            return
        idle.put_nowait(connection)
        if ok:
            latencies.append(loop.time() - due)

    total = int(rate * seconds)
    start = loop.time() + 0.05
    in_flight: set[asyncio.Task[None]] = set()
    for index in range(total):
        due = start + index / rate
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)  # the event loop's timer has millisecond steps: the lag says how late
        task = asyncio.create_task(one(due, raw[index % len(raw)]))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait_for(asyncio.gather(*in_flight), timeout=30)
    elapsed = loop.time() - start
    while not idle.empty():
        idle.get_nowait()[1].close()
    latencies.sort()
    lags.sort()
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=pct(latencies, 50) * 1e3,
        p99_ms=pct(latencies, 99) * 1e3,
        max_ms=(latencies[-1] if latencies else 0.0) * 1e3,
        errors=total - len(latencies),
        lag_p99_ms=pct(lags, 99) * 1e3,
    )


def run_open_loop(
    port: int, ca_file: Path, requests: Sequence[tuple[str, bytes]], *, rate: float, seconds: float, pool: int = 32
) -> LoadResult:
    """Fixed-rate keep-alive HTTPS load from this process (pin it to the load core first)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    return asyncio.run(_open_loop(port, context, requests, rate, seconds, pool))
