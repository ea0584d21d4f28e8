"""The controller under test as a benchmark child, and what the benchmarks read from it and the cluster.

Shared by ``bench.sources``, ``bench.kustomize`` and ``bench.helm``: the ``fluxwarden controllers run``
process (its command line and arguments, probes, ``/metrics``), the reconcile counters of its metrics,
a poller that lists a collection until every object is done, CPU snapshots of the processes involved
and the window between two.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cluster import Api, Child, Cpu, KubeApi, cpu_of, machine_busy, self_cpu
from tests.support.binaries import binary_dir
from tests.support.control_plane import ControlPlane, free_port

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
_STOP_GRACE_SECONDS = 45.0


def controllers_run(
    plane: ControlPlane,
    work: Path,
    args: argparse.Namespace,
    controllers: str,
    *extra: str,
    kubeconfig: Path | None = None,
) -> list[str]:
    """``controllers run`` of ``controllers`` with ``bench.args.common``'s settings, storage in ``work``;
    as admin, or as the user of ``kubeconfig`` (``bench.cluster.user_kubeconfig``)."""
    return [
        "controllers", "run", "--kubeconfig", str(kubeconfig or plane.kubeconfig), "--controllers", controllers,
        "--storage-path", str(work / "storage"), "--storage-addr", "127.0.0.1:0",
        "--concurrency", str(args.concurrency), "--enforce" if args.enforce else "--no-enforce", *extra,
    ]  # fmt: skip


def start_source(plane: ControlPlane, work: Path, args: argparse.Namespace, module: str) -> Controller:
    """fluxwarden's ``controllers run --controllers source`` alone, in ``work``: it serves the artifacts to a
    measured kustomize or helm controller of either side, fluxwarden's or Flux's."""
    tmp = work / "controller-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    cli = controllers_run(plane, work, args, "source")
    env = controller_env(tmp)
    return Controller.launch(cli, work / "controller.log", module=module, env=env, request_timeout=30)


def controller_env(tmp: Path, *first: Path) -> dict[str, str]:
    """A controller child's environment: ``first``, then the pinned binaries (kustomize, helm) on PATH;
    TMPDIR ``tmp`` (build dirs, values files), which the caller removes with its work dir."""
    path = os.pathsep.join([*map(str, first), str(binary_dir()), os.environ.get("PATH", os.defpath)])
    return {**os.environ, "PATH": path, "TMPDIR": str(tmp)}


_RECONCILE_QUERY = "?" + "&".join(
    f"name[]={name}"
    for name in (
        "controller_runtime_reconcile_total",
        "gotk_reconcile_duration_seconds_sum",
        "gotk_reconcile_duration_seconds_count",
    )
)


@dataclass
class Controller:
    """``fluxwarden controllers run ...`` in its own process, metrics and probes on.

    ``module`` is the benchmark whose ``_profiled-controller`` runs it under the profiler;
    ``request_timeout`` bounds each probe or scrape.
    """

    child: Child
    metrics_port: int
    health_port: int
    started: float
    request_timeout: float = 10.0

    @classmethod
    def launch(
        cls,
        cli: Sequence[str],
        log: Path,
        *,
        module: str,
        profile_out: Path | None = None,
        env: Mapping[str, str] | None = None,
        request_timeout: float = 10.0,
    ) -> Controller:
        """``cli`` (without the ports, which are picked here) in a child logging to ``log``."""
        metrics_port, health_port = free_port(), free_port()
        full = [*cli, "--metrics-port", str(metrics_port), "--health-port", str(health_port)]
        if profile_out is None:
            argv = [sys.executable, "-m", "fluxwarden.cli.main", *full]
        else:
            argv = [sys.executable, "-m", module, "_profiled-controller", str(profile_out), "--", *full]
        started = time.monotonic()
        return cls(Child(argv, log, env=env), metrics_port, health_port, started, request_timeout)

    @classmethod
    def upstream(
        cls, binary: Path, flags: Sequence[str], kubeconfig: Path, work: Path, *, request_timeout: float = 30.0
    ) -> Controller:
        """One of upstream Flux's controllers (``bench.flux``): ``binary flags`` with loopback metrics and
        health ports, as the admin of ``kubeconfig``, TMPDIR and log in ``work``."""
        metrics_port, health_port = free_port(), free_port()
        argv = [
            str(binary),
            *flags,
            f"--metrics-addr=127.0.0.1:{metrics_port}",
            f"--health-addr=127.0.0.1:{health_port}",
        ]
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "TMPDIR": str(work)}
        started = time.monotonic()
        child = Child(argv, work / "controller.log", env=env)
        return cls(child, metrics_port, health_port, started, request_timeout)

    @property
    def pid(self) -> int:
        return self.child.pid

    def _get(self, port: int, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=self.request_timeout) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, b""

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds from the process start until /readyz (informers listed); raises if it dies or times out."""
        deadline = time.monotonic() + timeout
        while True:
            self.child.check_alive()
            with contextlib.suppress(OSError):
                if self._get(self.health_port, "/readyz")[0] == 200:
                    return time.monotonic() - self.started
            if time.monotonic() > deadline:
                raise RuntimeError(f"controller not ready after {timeout:.0f}s:\n{self.child.log_tail()}")
            time.sleep(0.05)

    def scrape(self, query: str = "") -> str:
        """The text of one ``/metrics`` scrape (``query`` e.g. ``?name[]=...``)."""
        status, body = self._get(self.metrics_port, "/metrics" + query)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return body.decode()

    def reconcile_metrics(self, kind: str, controller: str | None = None) -> Metrics:
        """``Metrics.parse`` of a scrape of only the series it reads (``name[]``): a full scrape of N
        objects' histograms costs the controller more."""
        return Metrics.parse(self.scrape(_RECONCILE_QUERY), kind=kind, controller=controller)

    def idle_cpu(self, seconds: float) -> float:
        """CPU seconds per second of the controller (and its reaped children) over ``seconds`` of sleep here."""
        before, began = cpu_of(self.pid), time.monotonic()
        time.sleep(seconds)
        return (cpu_of(self.pid) - before).total / (time.monotonic() - began)

    def watch(self, seconds: float) -> None:
        """Wait ``seconds``, checking every second that the controller lives."""
        end_at = time.monotonic() + seconds
        while time.monotonic() < end_at:
            self.child.check_alive()
            time.sleep(min(1.0, max(0.0, end_at - time.monotonic())))

    def stop(self) -> tuple[int | None, float]:
        """SIGTERM, then SIGKILL after 45 s: the exit code (None: killed) and the seconds it took."""
        began = time.monotonic()
        code = self.child.stop(grace=_STOP_GRACE_SECONDS)
        return code, time.monotonic() - began


