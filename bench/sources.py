"""How the source controller's cost grows with the number of GitRepositories, on one git server.

``python -m bench.sources [--counts 10,100,500]``. For each N, on a fresh control plane (etcd +
kube-apiserver, CRDs installed as the e2e tests do), with ``fluxwarden controllers run
--controllers source`` in its own process (so RSS and CPU are the controller's alone), it creates N
GitRepositories (``interval: 1m``, branch ``main``), each pointing at its own repository on one
smart-HTTP git server (a separate process; every repository a distinct tree of ~20 small files),
and measures:

1. time from the first create until every object is Ready (one list call per poll, not N gets);
2. the controller's peak RSS (``VmHWM``), and its RSS before the first object;
3. steady-state CPU of the no-op reconciles at the 1-minute interval: the controller's CPU time
   (its own threads, and the git processes it reaped) over a window longer than one interval, the
   reconciles counted from its Prometheus metrics, and a check that they wrote nothing;
4. a restart: a new controller on the same storage reconciles all N at once, every one a no-op;
5. one no-op reconcile timed alone (``run_once`` in this process, the controller stopped), split
   into its API read and its ``git ls-remote``, with a cProfile of it.

For the largest N it also profiles a restart of the controller with one cProfile per thread on the
thread CPU clock (``_profiled-controller`` below), so the profile says where the controller's CPU
goes. Everything it starts is stopped, and every temporary directory removed, on the way out; the
whole run is bounded by ``--deadline``.

``python -m bench.sources bucket ...`` runs the Bucket scenario instead (``bench.sources_bucket``): one
Bucket of 1000 objects on a real S3 server, beside a GitRepository of the same files.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import copy
import cProfile
import io
import json
import os
import pstats
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import args as bench_args
from bench.cluster import (
    Api,
    Child,
    Cpu,
    arm_deadline,
    cluster,
    cpu_of,
    load_average,
    memory_kib,
    rerun_from_copy,
    self_cpu,
)
from bench.controller import (
    Controller,
    Metrics,
    Poll,
    Snapshot,
    Window,
    changed,
    deep_size,
    ready_failure,
    thread_profiles,
)
from bench.controller import resource_versions as listed_versions
from bench.stats import pct
from tests.support.binaries import binary_dir
from tests.support.git_server import GitHttpServer, GitRepo, init_bare_repo

NAMESPACE = "bench-sources"
INTERVAL_SECONDS = 60.0
GITREPOSITORIES = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{namespace}/gitrepositories"
BRANCH = "main"
MIB = 1024.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sources",
        description=__doc__.splitlines()[0],
        parents=[bench_args.common("10,100,500", "GitRepositories")],
    )
    parser.add_argument("--repos", type=int, default=0, help="distinct git repositories (default 0: one per object)")
    parser.add_argument("--files", type=int, default=20, help="files per repository (default 20)")
    parser.add_argument("--window", type=float, default=70.0, help="steady-state window, seconds (> 60: 1 interval)")
    parser.add_argument("--samples", type=int, default=30, help="no-op reconciles timed alone per N")
    parser.add_argument("--profile", choices=("largest", "none"), default="largest", help="profile a restart")
    args = bench_args.parse(parser, argv)
    if args.window <= INTERVAL_SECONDS:
        parser.error(f"--window must cover one interval ({INTERVAL_SECONDS:g}s) and its jitter")
    return args


# -- repositories and the git server ---------------------------------------------------------------


def tree(name: str, files: int) -> dict[str, str]:
    """A small app as a tenant repository holds it: a kustomization and ConfigMaps, ~0.5 KB each."""
    body = {
        f"apps/{name}/config-{k:02d}.yaml": (
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-{k:02d}\n  labels:\n"
            f"    app.kubernetes.io/name: {name}\n    app.kubernetes.io/part-of: bench\ndata:\n"
            + "".join(f"  key{j}: value-{name}-{k}-{j}\n" for j in range(12))
        )
        for k in range(max(files - 1, 0))
    }
    listed = "".join(f"  - config-{k:02d}.yaml\n" for k in range(max(files - 1, 0)))
    body[f"apps/{name}/kustomization.yaml"] = f"apiVersion: kustomize.config.k8s.io/v1beta1\nresources:\n{listed}"
    return body


def make_repos(root: Path, scratch: Path, count: int, files: int) -> list[str]:
    """``count`` bare repositories ``app-NNNN.git`` under ``root``, each one commit of its own tree."""

    def make(index: int) -> str:
        name = f"app-{index:04d}"
        init_bare_repo(root / f"{name}.git", default_branch=BRANCH)
        with tempfile.TemporaryDirectory(dir=scratch) as work:
            repo = GitRepo(Path(work) / "w", branch=BRANCH)
            repo.commit(tree(name, files), message=f"{name}: initial")
            repo.push(root / f"{name}.git")
        return name

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(make, range(count)))


def serve_git(root: str) -> int:
    """``_serve-git ROOT``: the git server in a process of its own, so its CPU is not the benchmark's."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with GitHttpServer(Path(root)) as server:
        print(server.url, flush=True)
        stopping.wait()
    return 0


