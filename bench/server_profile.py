"""Where fluxwarden's server spends its time: cProfile under the benchmark's load, and stage costs without it.

Two views, because each alone misleads. The cProfile run (:mod:`bench.profiled_serve`, profiling
only while wrk runs) sees the whole server, uvicorn and TLS included, but inflates Python code
against C code. The stage timings call fluxwarden's own steps in this process on the same payloads
without a profiler, so their microseconds are real, and compare them with what the bare endpoint does.
"""

from __future__ import annotations

import contextlib
import json
import os
import pstats
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse

from bench import servers
from bench.load import run_wrk
from fluxwarden import logs
from fluxwarden.certs.files import ServingFiles
from fluxwarden.tenancy import Settings
from fluxwarden.webhook.app import _log_decision
from fluxwarden.webhook.metrics import WebhookMetrics
from fluxwarden.webhook.review import Decision, parse_review
from fluxwarden.webhook.review import decide as decide_review

# (label, the end of the file's path, the function's name): what the cumulative table follows.
FOLLOWED = (
    ("app.admission (whole route, coroutine)", "fluxwarden/webhook/app.py", "admission"),
    ("app.read_body (coroutine)", "fluxwarden/webhook/app.py", "read_body"),
    ("review.parse_review", "fluxwarden/webhook/review.py", "parse_review"),
    ("  json.loads", "json/__init__.py", "loads"),
    ("review.decide", "fluxwarden/webhook/review.py", "decide"),
    ("  tenancy.mutate", "fluxwarden/tenancy/mutation.py", "mutate"),
    ("  tenancy.evaluate", "fluxwarden/tenancy/rules.py", "evaluate"),
    ("Decision.to_review", "fluxwarden/webhook/review.py", "to_review"),
    ("JSONResponse.render (json.dumps)", "starlette/responses.py", "render"),
    ("app._log_decision", "fluxwarden/webhook/app.py", "_log_decision"),
    ("  logs.JsonFormatter.format", "fluxwarden/logs.py", "format"),
    ("  StreamHandler.flush/write", "logging/__init__.py", "flush"),
    ("WebhookMetrics.observe", "fluxwarden/webhook/metrics.py", "observe"),
)

Key = tuple[str, int, str]
CALLERS = "charged to its callers"  # a builtin such as dict.get or id(): its time is its caller's work
# Generic helpers whose time is likewise their callers' work: isinstance against an ABC (jsonpatch),
# difflib (jsonpatch's list diff), os.path (logging's LogRecord), typing, weak sets, threading.
HELPERS = ("<frozen abc>", "<frozen _collections_abc>", "<frozen posixpath>", "/difflib.py", "/typing.py",
           "/_weakrefset.py", "/threading.py", "/functools.py", "/enum.py")  # fmt: skip
MAX_HOPS = 8  # how far up a helper's time is charged, through helpers calling helpers


def _area(file: str, function: str) -> str:
    """Group a function by the code it belongs to, for the self-time table."""
    if "/fluxwarden/" in file:
        return "fluxwarden." + file.rsplit("/fluxwarden/", 1)[1].removesuffix(".py").replace("/", ".")
    for needle, area in (
        ("/jsonpatch.py", "jsonpatch"),
        ("/jsonpointer.py", "jsonpatch"),
        ("/copy.py", "copy.deepcopy"),
        ("/json/", "json (stdlib)"),
        ("/logging/", "logging"),
        ("prometheus_client", "prometheus_client"),
        ("/h11/", "h11 (HTTP parsing)"),
        ("/uvicorn/", "uvicorn"),
        ("/starlette/", "starlette"),
        ("/asyncio/sslproto.py", "TLS (asyncio sslproto + _ssl)"),
        ("/asyncio/", "asyncio"),
    ):
        if needle in file:
            return area
    if file == "~":
        if "_ssl." in function:
            return "TLS (asyncio sslproto + _ssl)"
        if "poll' of 'select.epoll" in function:
            return "idle (epoll)"
        if "socket" in function:
            return "socket syscalls"
        return CALLERS
    if any(helper in file for helper in HELPERS):
        return CALLERS
    return "other Python"


def _stats(path: Path) -> dict[Key, tuple[int, int, float, float, Any]]:
    stats: dict[Key, tuple[int, int, float, float, Any]] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    return stats


