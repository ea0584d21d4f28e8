"""How the helm controller copes with N tenant HelmReleases of one HelmRepository, on a real API server.

``python -m bench.helm [--sizes 10,50,200]``. For each N, on a fresh control plane (etcd +
kube-apiserver, Flux's CRDs; ``bench/cluster.py``), with ``fluxwarden controllers run --controllers
source,helm`` in a process of its own (so RSS and CPU are the controller's and its helm children's)
and its default tenancy settings (enforced: every helm call runs as
``system:serviceaccount:<namespace>:flux-applier``):

- a chart ``bench-app`` of 10 ConfigMaps, packaged by the real ``helm package`` and indexed by
  ``helm repo index`` (``tests/support/helm_repo.py``), served over HTTPS with a private CA
  (``tests/support/tls.py``) from a thread of this process;
- in the configuration namespace ``bench-config``: the HelmRepository ``charts`` (``certSecretRef``
  holds the CA), the ServiceAccount ``flux-applier``, and N HelmReleases ``app-NNNN`` (interval
  10m, chart ``bench-app`` 1.0.0, a value of their own), each with ``targetNamespace:
  bench-t-NNNN``, where a RoleBinding lets ``bench-config:flux-applier`` write, and nowhere else
  but its own namespace.

Measured, per N:

1. time from the first create until every HelmRelease is Ready at its generation (one list call per
   poll); the CPU of the controller (its threads; its children: the helm processes it reaped, with
   theirs: the post-renderer plugin and its kustomize), the API server, etcd and this process; the
   helm processes started, by subcommand; the ConfigMaps (10 N) and release Secrets (N) that exist;
   when each HelmChart was Ready with an artifact (a second poll: the source controller's share);
   every release at revision 1 with its 10 ConfigMaps in its target namespace (``check_work``);
2. the controller's RSS before the first HelmRelease, its own peak (``VmHWM``), and the peak of the
   whole process tree (controller + children at once), sampled every 20 ms from ``/proc``;
3. no-op reconciles (``--noop-rounds``): ``reconcile.fluxcd.io/requestedAt`` set on all N, then a
   wait until every ``status.lastHandledReconcileAt`` matches: seconds, helm processes started
   (target 0), controller CPU per no-op (gross and above the idle controller), API requests per
   no-op (``apiserver_request_total``, discovery included; this benchmark's own patches, lists and
   scrape taken out), and that no ConfigMap or release Secret was written;
3b. (``--upgrade``, the default) a new ``values.tenant`` on all N: an upgrade each, the chart
   unchanged, so no source work; time until all are Ready at revision 2, CPU per upgrade, the tree
   peak, and every release at revision 2 with one record per revision;
4. once, after the largest N, with the controller stopped: helm alone against the same cluster
   (``bench/helm_alone.py``), so the report can say whether process start and discovery dominate.

``--against flux``: for each N, the same workload on a second fresh control plane with upstream Flux's
``helm-controller`` (the version ``tests/flux/go.mod`` pins, built by ``tests/flux/controllers.sh``;
``$FLUXWARDEN_FLUX_CONTROLLERS`` names its directory; a missing binary stops the run) with Flux's
multi-tenancy lockdown (``--no-cross-namespace-refs=true --default-service-account=flux-applier``),
``--concurrent`` = ``--concurrency``, no leader election. Both sides then run fluxwarden's source
controller in a process of its own (``--controllers source``, serving the HelmChart artifacts), and
the measured process is the helm controller alone (fluxwarden: ``--controllers helm``), so the
layout and the source work are the same. The order alternates per N (A B, B A, ...). The report
ends with both rows per N and fluxwarden/Flux per metric, and checks that both did the same work
(every release at revision 1, ``files`` ConfigMaps in each target namespace, no-ops handled and
nothing written). Flux stores its releases in the HelmRelease's namespace, fluxwarden in the target's.

Helm processes are counted exactly: ``helm`` on the controller's PATH is a two-line shell script
that appends its pid and first argument to a log, then ``exec``\\ s the pinned helm (same pid, same
argv[0], ~2 ms). The workload (``bench/helm_workload.py``) takes a namespace prefix, N and the
repository URL, so that ``--against flux`` runs Flux's helm-controller on the same objects; the
process-tree sampler is ``bench/process_tree.py``. Everything it starts is stopped and every
temporary directory removed on the way out; the whole run is bounded by ``--deadline`` and every
wait by its own timeout.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shlex
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import args as bench_args
from bench import flux
from bench.cluster import (
    DISCOVERY,
    KubeApi,
    api_requests,
    arm_deadline,
    cluster,
    cpu_of,
    load_average,
    memory_kib,
    rerun_from_copy,
)
from bench.controller import (
    Controller,
    Metrics,
    Snapshot,
    Window,
    changed,
    controller_env,
    controllers_run,
    request_reconcile,
    resource_versions,
    start_source,
)
from bench.helm_alone import HelmAlone, time_helm
from bench.helm_workload import (
    APPLIER,
    PREFIX,
    RELEASE_SECRETS,
    Work,
    Workload,
    at_revision,
    change_values,
    chart_poll,
    chart_repository,
    check_work,
    config_maps,
    create_releases,
    events,
    field_managers,
    is_released,
    release_poll,
    set_up_workload,
    wait_repository_ready,
)
from bench.process_tree import Tree, TreeSampler
from bench.stats import pct
from tests.support.binaries import binary_dir
from tests.support.control_plane import ControlPlane

CONTROLLER_NAME = "helm-controller"  # the manager's name for the HelmRelease controller (metrics label)
FLUX_CONTROLLER_NAME = "helmrelease"  # Flux's helm-controller names its controller-runtime controller so
MIB = 1024.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.helm",
        description=__doc__.splitlines()[0],
        parents=[bench_args.common("10,50,200", "HelmReleases")],
    )
    parser.add_argument("--sizes", dest="counts", default=argparse.SUPPRESS, help="the same as --counts")
    parser.add_argument("--files", type=int, default=10, help="ConfigMaps in the chart (default 10)")
    parser.add_argument("--noop-rounds", type=int, default=2, help="requested no-op reconciles of all N, one by one")
    parser.add_argument("--samples", type=int, default=5, help="helm calls timed alone, per kind (largest N)")
    bench_args.switch(
        parser, "--alone", True, "after the largest N, time each helm call alone on the same cluster (helm_alone.py)"
    )
    bench_args.switch(
        parser, "--upgrade", True, "after the no-ops, a values change on all N (one upgrade each, no source work)"
    )
    parser.add_argument(
        "--against",
        choices=["flux"],
        help="flux: for each N, also run upstream Flux's helm-controller (tests/flux/controllers.sh builds it; "
        "$FLUXWARDEN_FLUX_CONTROLLERS names its directory) on the same workload; both sides then run fluxwarden's "
        "source controller in a process of its own, and the report gives fluxwarden/Flux ratios",
    )
    args = bench_args.parse(parser, argv)
    if args.noop_rounds < 1 or args.samples < 1:
        parser.error("--noop-rounds and --samples must be at least 1")
    return args


# -- helm processes: counted exactly, and sampled for memory ---------------------------------------


class HelmCounter:
    """``helm`` for the controller's PATH: logs ``<pid> <first argument>``, then ``exec``\\ s the real helm
    under the same ``argv[0]``, so helm sees the command line the controller gave it (the controller runs
    helm through a link named ``helm-controller``; helm v4's own ``main`` still sets its server-side
    apply field manager to ``helm``, and the report shows the managers it wrote).

    The log is appended a line at a time (O_APPEND, far below PIPE_BUF), so concurrent helm calls do
    not interleave. Only the first argument is kept: the rest may hold names a log need not carry.
    """

    def __init__(self, directory: Path, real: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.log = directory, directory / "calls.log"
        self.log.touch()
        script = directory / "helm"
        script.write_text(
            "#!/bin/bash\n"
            f'printf \'%s %s\\n\' "$$" "${{1:-}}" >> {shlex.quote(str(self.log))}\n'
            f'exec -a "$0" {shlex.quote(str(real))} "$@"\n'  # argv[0] as the controller chose it
        )
        script.chmod(0o755)

    def calls(self) -> list[str]:
        """The first argument of every helm call so far, in order."""
        return [line.partition(" ")[2] for line in self.log.read_text().splitlines()]

    def commands(self) -> dict[int, str]:
        """pid -> first argument, of every helm call so far."""
        return {
            int(pid): command for pid, _, command in (line.partition(" ") for line in self.log.read_text().splitlines())
        }

    def since(self, mark: int) -> collections.Counter[str]:
        return collections.Counter(self.calls()[mark:])


# -- the controller process ------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """Whose helm controller is measured: fluxwarden's, or upstream Flux's ``helm-controller`` binary.

    ``split``: fluxwarden's source controller runs in a process of its own (``--controllers source``),
    and the helm controller alone in the measured one; always so for Flux, and for fluxwarden when
    compared with Flux, so that both sides have the same source process and the same layout.
    """

    name: str
    flux_binary: Path | None = None
    split: bool = False

    @property
    def metrics_controller(self) -> str:
        return FLUX_CONTROLLER_NAME if self.flux_binary else CONTROLLER_NAME


def start_controller(
    plane: ControlPlane, work: Path, args: argparse.Namespace, helm: HelmCounter, side: Side
) -> Controller:
    """The measured process: ``fluxwarden controllers run --controllers source,helm`` (``helm`` when split),
    the counting helm first on its PATH; or Flux's helm-controller with Flux's multi-tenancy lockdown."""
    if side.flux_binary is None:
        cli = controllers_run(plane, work, args, "helm" if side.split else "source,helm")
        tmp = work / "controller-tmp"  # helm's values files and caches, removed with the work dir
        tmp.mkdir(parents=True, exist_ok=True)
        env = controller_env(tmp, helm.directory)  # the counting helm first on PATH
        return Controller.launch(cli, work / "controller.log", module="bench.helm", env=env, request_timeout=30)
    return Controller.upstream(side.flux_binary, flux.lockdown_flags(args), plane.kubeconfig, work)


def scrape(controller: Controller, side: Side) -> Metrics:
    return controller.reconcile_metrics("HelmRelease", side.metrics_controller)


# -- one N -----------------------------------------------------------------------------------------


@dataclass
class NoOp:
    """One requested reconcile of all N, where nothing changed."""

    seconds: float
    window: Window
    reconciles: float
    errors: float
    mean_ms: float
    helm: collections.Counter[str]  # helm processes started, by first argument (target: none)
    tree: Tree
    requests: collections.Counter[str]  # the controller's API requests (this benchmark's taken out)
    config_map_writes: int
    secret_writes: int
    events: int
    source_cpu: float  # CPU seconds of the source process, when split (Flux fetches the chart every reconcile)

    def cpu_ms(self, n: int, idle_cpu: float) -> tuple[float, float]:
        """Controller CPU per no-op reconcile: gross, and above the idle controller."""
        total = self.window.controller.total
        return total / n * 1e3, max(0.0, total - idle_cpu * self.window.seconds) / n * 1e3


@dataclass
class Upgrade:
    """A values change on all N: an upgrade each to revision 2, the chart unchanged (no source work)."""

    patch_s: float
    times: list[float]
    window: Window
    reconciles: float
    mean_ms: float
    helm: collections.Counter[str]
    tree: Tree
    source_cpu: float
    work: Work


@dataclass
class Result:
    side: str
    n: int
    setup_s: float
    create_s: float
    ready_times: list[float]
    chart_times: list[float]  # when each HelmChart was Ready with an artifact (the source controller's part)
    failed: dict[str, str]
    lists: int
    ready: Window
    ready_reconciles: float
    ready_mean_ms: float  # mean time in reconcile() until all Ready (gotk_reconcile_duration_seconds, both sides)
    helm_calls: collections.Counter[str]
    helm_ms: dict[str, list[float]]  # lifetimes of the helm processes until all Ready, by first argument
    unlogged: collections.Counter[str]  # other descendants seen until all Ready, by name
    tree: Tree
    config_maps: int
    release_secrets: int
    managers: list[str]  # field managers of one rendered ConfigMap (helm names them after its argv[0])
    idle_rss_kib: int
    idle_cpu: float
    ready_hwm_kib: int
    noops: list[NoOp]
    end_hwm_kib: int
    events: int
    work_ready: Work | None = None  # what the releases left, at all Ready and after the no-ops
    work_end: Work | None = None
    source_ready_cpu: float = 0.0  # the source process (split only): CPU seconds until all Ready, VmHWM
    source_hwm_kib: int = 0
    upgrade: Upgrade | None = None
    alone: HelmAlone | None = None  # helm timed alone (the largest N)
    stop: tuple[int | None, float] = (None, 0.0)
    load: list[str] = field(default_factory=list)

    @property
    def all_ready_s(self) -> float:
        return self.ready_times[-1]


@dataclass(frozen=True)
class Rig:
    """What a round works with: ``api`` (``poll_api`` for its release poll), the workload, the controller
    measured, the processes a Window counts, the helm shim, the side and its own source-controller, if split."""

    api: KubeApi
    poll_api: KubeApi
    workload: Workload
    controller: Controller
    pids: tuple[int, int, int]
    helm: HelmCounter
    side: Side
    source: Controller | None

    def source_cpu(self) -> float:
        """The split source-controller's CPU seconds so far; 0 without one."""
        return cpu_of(self.source.pid).total if self.source is not None else 0.0