def start_git_server(root: Path, log: Path) -> tuple[Child, str]:
    child = Child([sys.executable, "-m", "bench.sources", "_serve-git", str(root)], log, stdout_pipe=True)
    line = child.stdout.readline().decode().strip()  # the child prints its URL once it listens
    if not line.startswith("http://"):
        child.stop()
        raise RuntimeError(f"git server did not start: {line!r}\n{child.log_tail()}")
    return child, line


# -- the controller process ------------------------------------------------------------------------


def profiled_controller(out: str, argv: list[str]) -> int:
    """``_profiled-controller OUT -- ARGS``: fluxwarden's CLI with one cProfile per thread, on thread CPU time.

    Each thread's clock is its own CPU clock read by its id (``bench.controller.thread_profiles``), so
    that waiting on git or the API costs nothing.
    """
    from fluxwarden.cli.main import main as fluxwarden_main

    def thread_cpu_timer(clock: int) -> Callable[[], float]:
        last = [0.0]

        def thread_cpu() -> float:
            with contextlib.suppress(OSError):  # the thread has exited: its clock is gone
                last[0] = time.clock_gettime(clock)
            return last[0]

        return thread_cpu

    with thread_profiles(out, thread_cpu_timer):
        return fluxwarden_main(argv)


def start_controller(
    kubeconfig: Path, storage: Path, log: Path, args: argparse.Namespace, profile_out: Path | None = None
) -> Controller:
    """``fluxwarden controllers run --controllers source`` in its own process, metrics and probes on."""
    cli = [
        "controllers", "run", "--kubeconfig", str(kubeconfig), "--controllers", "source",
        "--storage-path", str(storage), "--storage-addr", "127.0.0.1:0", "--concurrency", str(args.concurrency),
        "--enforce" if args.enforce else "--no-enforce",
    ]  # fmt: skip
    return Controller.launch(cli, log, module="bench.sources", profile_out=profile_out, request_timeout=10)


def scrape(controller: Controller, only_reconciles: bool = False) -> Metrics:
    """A scrape; ``only_reconciles`` asks for the one counter (``name[]``), which costs the controller little."""
    query = "?name[]=controller_runtime_reconcile_total" if only_reconciles else ""
    return Metrics.parse(controller.scrape(query), kind="GitRepository")


# -- objects and polling ---------------------------------------------------------------------------


def git_repository(name: str, url: str) -> bytes:
    obj = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"url": url, "interval": "1m", "ref": {"branch": BRANCH}},
    }
    return json.dumps(obj).encode()


def is_ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation") or not status.get("artifact"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def copy_costs(obj: dict[str, Any], rounds: int = 300) -> tuple[float, float]:
    """µs per ``copy.deepcopy`` and per ``json.loads(json.dumps())`` of one object (the prologue deep-copies)."""

    def per_call(call: Callable[[], object]) -> float:
        began = time.perf_counter()
        for _ in range(rounds):
            call()
        return (time.perf_counter() - began) / rounds * 1e6

    return per_call(lambda: copy.deepcopy(obj)), per_call(lambda: json.loads(json.dumps(obj)))


class GitRepositoryPoll(Poll):
    """Every GitRepository of the namespace, until each is Ready; the last failure seen of each."""

    def observe(self, name: str, obj: dict[str, Any], now: float) -> None:
        if name not in self.ready_at and self.done_when(obj):
            self.ready_at[name] = now - self.started
        elif (failure := ready_failure(obj)) is not None:
            self.failed[name] = failure