def print_profile(path: Path) -> None:
    """Self time by area, then the cumulative time of fluxwarden's steps, per review."""
    stats = _stats(path)
    reviews = sum(nc for (file, _, fn), (_, nc, *_) in stats.items() if fn == "parse_review" and "webhook" in file)
    areas: dict[str, float] = defaultdict(float)

    def charge(key: Key, seconds: float, hops: int) -> None:
        """Add ``seconds`` spent in ``key`` to its area, or share them among its callers."""
        area = _area(key[0], key[2])
        callers = stats[key][4] if key in stats else {}
        if area != CALLERS:
            areas[area] += seconds
        elif hops >= MAX_HOPS or not callers:
            areas["other builtins and helpers"] += seconds
        else:
            through = {caller: (v[2] if hops == 0 else v[3]) for caller, v in callers.items()}
            total = sum(through.values()) or 1.0
            for caller, part in through.items():
                charge(caller, seconds * part / total, hops + 1)

    for key, (_, _, self_time, _, _) in stats.items():
        charge(key, self_time, 0)
    idle = areas.pop("idle (epoll)", 0.0)
    busy = sum(areas.values())
    print(f"\ncProfile of fluxwarden under wrk: {reviews} reviews, {busy:.2f} s busy, {idle:.2f} s idle in epoll")
    print("(cProfile slows Python code more than C code: read the shares, not the absolute µs)")
    print(f"{'self time by area (helpers: their callers)':<41} {'µs/review':>10} {'share':>7}")
    for area, seconds in sorted(areas.items(), key=lambda item: -item[1]):
        if seconds / busy >= 0.005:
            print(f"  {area:<39} {seconds / reviews * 1e6:>10.1f} {seconds / busy:>7.1%}")
    steps_title = "cumulative time of fluxwarden's steps"
    print(f"{steps_title:<41} {'µs/review':>10} {'share':>7} {'calls':>8}")
    for label, file_end, function in FOLLOWED:
        hits = [v for (file, _, fn), v in stats.items() if fn == function and file.endswith(file_end)]
        calls, cumulative = sum(v[1] for v in hits), sum(v[3] for v in hits)
        print(f"  {label:<39} {cumulative / reviews * 1e6:>10.1f} {cumulative / busy:>7.1%} {calls:>8}")


def _response(decision: Decision) -> JSONResponse:
    return JSONResponse(decision.to_review())


def _cost(step: Callable[[], object], repeat: int) -> float:
    """Seconds for one call, the best of three batches (the least disturbed by other work)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeat):
            step()
        best = min(best, (time.perf_counter() - started) / repeat)
    return best


def print_stages(requests: Sequence[tuple[str, bytes]], repeat: int = 50) -> None:
    """Each step of fluxwarden's route, timed alone on the benchmark's requests, in µs per review."""
    settings, meter = Settings(), WebhookMetrics()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        logs.configure("info")  # the server's JSON log handler, writing to /dev/null here
        totals: dict[str, float] = defaultdict(float)
        heaviest: list[tuple[float, str]] = []
        for path, body in requests:
            route, mutating = path.strip("/"), path == "/mutate"
            review = parse_review(body)
            decision = decide_review(review, settings, mutating=mutating)
            steps: dict[str, Callable[[], object]] = {
                "json.loads (the bare endpoint does this too)": partial(json.loads, body),
                "parse_review (json.loads + checks)": partial(parse_review, body),
                "decide": partial(decide_review, review, settings, mutating=mutating),
                "response: to_review + JSONResponse": partial(_response, decision),
                "bare response: JSONResponse": partial(JSONResponse, {"response": {"uid": review.uid}}),
                "_log_decision (JSON log line)": partial(_log_decision, route, review, decision, 0.001),
                "metrics.observe": partial(meter.observe, route, review.kind, review.operation, "true", 0.001),
            }
            for name, step in steps.items():
                seconds = _cost(step, repeat)
                totals[name] += seconds
                if name == "decide":
                    heaviest.append((seconds, f"{path} {review.kind} {len(body):,} B"))
    print(f"\nfluxwarden's steps timed alone, no profiler ({repeat}× each request, mean over the mix)")
    for name, seconds in totals.items():
        print(f"  {name:<46} {seconds / len(requests) * 1e6:>8.1f} µs/review")
    print("  dearest decide calls: " + "; ".join(f"{label} {s * 1e6:.0f} µs" for s, label in sorted(heaviest)[-3:]))


def profile(
    certs: ServingFiles,
    manifest: Path,
    requests: Sequence[tuple[str, bytes]],
    work: Path,
    *,
    seconds: float,
    connections: int,
    server_core: int,
    load_core: int,
) -> None:
    """Profile a fresh fluxwarden server for one wrk round, then time its steps alone."""
    out = work / "fluxwarden.prof"
    server = servers.fluxwarden(certs, work / "fluxwarden-profiled.log", profile_to=out)
    try:
        server.start(server_core)
        run_wrk(server.url, manifest, seconds=1, connections=connections, core=load_core)  # warm-up
        server.send_signal(signal.SIGUSR1)
        result = run_wrk(server.url, manifest, seconds=seconds, connections=connections, core=load_core)
        server.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 10
        while not out.exists() and time.monotonic() < deadline:  # profiled_serve renames it into place
            time.sleep(0.05)
    finally:
        server.stop()
    print(f"\nprofiled fluxwarden: {result.rate:.0f} reviews/s under cProfile")
    print_profile(out)
    print_stages(requests)