def noop_round(rig: Rig, token: str) -> NoOp:
    """requestedAt = ``token`` on all N, until every lastHandledReconcileAt is ``token``."""
    api, workload, controller, pids, helm, side = rig.api, rig.workload, rig.controller, rig.pids, rig.helm, rig.side
    n = workload.n
    maps, secrets = config_maps(api, workload), resource_versions(api, RELEASE_SECRETS)
    events_before = events(api, workload)
    first, mark = scrape(controller, side), len(helm.calls())
    requests_before = api_requests(api, discovery=True)  # discovery too: a Go client may re-discover per reconcile
    source_before = rig.source_cpu()

    def handled(obj: dict[str, Any]) -> bool:
        return (obj.get("status") or {}).get("lastHandledReconcileAt") == token

    poll = release_poll(rig.poll_api, workload, handled, 120.0 + 1.0 * n)
    start = Snapshot.take(*pids)
    with TreeSampler(controller.pid) as tree:
        poll.start()
        request_reconcile(api, workload.collection, workload.names, token)
        seconds = poll.wait(controller.child, f"lastHandledReconcileAt {token}")[-1]
    end = Snapshot.take(*pids)
    source_cpu = rig.source_cpu() - source_before
    requests = api_requests(api, discovery=True) - requests_before
    ours = collections.Counter({"PATCH helmreleases": n, "LIST helmreleases": poll.lists, DISCOVERY: 1})
    last = scrape(controller, side)
    return NoOp(
        seconds=seconds,
        window=Window.between(start, end),
        reconciles=last.reconciles - first.reconciles,
        errors=last.errors - first.errors,
        mean_ms=last.mean_reconcile_ms_since(first),
        helm=helm.since(mark),
        tree=tree,
        requests=requests - ours,
        config_map_writes=changed(maps, config_maps(api, workload)),
        secret_writes=changed(secrets, resource_versions(api, RELEASE_SECRETS)),
        events=events(api, workload) - events_before,
        source_cpu=source_cpu,
    )