def resource_versions(api: Api) -> dict[str, str]:
    return listed_versions(api, GITREPOSITORIES.format(namespace=NAMESPACE))


# -- one N -----------------------------------------------------------------------------------------


def window_line(w: Window) -> str:
    return (
        f"controller {w.share(w.controller.own):.1f}% + its git {w.share(w.controller.children):.1f}%, "
        f"git server {w.share(w.git_server.total):.1f}%, apiserver {w.share(w.apiserver):.1f}%, "
        f"etcd {w.share(w.etcd):.1f}%, bench {w.share(w.bench):.1f}%, "
        f"others {w.share(w.others):.1f}% (of one core; {os.cpu_count()} cores)"
    )


@dataclass
class NoopTiming:
    """One no-op reconcile timed alone in this process: wall ms of run_once and of its parts, CPU ms."""

    run_once_ms: list[float]
    get_ms: list[float]
    ls_remote_ms: list[float]
    python_cpu_ms: float  # per run_once, this process's threads
    git_cpu_ms: float  # per run_once, the git processes it ran
    get_cpu_ms: float  # Python CPU of the GET alone
    ls_remote_python_cpu_ms: float  # Python CPU of running git ls-remote alone (spawn, pipes, temp dir)
    profile: str


@dataclass
class Result:
    n: int
    repos: int
    create_s: float
    first_ready_s: float
    median_ready_s: float
    all_ready_s: float
    failed: dict[str, str]
    lists: int
    ready_window: Window
    idle_rss_kib: int
    ready_hwm_kib: int
    peak_kib: int  # VmHWM after the steady window, before the scrape test
    scraped_peak_kib: int  # VmHWM after the scrape test
    end_rss_kib: int
    steady: Window
    steady_reconciles: float
    steady_errors: float
    steady_mean_reconcile_ms: float
    writes_in_window: int
    scrape_cpu_ms: float
    scrape_samples: int
    scrape_bytes: int
    restart_ready_s: float
    idle_cpu: float  # CPU seconds per second with no objects
    stop: tuple[int | None, float]
    restart_burst_s: float
    restart_cpu: Cpu
    restart_rss_kib: int
    object_bytes: int
    copy_us: tuple[float, float]  # copy.deepcopy and a JSON round trip of one object, µs
    managed_fields_bytes: int
    noop: NoopTiming | None = None
    profile: str = ""
    load: list[str] = field(default_factory=list)


def reconciles_after(controller: Controller, target: float, timeout: float, every: float) -> tuple[float, Metrics]:
    """Poll /metrics until ``target`` reconciles are counted; seconds waited and the last scrape."""
    began, deadline = time.monotonic(), time.monotonic() + timeout
    while True:
        controller.child.check_alive()
        with contextlib.suppress(OSError):
            metrics = scrape(controller, only_reconciles=True)
            if metrics.reconciles >= target:
                return time.monotonic() - began, metrics
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {target:g} reconciles after {timeout:.0f}s:\n{controller.child.log_tail()}")
        time.sleep(every)


