"""The notification controller's event server under load: events accepted, deliveries made, nothing lost.

``python -m bench.notification``. On a fresh control plane (etcd + kube-apiserver, Flux's CRDs;
``bench/cluster.py``), ``fluxwarden controllers run --controllers notification`` in a process of its
own (``bench/controller.py``), and a loopback HTTP sink in another (``bench/http_sink.py``). Each
scenario gets a namespace of its own with 10 generic Providers, each addressed to its own path on the
sink, and 10 Alerts, Alert ``i`` routing to Provider ``i`` the events of Kustomization ``app-i`` and of
every GitRepository. The load generator (``bench/event_load.py``, this process) POSTs distinct Flux
events (a new message and revision each, so the rate limiter keeps them all) over keep-alive
connections; each involved object's events go on one connection, in order.

Scenarios (one row each):

- ``intake only``: the Providers suspended after the probe, so events are parsed, rate-limited, matched
  and queued and nothing is sent: the server's own cost;
- ``one``: Kustomization events, each matching one Alert; ``fan-out``: GitRepository events, each
  matching all 10;
- ``peak``: closed loop, every connection sends its next event when the last is answered; ``@R/s``: open
  loop at ``--rate``, latency counted from when each event was due;
- ``on-change``: the Alerts annotated ``notification.fluxwarden.io/mode: on-change``; ``alternate``: each
  object's events alternate error/info, so every one is a transition and is sent (and its state written
  first); ``errors repeat``: errors only, of which each object's first is sent and the rest held back,
  then one info per object, whose recovery must arrive (proof that the held-back ones were held, not late);
- ``queue Q``: a second controller with ``--event-queue-size Q``, fan-out at peak: 429 once the queue is
  full, and every delivery of every 202'd event still arrives.

Per row: events/s accepted (202), p50/p99 acceptance latency, 429s, deliveries/s at the sink (separately:
delivery is asynchronous), the time the queue took to drain after the last event, and the deliveries
counted at the sink against those the 202s promised (no loss, no duplicate). First, the load generator's
own ceiling against the sink. When a target is missed (1000 events/s accepted, p99 < 10 ms, no loss;
``--profile auto``) the ``intake only`` and ``one`` peaks run again under py-spy (cProfile where py-spy is
not installed). A row that loses deliveries also shows the controller's warnings and the
``NotificationDispatchFailed`` Events on its Alerts.
Bounded by ``--deadline``; everything it starts is stopped.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import args as bench_args
from bench.cluster import (
    Child,
    KubeApi,
    arm_deadline,
    cluster,
    load_average,
    rerun_from_copy,
    self_cpu,
)
from bench.controller import Controller, controller_env, controllers_run
from bench.event_load import SLOW, Outcome, Sent, drive, post
from bench.fluxconfig import cpu_between, cpu_line, cpu_seconds
from bench.sources import read_profile
from bench.stats import pct
from tests.support.binaries import binary_dir
from tests.support.control_plane import ControlPlane, free_port

NOTIFICATION = "/apis/notification.toolkit.fluxcd.io/v1beta3"
ALERTS = 10
TARGET_RATE = 1000.0
TARGET_P99_MS = 10.0
MODE_ANNOTATION = "notification.fluxwarden.io/mode"
DISPATCH_FAILED = "?fieldSelector=reason%3DNotificationDispatchFailed"  # Warning Events on the Alerts


def py_spy() -> str | None:
    """py-spy beside this Python (``.venv/bin/pip install py-spy``) or on PATH; None: cProfile instead."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.notification", description=__doc__.splitlines()[0], parents=[bench_args.common()]
    )
    parser.add_argument("--events", type=int, default=6000, help="events per scenario (default 6000)")
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="open-loop events/s (default 1000)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections (default 8)")
    parser.add_argument("--seconds", type=float, default=30.0, help="longest load phase of a scenario (default 30)")
    parser.add_argument("--small-queue", type=int, default=200, help="--event-queue-size of the 429 scenario")
    parser.add_argument("--drain-timeout", type=float, default=180.0, help="longest wait for the queue to drain")
    parser.add_argument(
        "--only", default="", help="comma list of scenario names to run (default all; see the table's first column)"
    )
    parser.add_argument(
        "--profile", choices=("auto", "always", "never"), default="auto",
        help="profile the controller under the intake-only and `one` peak loads: when a target is missed (auto), "
        "always, never",
    )  # fmt: skip
    parser.add_argument("--profile-seconds", type=float, default=15.0, help="length of the profiled load")
    args = bench_args.parse(parser, argv)
    if args.events < 10 or args.connections < 1 or args.rate <= 0:
        parser.error("--events >= 10, --connections >= 1 and --rate > 0")
    scenarios(args)  # an unknown --only name fails here, before a cluster starts
    return args