@dataclass(frozen=True)
class Metrics:
    """The few sums of the controller's /metrics the benchmarks read, and the size of a scrape."""

    reconciles: float  # controller_runtime_reconcile_total, all results
    errors: float
    duration_sum: float  # gotk_reconcile_duration_seconds of one kind: time in controller.reconcile
    duration_count: float
    samples: int
    size: int

    @classmethod
    def parse(cls, text: str, kind: str, controller: str | None = None) -> Metrics:
        """Reconciles of ``controller`` (None: of all), reconcile() time of objects of ``kind``."""
        sums: dict[str, float] = {}
        errors, samples = 0.0, 0
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if not match:
                continue
            samples += 1
            name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
            if name == "controller_runtime_reconcile_total":
                if controller is not None and f'controller="{controller}"' not in labels:
                    continue
                if 'result="error"' in labels:
                    errors += value
            elif name.startswith("gotk_reconcile_duration_seconds_") and f'kind="{kind}"' not in labels:
                continue
            sums[name] = sums.get(name, 0.0) + value
        return cls(
            sums.get("controller_runtime_reconcile_total", 0.0),
            errors,
            sums.get("gotk_reconcile_duration_seconds_sum", 0.0),
            sums.get("gotk_reconcile_duration_seconds_count", 0.0),
            samples,
            len(text),
        )

    def mean_reconcile_ms_since(self, first: Metrics) -> float:
        """Mean ms in reconcile() between the scrape ``first`` and this one."""
        return (self.duration_sum - first.duration_sum) / max(self.duration_count - first.duration_count, 1) * 1e3


# -- listing and polling ---------------------------------------------------------------------------


def ready_condition(obj: dict[str, Any]) -> dict[str, Any]:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return {}


def ready_failure(obj: dict[str, Any]) -> str | None:
    """``reason: message`` of a Ready=False condition, None if there is none."""
    ready = ready_condition(obj)
    return f"{ready.get('reason')}: {ready.get('message')}" if ready.get("status") == "False" else None


@dataclass
class Poll:
    """Lists a collection until every name passes ``done_when``; notes when each first did.

    ``observe`` records one listed object: by default only names still waited for, and the first
    failure seen of each.
    """

    list_items: Callable[[], list[dict[str, Any]]]
    names: set[str]
    done_when: Callable[[dict[str, Any]], bool]
    interval: float
    deadline: float
    started: float = field(default_factory=time.monotonic)
    ready_at: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    lists: int = 0
    last_items: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def observe(self, name: str, obj: dict[str, Any], now: float) -> None:
        if name not in self.names or name in self.ready_at:
            return
        if self.done_when(obj):
            self.ready_at[name] = now - self.started
        elif (failure := ready_failure(obj)) is not None:
            self.failed.setdefault(name, failure)

    def run(self) -> None:
        try:
            while time.monotonic() < self.deadline:
                items = self.list_items()
                now, self.lists, self.last_items = time.monotonic(), self.lists + 1, items
                for obj in items:
                    self.observe(obj["metadata"]["name"], obj, now)
                if self.names <= self.ready_at.keys():
                    return
                time.sleep(self.interval)
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self.done.set()

    def start(self) -> None:
        threading.Thread(target=self.run, name="poll", daemon=True).start()

    def wait(self, child: Child, what: str) -> list[float]:
        """Block until done (checking the controller lives); the sorted times, or an error naming what hung."""
        while not self.done.wait(1.0):
            child.check_alive()
        if self.error is not None:
            raise self.error
        missing = self.names - self.ready_at.keys()
        if missing:
            sample = {k: self.failed.get(k, "not Ready") for k in sorted(missing)[:3]}
            raise RuntimeError(f"{what}: {len(missing)} of {len(self.names)} not done in time, e.g. {sample}")
        return sorted(self.ready_at.values())


