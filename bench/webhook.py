"""Benchmark fluxwarden's webhook against its physical limit, side by side in one run.

``python -m bench.webhook`` starts ``fluxwarden serve`` (metrics port on) and the bare endpoint of
:mod:`bench.bare_endpoint` with the same uvicorn settings and certificate, each pinned to the server
core, and drives them in turn (A, B, A, B: never both at once) from the load core with the same mix
of Flux AdmissionReviews (:mod:`bench.payloads`). It prints reviews/s and p50/p99 at peak (wrk),
fluxwarden's throughput as a fraction of the bare endpoint's, and p99 at half of fluxwarden's peak
(an open-loop client at a fixed rate). When fluxwarden misses a target it profiles the server under
the same load and prints where the time goes (:mod:`bench.server_profile`). Bounded: about 1.5
minutes with the defaults, every process stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench import payloads, server_profile, servers
from bench.load import LoadResult, run_open_loop, run_wrk, write_manifest
from bench.servers import ServerProcess
from bench.stats import median
from fluxwarden.certs.files import ensure_serving_pair

TARGET_RATIO = 0.7  # of the bare endpoint's throughput
TARGET_P99_MS = 10.0  # at half of fluxwarden's peak


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="peak rounds per server (default 5)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one round (default 5)")
    parser.add_argument("--connections", type=int, default=16, help="wrk keep-alive connections (default 16)")
    parser.add_argument("--latency-rounds", type=int, default=3, help="half-peak rounds per server (default 3)")
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="profile fluxwarden under load: when it misses a target (auto), always or never",
    )
    parser.add_argument("--server-core", type=int, default=0, help="the core both servers run on (default 0)")
    parser.add_argument("--load-core", type=int, default=1, help="the core wrk and this process run on (default 1)")
    return parser.parse_args(argv)


def check_answers(server: ServerProcess, reviews: Sequence[payloads.Review]) -> None:
    """Every request is answered 200 with the expected verdict, so the load measures real work."""
    for review in reviews:
        for route in payloads.ROUTES:
            status, body = server.request("POST", route, review.body)
            allowed = json.loads(body)["response"]["allowed"] if status == 200 else None
            expected = not (review.denied and route == "/validate" and server.name == "fluxwarden")
            if allowed is not expected:
                raise RuntimeError(f"{server.name} {route} {review.label}: HTTP {status}, allowed={allowed}")


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy since boot (``/proc/stat``), whoever spent it."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / servers.CLOCK_TICKS


def load_cpu_seconds() -> float:
    """CPU of the load generators: this process (the open-loop client) and its finished children (wrk)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass(frozen=True)
class Round:
    """One load run against one server, with who used the CPU meanwhile.

    ``server_cpu`` near 100% of a core says the server was the bottleneck; ``others_cpu`` is what
    neither the server nor the load generator used (other people's work on a shared machine, and
    loopback networking in softirq), which is what makes rounds disagree.
    """

    server: str
    result: LoadResult
    server_cpu: float
    others_cpu: float
    wall_seconds: float

    @property
    def cpu_us_per_review(self) -> float:
        """Server CPU per review: unlike reviews/s, barely moved by other work on the machine."""
        return self.server_cpu * self.wall_seconds / self.result.requests * 1e6 if self.result.requests else 0.0


def measure(server: ServerProcess, run: Callable[[], LoadResult]) -> Round:
    before = server.cpu_seconds(), load_cpu_seconds(), machine_busy_seconds(), time.monotonic()
    result = run()
    after = server.cpu_seconds(), load_cpu_seconds(), machine_busy_seconds(), time.monotonic()
    if result.errors:
        raise RuntimeError(f"{server.name}: {result.errors} failed requests; see {server.log_file}")
    server_cpu, load_cpu, busy, wall = (b - a for a, b in zip(before, after, strict=True))
    others = max(0.0, busy - server_cpu - load_cpu)  # jiffy sampling can make it a hair below zero
    return Round(server.name, result, server_cpu / wall, others / wall, wall)


HEADER = (
    f"{'round':<6} {'server':<11} {'reviews/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
    f"{'CPU µs/review':>14} {'server CPU':>11} {'others CPU':>11}"
)


def print_round(label: object, run: Round) -> None:
    r = run.result
    print(
        f"{label!s:<6} {run.server:<11} {r.rate:>10.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.max_ms:>8.2f} "
        f"{run.cpu_us_per_review:>14.0f} {run.server_cpu:>11.0%} {run.others_cpu:>11.0%}"
    )


def print_medians(rounds: Sequence[Round]) -> None:
    r = [run.result for run in rounds]
    print(
        f"{'median':<6} {rounds[0].server:<11} {median([x.rate for x in r]):>10.0f} "
        f"{median([x.p50_ms for x in r]):>8.2f} {median([x.p99_ms for x in r]):>8.2f} "
        f"{median([x.max_ms for x in r]):>8.2f} {median([x.cpu_us_per_review for x in rounds]):>14.0f} "
        f"{median([x.server_cpu for x in rounds]):>11.0%} {median([x.others_cpu for x in rounds]):>11.0%}"
    )