# -- objects and events ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    fanout: bool  # GitRepository events (every Alert) rather than Kustomization events (one Alert)
    severities: str = "info"  # info | alternate | errors
    on_change: bool = False
    rate: float | None = None  # None: closed loop
    queue: int | None = None  # a controller of its own with this --event-queue-size
    suspended: bool = False  # Providers suspended: routed and queued, nothing sent (the intake alone)

    @property
    def namespace(self) -> str:
        return "bench-nt-" + "".join(c if c.isalnum() else "-" for c in self.name).strip("-")


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    rate = args.rate
    found = [
        Scenario("intake only peak", fanout=False, suspended=True),
        Scenario("one peak", fanout=False),
        Scenario(f"one @{rate:g}/s", fanout=False, rate=rate),
        Scenario("fan-out peak", fanout=True),
        Scenario(f"fan-out @{rate:g}/s", fanout=True, rate=rate),
        Scenario("on-change alternate peak", fanout=False, severities="alternate", on_change=True),
        Scenario(f"on-change alternate @{rate:g}/s", fanout=False, severities="alternate", on_change=True, rate=rate),
        Scenario("on-change errors repeat peak", fanout=False, severities="errors", on_change=True),
        Scenario(f"queue {args.small_queue} fan-out peak", fanout=True, queue=args.small_queue),
    ]
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    if unknown := wanted - {s.name for s in found}:
        raise SystemExit(f"--only: no scenario {sorted(unknown)}; choose from {[s.name for s in found]}")
    return [s for s in found if not wanted or s.name in wanted]


def provider(namespace: str, index: int, sink_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "kind": "Provider",
        "metadata": {"name": f"p-{index}", "namespace": namespace},
        "spec": {
            "type": "generic",
            "address": f"http://127.0.0.1:{sink_port}/{namespace}/p-{index}",
        },
    }


def alert(namespace: str, index: int, on_change: bool) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"a-{index}", "namespace": namespace}
    if on_change:
        meta["annotations"] = {MODE_ANNOTATION: "on-change"}
    return {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "kind": "Alert",
        "metadata": meta,
        "spec": {
            "providerRef": {"name": f"p-{index}"},
            "eventSeverity": "info",
            "eventSources": [{"kind": "Kustomization", "name": f"app-{index}"}, {"kind": "GitRepository", "name": "*"}],
            "eventMetadata": {"cluster": "bench"},
        },
    }


_KINDS = {
    False: ("Kustomization", "kustomize.toolkit.fluxcd.io", "app", "kustomize-controller"),
    True: ("GitRepository", "source.toolkit.fluxcd.io", "repo", "source-controller"),
}


def event(namespace: str, fanout: bool, obj: int, severity: str, ident: int) -> bytes:
    """A Flux event as the controllers post it; ``ident`` makes its message and revision new."""
    kind, group, prefix, reporter = _KINDS[fanout]
    failed = severity == "error"
    message = (
        f"{'Health check failed after 1.2s' if failed else 'Reconciliation finished in 1.2s, next run in 10m'}"
        f" (bench-id={ident})"
    )
    body = {
        "involvedObject": {
            "kind": kind, "namespace": namespace, "name": f"{prefix}-{obj}",
            "uid": f"00000000-0000-0000-0000-{obj:012d}", "apiVersion": f"{group}/v1",
        },
        "severity": severity,
        "timestamp": "2026-12-01T18:00:00Z",
        "message": message,
        "reason": "HealthCheckFailed" if failed else "ReconciliationSucceeded",
        "metadata": {f"{group}/revision": f"main@sha1:{ident:040x}"},
        "reportingController": reporter,
        "reportingInstance": f"{reporter}-bench",
    }  # fmt: skip
    return json.dumps(body, separators=(",", ":")).encode()