def upgrade_round(rig: Rig, files: int) -> Upgrade:
    """``values.tenant`` changed on all N, until every HelmRelease is Ready at its generation and revision 2."""
    api, workload, controller, pids, helm, side = rig.api, rig.workload, rig.controller, rig.pids, rig.helm, rig.side
    first, mark = scrape(controller, side), len(helm.calls())

    def upgraded(obj: dict[str, Any]) -> bool:
        return is_released(obj) and at_revision(obj, 2)

    poll = release_poll(rig.poll_api, workload, upgraded, 180.0 + 3.0 * workload.n)
    source_before = rig.source_cpu()
    start = Snapshot.take(*pids)
    with TreeSampler(controller.pid) as tree:
        poll.start()
        patch_s = change_values(api, workload, "-v2")
        times = poll.wait(controller.child, "Ready at revision 2 after a values change")
    end = Snapshot.take(*pids)
    last = scrape(controller, side)
    return Upgrade(
        patch_s=patch_s,
        times=times,
        window=Window.between(start, end),
        reconciles=last.reconciles - first.reconciles,
        mean_ms=last.mean_reconcile_ms_since(first),
        helm=helm.since(mark),
        tree=tree,
        source_cpu=rig.source_cpu() - source_before,
        work=check_work(api, workload, files, revision=2),
    )