def time_noops(kubeconfig: Path, storage: Path, names: list[str], urls: dict[str, str], profile: bool) -> NoopTiming:
    """run_once on Ready objects with the controller stopped: nothing else competes, and nothing is written."""
    from fluxwarden.controllers.runtime.events import EventRecorder
    from fluxwarden.controllers.runtime.kube import Kube
    from fluxwarden.controllers.runtime.metrics import ControllerMetrics
    from fluxwarden.controllers.runtime.prologue import Runtime, run_once
    from fluxwarden.controllers.source.api import GIT_REPOSITORY
    from fluxwarden.controllers.source.git import Credentials, Git
    from fluxwarden.controllers.source.gitrepository import GitRepositoryReconciler
    from fluxwarden.controllers.source.storage import Storage
    from fluxwarden.kubeclient import api_client

    api = api_client(str(kubeconfig))
    try:
        kube = Kube(api)
        reconciler = GitRepositoryReconciler(Storage(storage, "http://127.0.0.1:9"))
        runtime = Runtime(kube, EventRecorder(kube, "bench"), ControllerMetrics())

        def once(name: str) -> None:
            requeue = run_once(reconciler, runtime, NAMESPACE, name)
            if requeue.backoff or requeue.after is None or requeue.after < INTERVAL_SECONDS * 0.9:
                raise RuntimeError(f"{name}: not a successful no-op reconcile: {requeue}")

        def timed(call: Callable[[str], object]) -> list[float]:
            values = []
            for name in names:
                began = time.perf_counter()
                call(name)
                values.append((time.perf_counter() - began) * 1e3)
            return values

        for name in names[:3]:  # warm-up: connection pool, imports
            once(name)
        before = self_cpu()
        run_once_ms = timed(once)
        spent = self_cpu() - before
        before = self_cpu()
        get_ms = timed(lambda name: kube.get(GIT_REPOSITORY, NAMESPACE, name))
        get_cpu = self_cpu() - before
        before = self_cpu()
        ls_remote_ms = timed(lambda name: Git(urls[name], Credentials(), 60).ls_remote(f"refs/heads/{BRANCH}"))
        ls_remote_cpu = self_cpu() - before
        text = ""
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for name in names:
                once(name)
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative")
            stats.print_stats(22)
            text = out.getvalue()
        return NoopTiming(
            run_once_ms,
            get_ms,
            ls_remote_ms,
            spent.own / len(names) * 1e3,
            spent.children / len(names) * 1e3,
            get_cpu.own / len(names) * 1e3,
            ls_remote_cpu.own / len(names) * 1e3,
            text,
        )
    finally:
        api.close()


def read_profile(path: Path) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)
    return out.getvalue()