def alternate(
    order: Sequence[ServerProcess], rounds: int, run: Callable[[ServerProcess], LoadResult]
) -> dict[str, list[Round]]:
    """A, B, A, B…: the servers never load the machine at the same time, and drift hits both alike."""
    print(HEADER)
    results: dict[str, list[Round]] = {s.name: [] for s in order}
    for number in range(1, rounds + 1):
        for server in order:
            measured = measure(server, partial(run, server))
            results[server.name].append(measured)
            print_round(number, measured)
    for server in order:
        print_medians(results[server.name])
    return results


def print_payloads(reviews: Sequence[payloads.Review]) -> None:
    sizes = [len(r.body) for r in reviews]
    print(
        f"payloads: {len(reviews)} AdmissionReviews, each to {' and '.join(payloads.ROUTES)}, "
        f"{min(sizes):,}–{max(sizes):,} bytes (mean {sum(sizes) // len(sizes):,})"
    )
    for review in reviews:
        print(f"  {len(review.body):>6,} B  {review.label}{'  (denied)' if review.denied else ''}")


def peak(order: Sequence[ServerProcess], manifest: Path, args: argparse.Namespace) -> dict[str, list[Round]]:
    """Closed-loop peak rounds, after an unmeasured warm-up of each server."""
    print(
        f"\npeak: wrk, 1 thread, {args.connections} keep-alive connections, {args.rounds} rounds × "
        f"{args.seconds:g} s per server, alternating"
    )

    def run(server: ServerProcess, seconds: float = args.seconds) -> LoadResult:
        return run_wrk(server.url, manifest, seconds=seconds, connections=args.connections, core=args.load_core)

    for server in order:
        run(server, seconds=2)
    return alternate(order, args.rounds, run)


def half_peak(
    order: Sequence[ServerProcess], requests: Sequence[tuple[str, bytes]], rate: float, args: argparse.Namespace
) -> dict[str, list[Round]]:
    """Open-loop rounds at ``rate``: p99 under a load fluxwarden carries with room to spare."""
    print(
        f"\nhalf of fluxwarden's peak: {rate:.0f} reviews/s, open loop (latency counted from when each request "
        f"was due), {args.latency_rounds} rounds × {args.seconds:g} s per server, alternating"
    )

    def run(server: ServerProcess) -> LoadResult:
        return run_open_loop(server.port, server.certs.ca_cert, requests, rate=rate, seconds=args.seconds)

    return alternate(order, args.latency_rounds, run)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def summarize(peaks: dict[str, list[Round]], latencies: dict[str, list[Round]], rate: float) -> bool:
    """Print the ratios against the targets; True when fluxwarden misses one."""
    fluxwarden, bare = peaks["fluxwarden"], peaks["bare"]
    ratio = rate / median([r.result.rate for r in bare])
    rounds = " ".join(f"{f.result.rate / b.result.rate:.2f}" for f, b in zip(fluxwarden, bare, strict=True))
    cost = median([r.cpu_us_per_review for r in fluxwarden]), median([r.cpu_us_per_review for r in bare])
    p99 = median([r.result.p99_ms for r in latencies["fluxwarden"]])
    bare_p99 = median([r.result.p99_ms for r in latencies["bare"]])
    lag = median([r.result.lag_p99_ms for rounds in latencies.values() for r in rounds])
    print(
        f"\nfluxwarden / bare throughput: {ratio:.2f} (per round: {rounds}); "
        f"target ≥ {TARGET_RATIO}: {verdict(ratio >= TARGET_RATIO)}"
    )
    print(
        f"server CPU per review: fluxwarden {cost[0]:.0f} µs, bare {cost[1]:.0f} µs "
        f"(bare / fluxwarden = {cost[1] / cost[0]:.2f}, the throughput ratio when each has its core to itself)"
    )
    print(
        f"fluxwarden p99 at half its peak ({rate / 2:.0f} reviews/s): {p99:.2f} ms (bare at the same rate: "
        f"{bare_p99:.2f} ms; the client's own lag, included, p99 {lag:.2f} ms); "
        f"target < {TARGET_P99_MS:g} ms: {verdict(p99 < TARGET_P99_MS)}"
    )
    return ratio < TARGET_RATIO or p99 >= TARGET_P99_MS


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench.webhook needs wrk: apt-get install -y wrk", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {args.load_core})  # this process is the open-loop client
    reviews = payloads.reviews()
    requests = payloads.requests()
    print(f"fluxwarden webhook benchmark: servers on core {args.server_core}, load on core {args.load_core}")
    print_payloads(reviews)
    with tempfile.TemporaryDirectory(prefix="fluxwarden-bench-") as tmp:
        work = Path(tmp)
        certs = ensure_serving_pair(work / "certs")
        manifest = write_manifest(work, requests)
        order = [servers.fluxwarden(certs, work / "fluxwarden.log"), servers.bare(certs, work / "bare.log")]
        try:
            for server in order:
                server.start(args.server_core)
                check_answers(server, reviews)
            peaks = peak(order, manifest, args)
            rate = median([r.result.rate for r in peaks["fluxwarden"]])
            latencies = half_peak(order, requests, rate / 2, args)
        finally:
            for server in order:
                server.stop()
        missed = summarize(peaks, latencies, rate)
        if args.profile == "always" or (args.profile == "auto" and missed):
            server_profile.profile(
                certs,
                manifest,
                requests,
                work,
                seconds=args.seconds,
                connections=args.connections,
                server_core=args.server_core,
                load_core=args.load_core,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