def resource_versions(api: Api, path: str) -> dict[str, str]:
    """``namespace/name`` -> resourceVersion of every object listed at ``path``."""
    return {
        f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
        for o in api.items(path)
    }


def request_reconcile(api: KubeApi, collection: str, names: set[str], token: str) -> None:
    """``reconcile.fluxcd.io/requestedAt: token`` on each named object of ``collection``, one PATCH each."""
    body = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}}
    for name in sorted(names):
        api.must("PATCH", f"{collection}/{name}", body, "application/merge-patch+json")


def changed(before: dict[str, str], after: dict[str, str]) -> int:
    return sum(1 for k, v in after.items() if before.get(k) != v)


def deep_size(value: Any) -> int:
    """Bytes of a JSON-shaped value as Python objects (dicts, lists, strings, numbers), shared ones once."""
    seen: set[int] = set()

    def size(item: Any) -> int:
        if id(item) in seen:
            return 0
        seen.add(id(item))
        total = sys.getsizeof(item)
        if isinstance(item, dict):
            total += sum(size(k) + size(v) for k, v in item.items())
        elif isinstance(item, list):
            total += sum(size(v) for v in item)
        return total

    return size(value)


# -- CPU accounting --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """CPU of every process involved, the machine's busy time and the wall clock, at one instant."""

    wall: float
    controller: Cpu
    git_server: Cpu  # zero where the git server is no process of its own
    apiserver: Cpu
    etcd: Cpu
    bench: Cpu
    machine_busy: float

    @classmethod
    def take(cls, controller: int, apiserver: int, etcd: int, git_server: int | None = None) -> Snapshot:
        return cls(
            time.monotonic(), cpu_of(controller), cpu_of(git_server) if git_server is not None else Cpu(0.0, 0.0),
            cpu_of(apiserver), cpu_of(etcd), self_cpu(), machine_busy()[0],
        )  # fmt: skip


@dataclass(frozen=True)
class Window:
    """CPU seconds of each process between two snapshots; ``others``: the machine's busy time beyond them."""

    seconds: float
    controller: Cpu  # own threads; children: the processes it reaped (git, kustomize)
    git_server: Cpu
    apiserver: float
    etcd: float
    bench: float
    others: float  # the machine's busy time not used by any process above: other sessions

    @classmethod
    def between(cls, a: Snapshot, b: Snapshot) -> Window:
        seconds = b.wall - a.wall
        controller, git = b.controller - a.controller, b.git_server - a.git_server
        apiserver, etcd, bench = (b.apiserver - a.apiserver).total, (b.etcd - a.etcd).total, (b.bench - a.bench).total
        ours = controller.total + git.total + apiserver + etcd + bench
        return cls(seconds, controller, git, apiserver, etcd, bench, max(0.0, b.machine_busy - a.machine_busy - ours))

    def share(self, cpu_seconds: float) -> float:
        """Percent of one core."""
        return 100.0 * cpu_seconds / self.seconds if self.seconds > 0 else 0.0


# -- the profiled controller (runs in the child) ---------------------------------------------------


@contextlib.contextmanager
def thread_profiles(out: str, timer: Callable[[int], Callable[[], float]], skip: str = "") -> Iterator[None]:
    """One cProfile per thread started inside (but the one named ``skip``), merged into ``out`` on the way out.

    cProfile follows only the thread that enabled it, and the controller works in worker, informer
    and server threads. ``timer(clock)`` makes a thread's profiler clock from that thread's CPU clock
    id, so that waiting costs nothing and the calls still pending when the stats are merged from the
    main thread are charged that thread's CPU, not the main thread's.
    """
    profilers: list[cProfile.Profile] = []
    lock = threading.Lock()
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        if skip and self.name == skip:
            original(self)
            return
        profiler = cProfile.Profile(timer(time.pthread_getcpuclockid(threading.get_ident())))
        with lock:
            profilers.append(profiler)
        profiler.enable()
        try:
            original(self)
        finally:
            profiler.disable()

    threading.Thread.run = run  # type: ignore[method-assign]
    try:
        yield
    finally:
        with lock:
            merged = pstats.Stats(*profilers) if profilers else None
        if merged is not None:
            merged.dump_stats(out + ".partial")
            os.replace(out + ".partial", out)