def run_count(n: int, args: argparse.Namespace, env: Environment) -> Result:
    """One N on a fresh control plane and a fresh controller; see the module docstring for the phases."""
    repos = env.repo_names[: (args.repos or n)]
    names = [f"repo-{i:04d}" for i in range(n)]
    urls = {name: f"{env.git_url}/{repos[i % len(repos)]}.git" for i, name in enumerate(names)}
    work = Path(tempfile.mkdtemp(prefix=f"n{n}-", dir=env.work))
    load = [f"start {load_average()}"]
    with cluster(env.bins, work) as running:
        plane = running.plane
        running.kubectl("create", "namespace", NAMESPACE)
        assert plane.apiserver.pid is not None and plane.etcd.pid is not None
        apiserver, etcd = plane.apiserver.pid, plane.etcd.pid
        storage = work / "storage"
        api, poll_api = Api(plane), Api(plane)
        controller = start_controller(plane.kubeconfig, storage, work / "controller.log", args)
        stack = contextlib.ExitStack()
        stack.callback(api.close)
        stack.callback(poll_api.close)
        stopped: list[tuple[int | None, float]] = []
        stack.callback(lambda: stopped.append(controller.stop()))
        with stack:
            controller.wait_ready()
            time.sleep(1.0)  # let start-up settle before reading the idle RSS and CPU
            idle_rss = memory_kib(controller.pid)["VmRSS"]
            idle_cpu = controller.idle_cpu(args.idle)

            # 1. create N, wait until all are Ready
            timeout = 60.0 + 1.0 * n
            collection = GITREPOSITORIES.format(namespace=NAMESPACE)
            poll = GitRepositoryPoll(
                lambda: poll_api.items(collection), set(names), is_ready, min(1.0, max(0.2, n / 500)),
                time.monotonic() + timeout,
            )  # fmt: skip
            before = Snapshot.take(controller.pid, apiserver, etcd, git_server=env.git_pid)
            poll.start()
            for name in names:
                status, data, _ = api.post(collection, git_repository(name, urls[name]))
                if status != 201:
                    raise RuntimeError(f"create {name}: HTTP {status}: {data[:300]!r}")
            create_s = time.monotonic() - poll.started
            ready_times = poll.wait(controller.child, f"Ready after {timeout:.0f}s")
            after = Snapshot.take(controller.pid, apiserver, etcd, git_server=env.git_pid)
            ready_hwm = memory_kib(controller.pid)["VmHWM"]
            object_bytes = deep_size(poll.last_items[0])
            copy_us = copy_costs(poll.last_items[0])
            managed_fields_bytes = deep_size(poll.last_items[0]["metadata"].get("managedFields") or [])
            load.append(f"all Ready {load_average()}")

            # 2. steady state: no-op reconciles at the 1-minute interval
            time.sleep(args.settle)
            versions = resource_versions(api)
            first = scrape(controller)
            start = Snapshot.take(controller.pid, apiserver, etcd, git_server=env.git_pid)
            controller.watch(args.window)
            end = Snapshot.take(controller.pid, apiserver, etcd, git_server=env.git_pid)
            last = scrape(controller)
            before_scrapes = memory_kib(controller.pid)
            written = changed(versions, resource_versions(api))
            load.append(f"after window {load_average()}")

            # what one Prometheus scrape costs the controller (it grows with the objects' series)
            scrapes, cpu_before = 20, cpu_of(controller.pid).own
            for _ in range(scrapes):
                scraped = scrape(controller)
            scrape_cpu_ms = (cpu_of(controller.pid).own - cpu_before) / scrapes * 1e3
            memory = memory_kib(controller.pid)
        # 3. restart on the same storage: N no-op reconciles at once
        restart_poll = min(1.0, max(0.1, n / 500))
        restart = start_controller(plane.kubeconfig, storage, work / "restart.log", args)
        try:
            restart_ready = restart.wait_ready()
            at_ready = cpu_of(restart.pid)
            burst_s, _ = reconciles_after(restart, n, 60.0 + n, every=restart_poll)
            restart_cpu = cpu_of(restart.pid) - at_ready
            restart_rss = memory_kib(restart.pid)["VmHWM"]
        finally:
            restart.stop()
        profile = ""
        if args.profile == "largest" and n == max(args.count_list):
            out = work / "controller.prof"
            profiled = start_controller(plane.kubeconfig, storage, work / "profiled.log", args, profile_out=out)
            try:
                profiled.wait_ready()
                reconciles_after(profiled, n, 120.0 + 2 * n, every=1.0)
            finally:
                profiled.stop()
            profile = read_profile(out) if out.exists() else "(no profile written)"
        sample_names = names[: min(args.samples, n)]
        noop = time_noops(plane.kubeconfig, storage, sample_names, urls, profile=n == max(args.count_list))
    return Result(
        n=n,
        repos=len(repos),
        create_s=create_s,
        first_ready_s=ready_times[0],
        median_ready_s=statistics.median(ready_times),
        all_ready_s=ready_times[-1],
        failed=poll.failed,
        lists=poll.lists,
        ready_window=Window.between(before, after),
        idle_rss_kib=idle_rss,
        ready_hwm_kib=ready_hwm,
        peak_kib=before_scrapes["VmHWM"],
        scraped_peak_kib=memory["VmHWM"],
        end_rss_kib=before_scrapes["VmRSS"],
        steady=Window.between(start, end),
        steady_reconciles=last.reconciles - first.reconciles,
        steady_errors=last.errors - first.errors,
        steady_mean_reconcile_ms=last.mean_reconcile_ms_since(first),
        writes_in_window=written,
        scrape_cpu_ms=scrape_cpu_ms,
        scrape_samples=scraped.samples,
        scrape_bytes=scraped.size,
        restart_ready_s=restart_ready,
        idle_cpu=idle_cpu,
        stop=stopped[0],
        restart_burst_s=burst_s,
        restart_cpu=restart_cpu,
        restart_rss_kib=restart_rss,
        object_bytes=object_bytes,
        copy_us=copy_us,
        managed_fields_bytes=managed_fields_bytes,
        noop=noop,
        profile=profile,
        load=load,
    )


# -- reporting -------------------------------------------------------------------------------------