def run_count(n: int, args: argparse.Namespace, env: Environment, side: Side) -> Result:
    """One N on a fresh control plane and controller; see the module docstring for the phases."""
    load = [f"start {load_average()}"]
    work = Path(tempfile.mkdtemp(prefix=f"n{n}-{side.name}-", dir=env.work))
    workload = Workload(PREFIX, n, env.repo_url, env.ca_pem)
    helm = HelmCounter(work / "helm-shim", binary_dir() / "helm")
    with cluster(env.bins, work) as running:
        plane = running.plane
        assert plane.apiserver.pid is not None and plane.etcd.pid is not None
        api, poll_api, chart_api = (KubeApi(plane, timeout=120) for _ in range(3))
        stopped: list[tuple[int | None, float]] = []
        with contextlib.ExitStack() as stack:
            stack.callback(api.close)
            stack.callback(poll_api.close)
            stack.callback(chart_api.close)
            setup_s = set_up_workload(api, workload)
            source = start_source(plane, work / "source", args, "bench.helm") if side.split else None
            if source is not None:
                stack.callback(source.stop)
                source.wait_ready()
            controller = start_controller(plane, work, args, helm, side)
            stack.callback(lambda: stopped.append(controller.stop()))
            pids = (controller.pid, plane.apiserver.pid, plane.etcd.pid)
            rig = Rig(api, poll_api, workload, controller, pids, helm, side, source)
            controller.wait_ready()
            wait_repository_ready(api, workload)
            time.sleep(args.settle)
            idle_rss = memory_kib(controller.pid)["VmRSS"]
            idle_cpu = controller.idle_cpu(args.idle)

            # 1. create N, until all are Ready
            m0, mark = scrape(controller, side), len(helm.calls())
            poll = release_poll(poll_api, workload, is_released, 180.0 + 3.0 * n)
            charts = chart_poll(chart_api, workload, 180.0 + 3.0 * n)
            source_before = rig.source_cpu()
            before = Snapshot.take(*pids)
            with TreeSampler(controller.pid) as tree:
                poll.start()
                charts.start()
                create_s = create_releases(api, workload)
                ready_times = poll.wait(controller.child, "Ready after create")
                chart_times = charts.wait(controller.child, "HelmCharts Ready after create")
            after = Snapshot.take(*pids)
            source_ready_cpu = rig.source_cpu() - source_before
            ready_hwm = memory_kib(controller.pid)["VmHWM"]
            m1, helm_calls = scrape(controller, side), helm.since(mark)
            load.append(f"all Ready {load_average()}")
            maps = config_maps(api, workload)
            secrets = api.items(RELEASE_SECRETS)
            managers = field_managers(api, f"/api/v1/namespaces/{workload.target_namespace(0)}/configmaps/config-00")
            events_ready = events(api, workload)
            work_ready = check_work(api, workload, args.files)

            # 2. requested reconciles where nothing changed
            noops = []
            for round_ in range(args.noop_rounds):
                time.sleep(args.settle)
                token = f"bench-noop-{round_}"
                noops.append(noop_round(rig, token))
            load.append(f"after no-ops {load_average()}")
            work_end = check_work(api, workload, args.files)
            upgrade = None
            if args.upgrade:  # 3. a values change on all N: the helm controller's work alone
                time.sleep(args.settle)
                upgrade = upgrade_round(rig, args.files)
                load.append(f"after the upgrade {load_average()}")
            end_hwm = memory_kib(controller.pid)["VmHWM"]
            source_hwm = memory_kib(source.pid)["VmHWM"] if source is not None else 0
        alone = None
        last = n == args.count_list[-1]
        if args.alone and last and side.flux_binary is None:  # stopped: helm alone on the same cluster
            meta: dict[str, Any] = secrets[0]["metadata"] if secrets else {}
            release = (str(meta.get("namespace", "")), str((meta.get("labels") or {}).get("name", "")))
            alone = time_helm(plane, work, env.archive, release, args.samples)
    return Result(
        side=side.name,
        n=n,
        setup_s=setup_s,
        create_s=create_s,
        ready_times=ready_times,
        chart_times=chart_times,
        failed=poll.failed,
        lists=poll.lists,
        ready=Window.between(before, after),
        ready_reconciles=m1.reconciles - m0.reconciles,
        ready_mean_ms=m1.mean_reconcile_ms_since(m0),
        helm_calls=helm_calls,
        helm_ms=tree.lifetimes_ms(helm.commands()),
        unlogged=tree.unlogged(helm.commands()),
        tree=tree,
        config_maps=len(maps),
        release_secrets=len(secrets),
        managers=managers,
        idle_rss_kib=idle_rss,
        idle_cpu=idle_cpu,
        ready_hwm_kib=ready_hwm,
        noops=noops,
        end_hwm_kib=end_hwm,
        events=events_ready,
        work_ready=work_ready,
        work_end=work_end,
        source_ready_cpu=source_ready_cpu,
        source_hwm_kib=source_hwm,
        upgrade=upgrade,
        alone=alone,
        stop=stopped[0] if stopped else (None, 0.0),
        load=load,
    )