Tag = tuple[int, str]  # (involved object, severity) of an event


def streams(s: Scenario, port: int, count: int, connections: int, first_id: int) -> list[list[Sent]]:
    """``count`` events over ``connections``; object ``o`` always on connection ``o % connections``.

    The objects take turns on their connection; ``alternate`` starts each object with an error.
    """
    width = min(connections, ALERTS)
    mine = [[o for o in range(ALERTS) if o % width == c] for c in range(width)]
    out: list[list[Sent]] = [[] for _ in range(width)]
    seen = [0] * ALERTS
    for n in range(count):
        c = n % width
        obj = mine[c][(n // width) % len(mine[c])]
        severity = {"info": "info", "errors": "error"}.get(s.severities) or ("error", "info")[seen[obj] % 2]
        seen[obj] += 1
        ident = first_id + n
        out[c].append(Sent(post("/", event(s.namespace, s.fanout, obj, severity, ident), port), (obj, severity)))
    return out


def expected_deliveries(s: Scenario, accepted: Sequence[Sequence[Tag]], failing: set[int]) -> int:
    """Deliveries the 202s promised: per Alert, each accepted event, or in on-change mode each transition
    (``failing``: the objects failing before, updated)."""
    per_event = 0 if s.suspended else ALERTS if s.fanout else 1
    if not s.on_change:
        return per_event * sum(len(tags) for tags in accepted)
    sent = 0
    for tags in accepted:  # each object's events are on one connection, in the order the server saw them
        for obj, severity in tags:
            if severity == "error" and obj not in failing:
                failing.add(obj)
                sent += 1
            elif severity == "info" and obj in failing:
                failing.discard(obj)
                sent += 1
    return per_event * sent


# -- the sink --------------------------------------------------------------------------------------


@dataclass
class Sink:
    child: Child
    port: int

    @classmethod
    def start(cls, log: Path) -> Sink:
        port = free_port()
        sink = cls(Child([sys.executable, "-m", "bench.http_sink", str(port)], log), port)
        deadline = time.monotonic() + 20
        while True:
            try:
                sink.stats()
                return sink
            except OSError:
                sink.child.check_alive()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as answer:
            found: dict[str, Any] = json.loads(answer.read())
            return found

    def stats(self, times: bool = False) -> dict[str, Any]:
        return self._get("/stats?times" if times else "/stats")

    def reset(self) -> None:
        self._get("/reset")

    def wait_for(self, count: int, timeout: float, alive: Callable[[], None], idle: float = 20.0) -> dict[str, Any]:
        """Until ``count`` deliveries arrived, ``timeout`` passed, or none came for ``idle`` s; the stats."""
        deadline, last, moved = time.monotonic() + timeout, -1, time.monotonic()
        while True:
            found = self.stats()
            now = time.monotonic()
            if found["count"] >= count or now > deadline or now - moved > idle:
                return self.stats(times=True)
            if found["count"] != last:
                last, moved = found["count"], now
            alive()
            time.sleep(0.1)


# -- running one scenario --------------------------------------------------------------------------


@dataclass
class Row:
    scenario: Scenario
    load: Outcome
    expected: int  # deliveries the 202s promised
    delivered: int  # arrived at the sink
    unique: int  # distinct (path, event) pairs among them
    delivery_rate: float  # deliveries/s from the first to the last arrival
    drain_s: float  # last arrival - last answer (0 when the sink kept up)
    cpu: dict[str, float]  # over the load
    cpu_all: dict[str, float]  # over load + drain
    recovered: tuple[int, int] | None = None  # errors repeat: recoveries arrived / expected
    warnings: collections.Counter[str] = field(default_factory=collections.Counter)  # the controller's log
    dispatch_failed: list[str] = field(default_factory=list)  # NotificationDispatchFailed Events: their messages

    @property
    def accepted(self) -> int:
        return sum(n for status, n in self.load.statuses.items() if 200 <= status < 300)

    def latency_ms(self, q: float) -> float:
        values = self.load.latencies.get(202, [])
        return pct(values, q) * 1e3 if values else float("nan")

    @property
    def lost(self) -> int:
        return self.expected - self.delivered


@dataclass
class Bench:
    api: KubeApi
    plane: ControlPlane
    sink: Sink
    args: argparse.Namespace
    pids: dict[str, int]
    next_id: int = 1
    ceiling: Outcome | None = None
    ceiling_cpu: float = 0.0
    rows: list[Row] = field(default_factory=list)


def create_scenario_objects(b: Bench, s: Scenario) -> None:
    ns = s.namespace
    b.api.must("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    for i in range(ALERTS):
        b.api.must("POST", f"{NOTIFICATION}/namespaces/{ns}/providers", provider(ns, i, b.sink.port))
        b.api.must("POST", f"{NOTIFICATION}/namespaces/{ns}/alerts", alert(ns, i, s.on_change))


def suspend_providers(b: Bench, s: Scenario) -> None:
    """After the probe: the Alerts still route and queue, nothing is sent. The informer's watch takes
    milliseconds; anything that still arrives shows as a delivery nobody promised."""
    for i in range(ALERTS):
        b.api.must(
            "PATCH", f"{NOTIFICATION}/namespaces/{s.namespace}/providers/p-{i}", {"spec": {"suspend": True}},
            "application/merge-patch+json",
        )  # fmt: skip


def probe(b: Bench, s: Scenario, event_port: int, alive: Callable[[], None]) -> None:
    """Until every Alert of the scenario routes to its sink (the informers have them, the Provider resolved).

    On-change Alerts get an error and an info per round: a pair sent in full leaves no object failing.
    """
    deadline = time.monotonic() + 60
    severities = ("error", "info") if s.on_change else ("info",)
    while True:
        paths = b.sink.stats()["paths"]
        missing = [i for i in range(ALERTS) if paths.get(f"/{s.namespace}/p-{i}", {}).get("count", 0) < len(severities)]
        if not missing:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{s.name}: Alerts {missing} route nothing to the sink after 60 s")
        for i in missing:
            for severity in severities:
                sent = post("/", event(s.namespace, False, i, severity, b.next_id), event_port)
                b.next_id += 1
                drive(event_port, [[Sent(sent)]])
        alive()
        time.sleep(0.3)
    b.sink.reset()


def cpu_now(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each process and of this one (the load generator), and the machine's busy time."""
    return {**cpu_seconds(pids), "bench": self_cpu().total}


def run_scenario(b: Bench, s: Scenario, controller: Controller, event_port: int) -> Row:
    alive = controller.child.check_alive
    prepare(b, s, controller, event_port)
    load = streams(s, event_port, b.args.events, b.args.connections, b.next_id)
    b.next_id += b.args.events
    pids = {**b.pids, "controller": controller.pid}
    log_from = controller.child.log_path.stat().st_size
    cpu0 = cpu_now(pids)
    out = drive(event_port, load, rate=s.rate, seconds=b.args.seconds)
    cpu1 = cpu_now(pids)
    failing: set[int] = set()
    expected = expected_deliveries(s, out.accepted, failing)
    found = b.sink.wait_for(expected, b.args.drain_timeout, alive)
    cpu2 = cpu_now(pids)
    recovered = None
    if s.severities == "errors":  # one info each: the recovery is the proof the held-back errors were held
        before = found["count"]
        info = Scenario(s.name, s.fanout, "info", s.on_change)
        recoveries = [
            [Sent(post("/", event(s.namespace, False, o, "info", b.next_id + o), event_port), (o, "info"))]
            for o in range(ALERTS)
        ]
        b.next_id += ALERTS
        again = drive(event_port, recoveries)
        more = expected_deliveries(info, again.accepted, failing)
        found = b.sink.wait_for(expected + more, b.args.drain_timeout, alive)
        recovered = (found["count"] - before, more)
        expected += more
    times = found.get("times") or []
    span = (times[-1] - times[0]) if len(times) > 1 else 0.0
    unique = sum(p["unique"] for p in found["paths"].values())
    return Row(
        scenario=s,
        load=out,
        expected=expected,
        delivered=found["count"],
        unique=unique,
        delivery_rate=len(times) / span if span > 0 else 0.0,
        drain_s=max(0.0, times[-1] - out.ended) if times and recovered is None else 0.0,
        cpu=cpu_between(cpu0, cpu1),
        cpu_all=cpu_between(cpu0, cpu2),
        recovered=recovered,
        warnings=log_warnings(controller.child.log_path, log_from),
        dispatch_failed=[
            str(e.get("message")) for e in b.api.items(f"/api/v1/namespaces/{s.namespace}/events{DISPATCH_FAILED}")
        ],
    )


def log_warnings(path: Path, start: int) -> collections.Counter[str]:
    """The controller's warnings and errors logged since byte ``start``, digits folded so alike ones count once."""
    with path.open("rb") as log:
        log.seek(start)
        lines = log.read().decode(errors="replace").splitlines()
    found: collections.Counter[str] = collections.Counter()
    for line in lines:
        if any(word in line for word in ("WARNING", "ERROR", "Traceback", '"warning"', '"error"')):
            found[re.sub(r"\d+", "N", line)[-240:]] += 1
    return found


def measure_ceiling(b: Bench) -> None:
    """The load generator against the sink (a trivial server that answers at once): its own limit."""
    port, per = b.sink.port, max(2000, b.args.events)
    load = [[Sent(post(f"/ceiling/{c}", b"{}", port)) for _ in range(per * 4)] for c in range(b.args.connections)]
    before = self_cpu().total
    b.ceiling = drive(port, load, seconds=3.0)
    b.ceiling_cpu = (self_cpu().total - before) / b.ceiling.seconds
    b.sink.reset()


# -- controllers and profiles ----------------------------------------------------------------------


@contextlib.contextmanager
def notification_controller(
    b: Bench, work: Path, queue: int | None, log: str, profile_out: Path | None = None
) -> Iterator[tuple[Controller, int]]:
    """``controllers run --controllers notification`` in its own process; its event server's port."""
    port = free_port()
    extra = ["--event-server-addr", f"127.0.0.1:{port}", "--receiver-addr", f"127.0.0.1:{free_port()}"]
    if queue is not None:
        extra += ["--event-queue-size", str(queue)]
    home = work / log
    home.mkdir(exist_ok=True)
    cli = controllers_run(b.plane, home, b.args, "notification", *extra)
    controller = Controller.launch(
        cli, work / f"{log}.log", module="bench.sources", profile_out=profile_out, env=controller_env(home)
    )
    try:
        controller.wait_ready()
        yield controller, port
    finally:
        controller.stop()


def prepare(b: Bench, s: Scenario, controller: Controller, port: int) -> None:
    """The scenario's namespace, Providers and Alerts, routing proved (and the Providers suspended if asked)."""
    create_scenario_objects(b, s)
    probe(b, s, port, controller.child.check_alive)
    if s.suspended:
        suspend_providers(b, s)
        time.sleep(2.0)
        b.sink.reset()


def profiled_load(b: Bench, s: Scenario, controller: Controller, port: int, out: Path, spy_binary: str) -> str:
    """py-spy samples of the controller (every thread, on CPU only) while ``s`` runs at peak."""
    prepare(b, s, controller, port)
    count = int(b.args.profile_seconds * 6000)
    load = streams(s, port, count, b.args.connections, b.next_id)
    b.next_id += count
    spy = subprocess.Popen(
        [spy_binary, "record", "--pid", str(controller.pid), "--rate", "250", "--format", "raw",
         "--duration", str(int(b.args.profile_seconds)), "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(1.0)  # py-spy attaches
    done = drive(port, load, seconds=b.args.profile_seconds - 1.5)
    _, err = spy.communicate(timeout=60)
    if not out.exists():
        return f"(py-spy wrote nothing: {err.decode(errors='replace')[-300:]})"
    return f"{done.rate(202):,.0f} events/s accepted meanwhile; " + collapsed_summary(out.read_text())


def collapsed_summary(text: str, limit: int = 25) -> str:
    """Self and inclusive shares of the functions in py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")[1:]  # the first frame is the thread
        total += n
        if frames:
            own[_short(frames[-1])] += n
        for name in {_short(f) for f in frames}:
            inclusive[name] += n
    lines = [f"{total} samples on CPU (all threads)", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(limit)]
    lines.append("inclusive:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(limit)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """``func (path/to/module.py:12)`` -> ``func (module.py)``: lines folded, so a function counts once."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rstrip(')').rpartition(':')[0]).name})"


PROFILED = (Scenario("profile intake only", fanout=False, suspended=True), Scenario("profile one", fanout=False))


def profile(b: Bench, work: Path) -> list[tuple[str, str]]:
    """The controller under the intake-only and the ``one`` peak loads: py-spy, or cProfile without it."""
    if (spy := py_spy()) is not None:
        with notification_controller(b, work, None, "profiled") as (controller, port):
            return [(s.name, profiled_load(b, s, controller, port, work / f"{s.namespace}.txt", spy)) for s in PROFILED]
    found = []
    for s in PROFILED:
        out = work / f"{s.namespace}.prof"
        with notification_controller(b, work, None, s.namespace, profile_out=out) as (controller, port):
            prepare(b, s, controller, port)
            load = streams(s, port, int(b.args.profile_seconds * 6000), b.args.connections, b.next_id)
            b.next_id += int(b.args.profile_seconds * 6000)
            drive(port, load, seconds=b.args.profile_seconds)
        found.append((s.name, read_profile(out) if out.exists() else "(no profile written)"))
    return found


# -- report ----------------------------------------------------------------------------------------


def met(row: Row) -> bool:
    """The row's share of the targets: no loss always; 1000/s and p99 < 10 ms where events are not held
    back by a full queue (the small-queue row exists to fill it)."""
    if row.lost != 0 or row.unique != row.delivered:
        return False
    if row.scenario.queue is not None or row.scenario.fanout or row.scenario.on_change:
        return True
    rate_ok = row.load.rate(202) >= (0.98 * row.scenario.rate if row.scenario.rate else TARGET_RATE)
    return rate_ok and row.latency_ms(99) < TARGET_P99_MS


def tail_times(slow: list[tuple[float, float]], buckets: int = 6) -> str:
    """Where in the load the slow answers fell: the busiest 0.5 s spans, with their count and worst latency."""
    spans: dict[int, list[float]] = {}
    for at, latency in slow:
        spans.setdefault(int(at / 0.5), []).append(latency)
    top = sorted(spans.items(), key=lambda item: -len(item[1]))[:buckets]
    return ", ".join(f"{k / 2:.1f}-{k / 2 + 0.5:.1f}s: {len(v)} (max {max(v) * 1e3:.0f} ms)" for k, v in sorted(top))


def table_row(r: Row) -> tuple[str, ...]:
    dup = "" if r.unique == r.delivered else f" ({r.delivered - r.unique} dup)"
    return (
        r.scenario.name, f"{r.load.rate(202):,.0f}", f"{r.latency_ms(50):.1f}", f"{r.latency_ms(99):.1f}",
        str(r.load.statuses[202]), str(r.load.statuses[429]), f"{r.delivery_rate:,.0f}", f"{r.drain_s:.1f}",
        f"{r.delivered} / {r.expected}{dup}", f"{100 * r.cpu.get('controller', 0.0) / r.load.seconds:.0f}%",
        "yes" if met(r) else "NO",
    )  # fmt: skip


def report(b: Bench) -> None:
    if b.ceiling is not None:
        c = b.ceiling
        print(
            f"\nload generator ceiling against the sink (trivial server): {c.rate(200):,.0f} requests/s closed loop "
            f"over {b.args.connections} connections, p99 {pct(c.latencies.get(200, [0.0]), 99) * 1e3:.2f} ms, "
            f"generator CPU {100 * b.ceiling_cpu:.0f}% of a core"
        )
    print(
        f"\n{ALERTS} Alerts -> {ALERTS} generic Providers on a loopback sink; {b.args.events} distinct events per row, "
        f"{b.args.connections} keep-alive connections; targets {TARGET_RATE:g} events/s, p99 < {TARGET_P99_MS:g} ms, "
        "no loss\n"
    )
    columns = ("scenario", "accepted/s", "p50 ms", "p99 ms", "202", "429", "deliveries/s", "drain s",
               "at sink / promised", "controller CPU", "met")  # fmt: skip
    rows = [columns, *(table_row(r) for r in b.rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for index, row in enumerate(rows):
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("| " + " | ".join(cells) + " |")
        if index == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print()
    for r in b.rows:
        lag = f", client lag p99 {pct(r.load.lag, 99) * 1e3:.2f} ms" if r.load.lag else ""
        print(f"{r.scenario.name}: load {r.load.seconds:.1f}s{lag}; CPU during load: {cpu_line(r.cpu, r.load.seconds)}")
        total_s = max(r.load.seconds + r.drain_s, 1e-9)
        print(f"    load + drain: {cpu_line(r.cpu_all, total_s)}")
        cpu_per = 1e6 * r.cpu_all.get("controller", 0.0) / max(r.accepted, 1)
        print(f"    controller CPU per accepted event (load + drain): {cpu_per:,.0f} µs")
        if r.load.reasons:
            print("    refused: " + "; ".join(f"{n} x {why}" for why, n in r.load.reasons.most_common(4)))
        if r.load.slow:
            print(f"    answers over {SLOW * 1e3:g} ms: {len(r.load.slow)}; when: {tail_times(r.load.slow)}")
        if r.load.errors:
            print(f"    connections lost: {r.load.errors}")
        if r.warnings:
            top = "; ".join(f"{n} x {line}" for line, n in r.warnings.most_common(2))
            print(f"    controller warnings/errors: {sum(r.warnings.values())}: {top}")
        if r.dispatch_failed:
            events, sample = len(r.dispatch_failed), r.dispatch_failed[0][:200]
            print(f"    NotificationDispatchFailed Events on the Alerts: {events} (deduplicated); {sample}")
        if r.recovered is not None:
            print(f"    recoveries after the repeated errors: {r.recovered[0]} arrived of {r.recovered[1]} expected")


def run(args: argparse.Namespace) -> tuple[Bench, list[tuple[str, str]]]:
    with tempfile.TemporaryDirectory(prefix="fluxwarden-bench-notification-") as tmp:
        work = Path(tmp)
        with cluster(binary_dir(), work / "cluster") as running, contextlib.ExitStack() as stack:
            plane = running.plane
            sink = Sink.start(work / "sink.log")
            stack.callback(sink.child.stop)
            api = KubeApi(plane, timeout=60)
            stack.callback(api.close)
            assert plane.apiserver.pid is not None and plane.etcd.pid is not None
            pids = {"apiserver": plane.apiserver.pid, "etcd": plane.etcd.pid, "sink": sink.child.pid}
            b = Bench(api, plane, sink, args, pids)
            measure_ceiling(b)
            print(f"  generator ceiling measured; load avg {load_average()}", flush=True)
            todo = scenarios(args)
            with notification_controller(b, work, None, "controller") as (controller, port):
                for s in (s for s in todo if s.queue is None):
                    b.rows.append(run_scenario(b, s, controller, port))
                    print(f"  {s.name}: done; load avg {load_average()}", flush=True)
            for s in (s for s in todo if s.queue is not None):
                with notification_controller(b, work, s.queue, f"queue-{s.queue}") as (controller, port):
                    b.rows.append(run_scenario(b, s, controller, port))
                    print(f"  {s.name}: done; load avg {load_average()}", flush=True)
            missed = not all(met(r) for r in b.rows)
            profiled: list[tuple[str, str]] = []
            if args.profile == "always" or (args.profile == "auto" and missed):
                profiled = profile(b, work)
            return b, profiled


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.code != "worktree":
        return rerun_from_copy("bench.notification", argv, args, show_commit=False)
    arm_deadline("bench.notification", args.deadline)
    import fluxwarden

    print(
        f"bench.notification: {os.cpu_count()} cores, load avg {load_average()}; controller `--controllers "
        f"notification` from {Path(fluxwarden.__file__).parent}",
        flush=True,
    )
    began = time.monotonic()
    try:
        b, profiled = run(args)
    finally:
        signal.alarm(0)
    print(f"  (took {time.monotonic() - began:.0f}s)")
    report(b)
    for name, text in profiled:
        print(f"\nProfile of the controller, {name} at peak ({args.profile_seconds:g}s):\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