def report_one(r: Result) -> None:
    print(f"\n== N = {r.n} GitRepositories over {r.repos} repositories (load avg: {'; '.join(r.load)})")
    print(
        f"  create {r.create_s:.2f}s; Ready: first {r.first_ready_s:.1f}s, median {r.median_ready_s:.1f}s, "
        f"all {r.all_ready_s:.1f}s ({r.n / r.all_ready_s:.1f} objects/s; {r.lists} list calls)"
    )
    if r.failed:
        print(f"  {len(r.failed)} objects were seen failing on the way, e.g. {next(iter(r.failed.items()))}")
    w = r.ready_window
    print(
        f"  until all Ready: controller CPU {w.controller.own / r.n * 1e3:.0f} ms/object + its git "
        f"{w.controller.children / r.n * 1e3:.0f} ms/object; {window_line(w)}"
    )
    print(
        f"  RSS: idle {r.idle_rss_kib / MIB:.1f} MiB, at all Ready {r.ready_hwm_kib / MIB:.1f} (VmHWM), after the "
        f"window {r.peak_kib / MIB:.1f} (VmHWM; VmRSS {r.end_rss_kib / MIB:.1f}), after 20 more /metrics scrapes "
        f"{r.scraped_peak_kib / MIB:.1f} (VmHWM)"
    )
    print(
        f"  one object as cached: {r.object_bytes / 1024:.1f} KiB of Python objects "
        f"({r.managed_fields_bytes / 1024:.1f} KiB managedFields); copy.deepcopy {r.copy_us[0]:.0f} µs, "
        f"JSON round trip {r.copy_us[1]:.0f} µs"
    )
    s = r.steady
    expected = r.n / INTERVAL_SECONDS
    per = s.controller.total / max(r.steady_reconciles, 1) * 1e3
    print(
        f"  steady {s.seconds:.0f}s: {r.steady_reconciles:.0f} reconciles ({r.steady_reconciles / s.seconds:.2f}/s; "
        f"N/60s = {expected:.2f}/s), {r.steady_errors:.0f} errors, {r.writes_in_window} objects written; "
        f"mean reconcile() {r.steady_mean_reconcile_ms:.1f} ms"
    )
    print(
        f"    controller {s.controller.total / s.seconds * 60:.2f} CPU s/min = {s.share(s.controller.total):.2f}% "
        f"of a core ({s.share(s.controller.own):.2f}% Python + {s.share(s.controller.children):.2f}% git); "
        f"{per:.1f} ms CPU per no-op"
    )
    print(f"    {window_line(s)}")
    print(f"    the same controller idle, before the first object: {100 * r.idle_cpu:.2f}% of a core")
    print(
        f"  one /metrics scrape: {r.scrape_cpu_ms:.1f} ms controller CPU, {r.scrape_samples} samples, "
        f"{r.scrape_bytes / 1024:.0f} KiB"
    )
    every = min(1.0, max(0.1, r.n / 500))
    print(
        f"  restart: ready in {r.restart_ready_s:.1f}s, then {r.n} no-op reconciles in {r.restart_burst_s:.1f}s "
        f"(metrics polled every {every:g}s), {r.restart_cpu.own / r.n * 1e3:.1f} ms Python + "
        f"{r.restart_cpu.children / r.n * 1e3:.1f} ms git CPU each; peak RSS {r.restart_rss_kib / MIB:.1f} MiB"
    )
    print(f"  SIGTERM to exit of the controller: {r.stop[1]:.1f}s (exit code {r.stop[0]})")
    if r.noop is not None:
        t = r.noop
        print(
            f"  one no-op reconcile alone ({len(t.run_once_ms)} samples, controller stopped): run_once p50 "
            f"{pct(t.run_once_ms, 50):.1f} ms p90 {pct(t.run_once_ms, 90):.1f} ms; parts alone: GET p50 "
            f"{pct(t.get_ms, 50):.1f} ms, git ls-remote p50 {pct(t.ls_remote_ms, 50):.1f} ms; CPU "
            f"{t.python_cpu_ms:.1f} ms Python + {t.git_cpu_ms:.1f} ms git processes (Python CPU of the parts alone: "
            f"GET {t.get_cpu_ms:.2f} ms, running ls-remote {t.ls_remote_python_cpu_ms:.2f} ms)"
        )