# -- reporting -------------------------------------------------------------------------------------


def window_line(w: Window, side: str = "fluxwarden") -> str:
    c = w.controller
    own, children = (
        ("Go", "children: none expected") if side == "flux" else ("Python", "children: helm and its post-renderer")
    )
    return (
        f"controller {w.share(c.total):.0f}% ({w.share(c.own):.0f}% {own} + {w.share(c.children):.0f}% {children}), "
        f"apiserver {w.share(w.apiserver):.0f}%, etcd {w.share(w.etcd):.0f}%, bench {w.share(w.bench):.0f}%, "
        f"others {w.share(w.others):.0f}% (% of one core; {os.cpu_count()} cores)"
    )


def calls_line(calls: collections.Counter[str]) -> str:
    if not calls:
        return "none"
    parts = ", ".join(f"{name or '(no argument)'} {count}" for name, count in calls.most_common())
    return f"{sum(calls.values())} ({parts})"


def tree_line(t: Tree) -> str:
    return (
        f"controller + helm children peak {t.peak_rss_kib / MIB:.1f} MiB (sum of VmRSS; {t.peak_anon_kib / MIB:.1f} "
        f"anonymous), at most {t.peak_children} children at once, largest helm VmHWM {t.child_hwm_kib / MIB:.1f} "
        f"MiB ({len(t.helm_pids)} helm pids seen in {t.samples} samples; sampler {t.sampler_cpu_s:.1f}s CPU)"
    )