def report_table(results: list[Result]) -> None:
    base = results[0]

    def ratio(value: float, n: int, base_value: float) -> str:
        if base_value <= 0:
            return "-"
        return f"{(value / n) / (base_value / base.n):.2f}"

    def marginal(value: float, n: int, base_value: float) -> str:
        return f"{(value - base_value) / (n - base.n):.0f}" if n > base.n else "-"

    print(
        "\nN      ready s  peak RSS MiB  KiB/obj  restart RSS MiB  KiB/obj  steady CPU %core  (idle)  no-op/s"
        "  CPU ms/no-op  scrape ms  restart s"
    )
    for r in results:
        s = r.steady
        per = s.controller.total / max(r.steady_reconciles, 1) * 1e3
        print(
            f"{r.n:<6} {r.all_ready_s:>7.1f}  {r.peak_kib / MIB:>12.1f}  {marginal(r.peak_kib, r.n, base.peak_kib):>7}"
            f"  {r.restart_rss_kib / MIB:>15.1f}  {marginal(r.restart_rss_kib, r.n, base.restart_rss_kib):>7}"
            f"  {s.share(s.controller.total):>16.2f}  {100 * r.idle_cpu:>6.2f}  {r.steady_reconciles / s.seconds:>7.2f}"
            f"  {per:>12.1f}  {r.scrape_cpu_ms:>9.1f}  {r.restart_burst_s:>9.1f}"
        )
    print("(KiB/obj: marginal, (value - value at the first N) / (N - first N); restart RSS: VmHWM of a controller")
    print(" started on the N Ready objects: caches and metrics full, no checkout done)")
    print(f"\nper object, relative to N={base.n} (1.00 = linear; > 1 grows faster than N, < 1 slower)")
    print("N      ready time  RSS above idle  steady CPU  steady CPU above idle  scrape CPU  restart time")
    for r in results:
        b = base
        above = r.steady.controller.total / r.steady.seconds - r.idle_cpu
        base_above = b.steady.controller.total / b.steady.seconds - b.idle_cpu
        print(
            f"{r.n:<6} {ratio(r.all_ready_s, r.n, b.all_ready_s):>10}"
            f"  {ratio(r.peak_kib - r.idle_rss_kib, r.n, b.peak_kib - b.idle_rss_kib):>14}"
            f"  {ratio(r.steady.controller.total, r.n, b.steady.controller.total):>10}"
            f"  {ratio(above, r.n, base_above):>21}  {ratio(r.scrape_cpu_ms, r.n, b.scrape_cpu_ms):>10}"
            f"  {ratio(r.restart_burst_s, r.n, b.restart_burst_s):>12}"
        )


# -- main ------------------------------------------------------------------------------------------


@dataclass
class Environment:
    bins: Path
    work: Path
    git_url: str
    git_pid: int
    repo_names: list[str]


@contextlib.contextmanager
def environment(args: argparse.Namespace) -> Iterator[Environment]:
    """Binaries, a work dir, the repositories and their git server; all gone on the way out."""
    bins = binary_dir()
    with tempfile.TemporaryDirectory(prefix="fluxwarden-bench-sources-") as tmp:
        work = Path(tmp)
        count = args.repos or max(args.count_list)
        began = time.monotonic()
        repo_names = make_repos(work / "repos", work, count, args.files)
        print(f"{count} repositories of {args.files} files made in {time.monotonic() - began:.1f}s", flush=True)
        server, url = start_git_server(work / "repos", work / "git-server.log")
        try:
            yield Environment(bins, work, url, server.pid, repo_names)
        finally:
            server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bucket"]:
        from bench.sources_bucket import main as bucket_main

        return bucket_main(argv[1:])
    if argv[:1] == ["_serve-git"] and len(argv) == 2:
        return serve_git(argv[1])
    if argv[:1] == ["_profiled-controller"] and len(argv) >= 3 and argv[2] == "--":
        return profiled_controller(argv[1], argv[3:])
    args = parse_args(argv)
    if args.code != "worktree":
        return rerun_from_copy("bench.sources", argv, args)
    arm_deadline("bench.sources", args.deadline)
    import fluxwarden

    print(
        f"bench.sources: {os.cpu_count()} cores, load avg {load_average()}; counts {args.count_list}, interval 1m, "
        f"window {args.window:g}s; controller = `fluxwarden controllers run --controllers source --concurrency "
        f"{args.concurrency}` "
        f"from {Path(fluxwarden.__file__).parent}",
        flush=True,
    )
    results: list[Result] = []
    try:
        with environment(args) as env:
            for n in args.count_list:
                began = time.monotonic()
                results.append(run_count(n, args, env))
                report_one(results[-1])
                print(f"  (N={n} took {time.monotonic() - began:.0f}s in all)", flush=True)
    finally:
        signal.alarm(0)
    report_table(results)
    largest = results[-1]
    if largest.noop is not None and largest.noop.profile:
        print(f"\ncProfile of {len(largest.noop.run_once_ms)} no-op run_once calls in this process (wall clock):")
        print(largest.noop.profile)
    if largest.profile:
        print(f"\ncProfile of the controller restarting on N={largest.n} (thread CPU clock, all threads):")
        print(largest.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