def report_one(r: Result, args: argparse.Namespace) -> None:
    n, times = r.n, r.ready_times
    print(
        f"\n== {r.side}: N = {n} HelmReleases x chart of {args.files} ConfigMaps, one HTTPS HelmRepository, "
        f"targetNamespace each; helm as system:serviceaccount:{PREFIX}-config:{APPLIER}"
        f"{'' if args.enforce else ' (--no-enforce)'}"
    )
    print(f"  load avg: {'; '.join(r.load)}; set-up ({n} namespaces + RoleBindings) {r.setup_s:.1f}s, not timed")
    print(
        f"  create {r.create_s:.1f}s; Ready: first {times[0]:.1f}s, median {statistics.median(times):.1f}s, p90 "
        f"{pct(times, 90):.1f}s, all {r.all_ready_s:.1f}s ({n / r.all_ready_s:.2f}/s; {r.lists} list calls; "
        f"{r.ready_reconciles:.0f} reconciles, mean reconcile() {r.ready_mean_ms:.0f} ms)"
    )
    charts = r.chart_times
    print(
        f"  HelmCharts Ready with an artifact (source controller): first {charts[0]:.1f}s, median "
        f"{statistics.median(charts):.1f}s, all {charts[-1]:.1f}s"
    )
    if r.failed:
        print(f"  {len(r.failed)} seen Ready=False on the way, e.g. {next(iter(r.failed.items()))}")
    w = r.ready
    print(f"  until all Ready: {window_line(w, r.side)}")
    own = "Go" if r.side == "flux" else "Python"
    print(
        f"    per HelmRelease: controller {w.controller.own / n * 1e3:.0f} ms {own} + "
        f"{w.controller.children / n * 1e3:.0f} ms children (helm, post-renderer), apiserver "
        f"{w.apiserver / n * 1e3:.0f} ms, etcd {w.etcd / n * 1e3:.0f} ms CPU; helm processes {calls_line(r.helm_calls)}"
    )
    lives = ", ".join(
        f"{command} p50 {pct(ms, 50):.0f} ms p90 {pct(ms, 90):.0f} ms" for command, ms in sorted(r.helm_ms.items())
    )
    other = ", ".join(f"{name} {count}" for name, count in r.unlogged.most_common()) or "none"
    print(f"    helm process lifetimes (sampled every 20 ms): {lives or 'none seen'}; other children seen: {other}")
    print(
        f"    ConfigMaps {r.config_maps} (expected {n * args.files}), release Secrets {r.release_secrets} "
        f"(expected {n}), {r.events} Events; field managers of one ConfigMap: {', '.join(r.managers) or 'none'}"
    )
    print(
        f"  RSS: controller idle {r.idle_rss_kib / MIB:.1f} MiB, peak (VmHWM) {r.ready_hwm_kib / MIB:.1f} at all "
        f"Ready, {r.end_hwm_kib / MIB:.1f} at the end; {tree_line(r.tree)}"
    )
    for index, o in enumerate(r.noops):
        gross, above = o.cpu_ms(n, r.idle_cpu)
        requests = sum(o.requests.values())
        detail = ", ".join(f"{k} {v / n:.2f}" for k, v in o.requests.most_common(6))
        print(
            f"  no-op round {index + 1} (requestedAt on all {n}): all handled in {o.seconds:.1f}s, {o.reconciles:.0f} "
            f"reconciles ({o.errors:.0f} errors), mean reconcile() {o.mean_ms:.1f} ms; helm processes "
            f"{calls_line(o.helm)} (sampler saw {len(o.tree.helm_pids)})"
        )
        print(
            f"    per no-op: controller {gross:.1f} ms CPU gross, {above:.1f} ms above idle "
            f"({o.window.controller.own / n * 1e3:.1f} {own} + {o.window.controller.children / n * 1e3:.1f} "
            f"children); API requests {requests / n:.2f} ({detail})"
        )
        print(
            f"    written: {o.config_map_writes} ConfigMaps, {o.secret_writes} release Secrets, {o.events} Events; "
            f"{window_line(o.window, r.side)}"
        )
    if r.work_ready is not None and r.work_end is not None:
        print(f"  work at all Ready: {r.work_ready.line(args.files)}")
        print(f"  work after the no-ops: {r.work_end.line(args.files)}")
    if (u := r.upgrade) is not None:
        print(
            f"  values change on all {n} (patched in {u.patch_s:.1f}s): Ready at revision 2: first {u.times[0]:.1f}s, "
            f"median {statistics.median(u.times):.1f}s, all {u.times[-1]:.1f}s; {u.reconciles:.0f} reconciles, mean "
            f"reconcile() {u.mean_ms:.0f} ms; helm processes {calls_line(u.helm)}"
        )
        print(
            f"    per upgrade: controller {u.window.controller.own / n * 1e3:.0f} ms {own} + "
            f"{u.window.controller.children / n * 1e3:.0f} ms children CPU, source {u.source_cpu / n * 1e3:.1f} ms; "
            f"{window_line(u.window, r.side)}"
        )
        print(f"    work after it: {u.work.line(args.files)}; {tree_line(u.tree)}")
    if r.source_hwm_kib:
        each = ", ".join(f"{o.source_cpu / n * 1e3:.1f}" for o in r.noops)
        print(
            f"  source process (fluxwarden, its own): {r.source_ready_cpu:.1f}s CPU until all Ready, {each} ms CPU "
            f"per no-op reconcile, VmHWM {r.source_hwm_kib / MIB:.1f} MiB"
        )
    print(f"  controller idle: {100 * r.idle_cpu:.2f}% of a core; SIGTERM to exit {r.stop[1]:.1f}s (code {r.stop[0]})")


def report_table(results: list[Result]) -> None:
    print(
        "\nside        N     all Ready s  rel/s  ctrl VmHWM MiB  tree peak MiB  helm/install  CPU ms/rel "
        "(own+children)  no-op: helm procs  CPU ms (gross/above idle)  API req  s"
    )
    for r in results:
        w, o = r.ready, r.noops[-1]
        gross, above = o.cpu_ms(r.n, r.idle_cpu)
        print(
            f"{r.side:<11} {r.n:<5} {r.all_ready_s:>11.1f}  {r.n / r.all_ready_s:>5.2f}  {r.end_hwm_kib / MIB:>14.1f}  "
            f"{r.tree.peak_rss_kib / MIB:>13.1f}  {sum(r.helm_calls.values()) / r.n:>12.2f}  "
            f"{w.controller.own / r.n * 1e3:>5.0f} + {w.controller.children / r.n * 1e3:<10.0f}  "
            f"{sum(o.helm.values()):>17}  {gross:>12.1f} / {above:<11.1f}  {sum(o.requests.values()) / r.n:>7.2f}  "
            f"{o.seconds:>4.1f}"
        )
    print("(no-op: the last round; tree peak: controller + live helm children, sum of VmRSS sampled every 20 ms)")


def report_alone(alone: HelmAlone, largest: Result, concurrency: int) -> None:
    print("\nhelm alone against the same cluster, controller stopped (this process runs it, one at a time):")
    for name, call in alone.calls.items():
        print(call.line(name))
    print(f"  argv: {alone.argv}")
    version = alone.calls.get("helm version (process start)")
    cold = alone.calls.get("helm install, cold discovery cache")
    warm = alone.calls.get("helm install, warm")
    if version and cold and warm:
        n, w = largest.n, largest.ready
        per_slot = largest.all_ready_s * min(concurrency, n) / n * 1e3
        processes = sum(largest.helm_calls.values())
        helm_cpu = w.controller.children / max(processes, 1) * 1e3
        installs = largest.helm_ms.get("install", [])
        inside = f", an install process lives p50 {pct(installs, 50):.0f} ms there" if installs else ""
        print(
            f"  in the controller (N={n}): {per_slot:.0f} ms of a worker's wall per release ({concurrency} workers)"
            f"{inside}, {helm_cpu:.0f} ms helm CPU per helm process; alone: install {pct(cold.wall_ms, 50):.0f} ms "
            f"cold / {pct(warm.wall_ms, 50):.0f} ms warm, of which process start {pct(version.wall_ms, 50):.0f} ms; "
            f"a cold discovery cache adds {pct(cold.wall_ms, 50) - pct(warm.wall_ms, 50):.0f} ms"
        )
        busy = w.controller.total + w.apiserver + w.etcd + w.bench + w.others
        start = pct(version.cpu_ms, 50) / 1e3 * processes
        imports = alone.calls.get("  of it: Python start + the plugin's imports")
        pythons = largest.helm_calls.get("install", 0) + largest.helm_calls.get("upgrade", 0)  # one plugin each
        python = pct(imports.cpu_ms, 50) / 1e3 * pythons if imports else 0.0
        print(
            f"  where the CPU went until all Ready (N={n}, {busy / w.seconds:.2f} of {os.cpu_count()} cores busy): "
            f"controller children {100 * w.controller.children / busy:.0f}% (of which bare process starts: {processes} "
            f"helm x helm version's CPU {100 * start / busy:.0f}%, {pythons} post-renderer Pythons x start and imports "
            f"{100 * python / busy:.0f}%), controller Python {100 * w.controller.own / busy:.0f}%, apiserver + etcd "
            f"{100 * (w.apiserver + w.etcd) / busy:.0f}%, this process {100 * w.bench / busy:.0f}%, others "
            f"{100 * w.others / busy:.0f}%"
        )


def _versus_rows(r: Result) -> list[tuple[str, float, str]]:
    """(metric, value, format) of one side at one N, as the side-by-side table shows them."""
    o = r.noops[-1]
    gross, above = o.cpu_ms(r.n, r.idle_cpu)
    return [
        ("all Ready, s", r.all_ready_s, ".1f"),
        ("median Ready, s", statistics.median(r.ready_times), ".1f"),
        ("  all HelmCharts Ready (source), s", r.chart_times[-1], ".1f"),
        ("reconciles until all Ready", r.ready_reconciles, ".0f"),
        ("  mean time in reconcile(), ms", r.ready_mean_ms, ".0f"),
        ("helm ctrl CPU until all Ready, s", r.ready.controller.total, ".1f"),
        ("  per release, ms", r.ready.controller.total / r.n * 1e3, ".0f"),
        ("apiserver+etcd CPU until all Ready, s", r.ready.apiserver + r.ready.etcd, ".1f"),
        ("source process CPU until all Ready, s", r.source_ready_cpu, ".1f"),
        ("others' CPU (other sessions), % core", r.ready.share(r.ready.others), ".0f"),
        ("helm ctrl peak RSS (VmHWM), MiB", r.end_hwm_kib / MIB, ".1f"),
        ("  with its children (tree peak), MiB", r.tree.peak_rss_kib / MIB, ".1f"),
        ("  of it anonymous (tree peak), MiB", r.tree.peak_anon_kib / MIB, ".1f"),
        ("helm ctrl idle CPU, % core", 100 * r.idle_cpu, ".2f"),
        *_upgrade_rows(r.upgrade),
        ("no-op: all handled, s", o.seconds, ".1f"),
        ("no-op: helm processes per no-op", sum(o.helm.values()) / r.n, ".2f"),
        ("no-op: helm ctrl CPU ms (gross)", gross, ".1f"),
        ("no-op: helm ctrl CPU ms (above idle)", above, ".1f"),
        ("no-op: source CPU ms", o.source_cpu / r.n * 1e3, ".1f"),
        ("no-op: API requests", sum(o.requests.values()) / r.n, ".2f"),
    ]


def _upgrade_rows(u: Upgrade | None) -> list[tuple[str, float, str]]:
    if u is None:
        return []
    n = len(u.times)
    return [
        ("upgrade (values change): all Ready, s", u.times[-1], ".1f"),
        ("  median Ready, s", statistics.median(u.times), ".1f"),
        ("  helm ctrl CPU per upgrade, ms", u.window.controller.total / n * 1e3, ".0f"),
        ("  apiserver+etcd CPU, s", u.window.apiserver + u.window.etcd, ".1f"),
        ("  ctrl + children peak during it, MiB", u.tree.peak_rss_kib / MIB, ".1f"),
    ]


def report_versus(results: list[Result], files: int) -> None:
    """fluxwarden beside Flux per N, and fluxwarden/Flux per metric (below 1: fluxwarden uses less)."""
    by_n: dict[int, dict[str, Result]] = collections.defaultdict(dict)
    for r in results:
        by_n[r.n][r.side] = r
    print("\nfluxwarden vs Flux helm-controller, same workload, same run (ratio fluxwarden / Flux; target time <= 1)")
    for n, sides in sorted(by_n.items()):
        ours, theirs = sides.get("fluxwarden"), sides.get("flux")
        if ours is None or theirs is None:
            print(f"  N={n}: only {', '.join(sides)} ran")
            continue
        print(f"\n  N = {n:<6} {'metric':<40} {'fluxwarden':>10} {'Flux':>10} {'ratio':>7}")
        for (name, a, fmt), (_, b, _) in zip(_versus_rows(ours), _versus_rows(theirs), strict=True):
            ratio = f"{a / b:7.2f}" if b > 0 else ("      -" if a == 0 else "    inf")
            print(f"  {'':<10} {name:<40} {a:>10{fmt}} {b:>10{fmt}} {ratio}")
        for side, r in sides.items():
            if r.work_ready is None or r.work_end is None:
                continue
            writes = sum(o.config_map_writes + o.secret_writes for o in r.noops)
            ok = r.work_ready.same() and r.work_end.same() and writes == 0
            print(
                f"  {side}: {'same work' if ok else 'WORK DIFFERS'}: {r.work_end.line(files)}; no-ops wrote {writes} "
                "ConfigMaps or release Secrets"
            )
            if r.upgrade is not None:
                done = "same work" if r.upgrade.work.same() else "WORK DIFFERS"
                print(f"    after the upgrade, {done}: {r.upgrade.work.line(files)}")


# -- main ------------------------------------------------------------------------------------------


@dataclass
class Environment:
    bins: Path
    work: Path
    repo_url: str
    ca_pem: bytes
    archive: Path


@contextlib.contextmanager
def environment(args: argparse.Namespace) -> Iterator[Environment]:
    """Binaries, a work dir and the chart repository (a thread here: N HelmCharts fetch one small archive
    each, and the index once per 10m); all gone on the way out."""
    bins = binary_dir()
    with tempfile.TemporaryDirectory(prefix="fluxwarden-bench-helm-") as tmp:
        work = Path(tmp)
        with chart_repository(work / "charts", args.files) as (server, authority, archive):
            yield Environment(bins, work, server.url, authority.ca_pem, archive)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    sides = [Side("fluxwarden")]
    if args.against == "flux":  # before any copy: a missing binary stops the run here
        binary = flux.flux_binary("helm-controller")
        sides = [Side("fluxwarden", split=True), Side("flux", flux_binary=binary, split=True)]
    if args.code != "worktree":
        return rerun_from_copy("bench.helm", argv, args, show_commit=False)
    arm_deadline("bench.helm", args.deadline)
    import fluxwarden

    layout = "helm, beside a `--controllers source` process" if args.against else "source,helm"
    print(
        f"bench.helm: {os.cpu_count()} cores, load avg {load_average()}; sizes {args.count_list}; controller = "
        f"`fluxwarden controllers run --controllers {layout} --concurrency {args.concurrency}"
        f"{'' if args.enforce else ' --no-enforce'}` from {Path(fluxwarden.__file__).parent}",
        flush=True,
    )
    if args.against:
        print(
            f"  against: Flux helm-controller {flux.version('helm-controller')} ({sides[1].flux_binary}), --concurrent "
            f"{args.concurrency}, fluxwarden's source controller serving its HelmCharts",
            flush=True,
        )
    results: list[Result] = []
    try:
        with environment(args) as env:
            for n in args.count_list:
                for side in sides if len(results) % 4 == 0 else sides[::-1]:  # ABBA: drift in load hits both
                    began = time.monotonic()
                    results.append(run_count(n, args, env, side))
                    report_one(results[-1], args)
                    print(f"  ({side.name} N={n} took {time.monotonic() - began:.0f}s in all)", flush=True)
    finally:
        signal.alarm(0)
    report_table(results)
    if args.against:
        report_versus(results, args.files)
    ours = [r for r in results if r.side == "fluxwarden"]
    if ours[-1].alone is not None:
        report_alone(ours[-1].alone, ours[-1], args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
