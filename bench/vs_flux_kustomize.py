"""One side of ``bench.vs_flux``'s Kustomizations: fluxwarden's kustomize controller or Flux's, on one N.

The workload is ``bench.kustomize``'s (N Kustomizations of one GitRepository in ``bench-config``, each of
10 ConfigMaps into its own ``targetNamespace``, ``flux-applier`` impersonated), on a fresh control plane per
side. fluxwarden's source controller serves the GitRepository artifact to either side from a process of its
own, so the measured process is the kustomize controller alone. Phases: create N until all Ready at their
generation; a requested reconcile of all N where nothing changed (the no-op: every ``lastHandledReconcileAt``
must match, the reconcile counter must move by N, nothing may be written); one ConfigMap deleted in each of
the N target namespaces, then a requested reconcile of all N, until all N are back.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import controller as bc
from bench import flux
from bench import kustomize as k
from bench.cluster import DISCOVERY, KubeApi, api_requests, cpu_of, load_average, memory_kib
from bench.controller import Controller, Metrics, Snapshot, Window
from bench.process_tree import Tree, TreeSampler
from tests.support.control_plane import ControlPlane

MIB = 1024.0


@dataclass(frozen=True)
class Side:
    """fluxwarden's kustomize controller (``binary`` None) or Flux's kustomize-controller ``binary``."""

    name: str
    binary: Path | None = None

    @property
    def metrics_controller(self) -> str:
        return "kustomization" if self.binary is not None else "kustomize-controller"


def start_measured(plane: ControlPlane, work: Path, args: argparse.Namespace, side: Side) -> Controller:
    """``fluxwarden controllers run --controllers kustomize``, or Flux's kustomize-controller under the lockdown
    flags and ``--no-remote-bases=true``; either way the same concurrency and no leader election."""
    if side.binary is not None:
        flags = flux.lockdown_flags(args, "--no-remote-bases=true")
        return Controller.upstream(side.binary, flags, plane.kubeconfig, work)
    tmp = work / "controller-tmp"  # kustomize build dirs, removed with the work dir
    tmp.mkdir(parents=True, exist_ok=True)
    cli = bc.controllers_run(plane, work, args, "kustomize")
    env = bc.controller_env(tmp)
    return Controller.launch(cli, work / "controller.log", module="bench.kustomize", env=env, request_timeout=30)


@dataclass(frozen=True)
class Work:
    """What the Kustomizations left: applied ConfigMaps, per namespace, and one digest of their content."""

    config_maps: int
    namespaces_complete: int  # target namespaces holding all ``files`` ConfigMaps
    digest: str  # sha256 over (namespace, name, data, the kustomize owner labels) of every applied ConfigMap
    ready_at_generation: int  # Kustomizations Ready=True at their generation with a revision applied
    artifact: str  # the GitRepository's revision and digest that both sides applied

    def same(self, n: int, files: int) -> bool:
        return self.config_maps == n * files and self.namespaces_complete == n and self.ready_at_generation == n

    def line(self, n: int, files: int) -> str:
        return (
            f"{self.config_maps} ConfigMaps (expected {n * files}), {self.namespaces_complete}/{n} namespaces "
            f"complete, {self.ready_at_generation}/{n} Ready at their generation, content sha256 "
            f"{self.digest[:12]}, artifact {self.artifact}"
        )


def work_of(api: KubeApi, n: int, files: int) -> Work:
    selector = f"{k.OWNER_NAMESPACE_LABEL}%3D{k.CONFIG_NAMESPACE}"
    maps = api.items(f"/api/v1/configmaps?labelSelector={selector}")
    per_namespace = collections.Counter(m["metadata"]["namespace"] for m in maps)
    content = sorted(
        (
            m["metadata"]["namespace"],
            m["metadata"]["name"],
            m.get("data") or {},
            {key: v for key, v in (m["metadata"].get("labels") or {}).items() if key.startswith("kustomize.toolkit")},
        )
        for m in maps
    )
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    kustomizations = api.items(k.KUSTOMIZATIONS.format(namespace=k.CONFIG_NAMESPACE))
    source = api.must("GET", k.GITREPOSITORIES.format(namespace=k.CONFIG_NAMESPACE) + f"/{k.SOURCE_NAME}")
    artifact = (source.get("status") or {}).get("artifact") or {}
    return Work(
        config_maps=len(maps),
        namespaces_complete=sum(1 for count in per_namespace.values() if count == files),
        digest=digest,
        ready_at_generation=sum(1 for obj in kustomizations if k.is_applied(obj)),
        artifact=f"{artifact.get('revision')} {str(artifact.get('digest'))[:19]}",
    )


@dataclass
class Phase:
    """One timed phase: seconds, CPU of every process, the controller's reconciles and API requests."""

    seconds: float
    window: Window
    reconciles: float
    errors: float
    requests: collections.Counter[str]  # the controller's (this benchmark's own taken out)
    source_cpu: float  # fluxwarden's source process, serving the artifact
    config_map_writes: int = 0
    handled: int = 0  # objects whose lastHandledReconcileAt matched the request

    def per(self, n: int) -> tuple[float, float]:
        """Controller CPU ms and API requests per object."""
        return self.window.controller.total / n * 1e3, sum(self.requests.values()) / n


@dataclass
class Result:
    side: str
    n: int
    round: int
    setup_s: float
    ready_times: list[float]
    ready: Phase
    tree: Tree  # the controller and its children (kustomize), sampled from the first create to the end
    idle_rss_kib: int
    idle_cpu: float
    ready_hwm_kib: int
    end_hwm_kib: int
    work_ready: Work
    noop: Phase
    repair: Phase | None  # None: not all N back before the timeout
    repaired: int
    work_end: Work
    load: list[str] = field(default_factory=list)
    stop: tuple[int | None, float] = (None, 0.0)  # exit code (None: killed) and seconds to stop

    @property
    def peak_with_children_kib(self) -> int:
        """The controller and its children at once: the sampled peak, or the controller's own VmHWM (which
        no sample can miss) where that is higher."""
        return max(self.tree.peak_rss_kib, self.end_hwm_kib)


def _handled(token: str) -> Any:
    def done(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        return status.get("lastHandledReconcileAt") == token and bc.ready_condition(obj).get("status") == "True"

    return done


@dataclass(frozen=True)
class Rig:
    api: KubeApi
    poll_api: KubeApi
    controller: Controller
    source: Controller
    pids: tuple[int, int, int]
    side: Side

    def scrape(self) -> Metrics:
        return self.controller.reconcile_metrics("Kustomization", self.side.metrics_controller)


@dataclass(frozen=True)
class Meter:
    """What a phase starts from: the controller's metrics, the source's CPU, the API server's request count
    and every process's CPU; ``phase`` reads them again and takes this benchmark's own requests out."""

    rig: Rig
    metrics: Metrics
    source_cpu: float
    requests: collections.Counter[str]
    snapshot: Snapshot

    @classmethod
    def start(cls, rig: Rig) -> Meter:
        metrics, source_cpu = rig.scrape(), cpu_of(rig.source.pid).total
        requests = api_requests(rig.api, discovery=True)  # discovery too: a Go client may re-discover
        return cls(rig, metrics, source_cpu, requests, Snapshot.take(*rig.pids))

    def phase(self, seconds: float, ours: dict[str, int]) -> Phase:
        end = Snapshot.take(*self.rig.pids)
        requests = api_requests(self.rig.api, discovery=True) - self.requests
        last = self.rig.scrape()
        return Phase(
            seconds=seconds,
            window=Window.between(self.snapshot, end),
            reconciles=last.reconciles - self.metrics.reconciles,
            errors=last.errors - self.metrics.errors,
            requests=requests - collections.Counter({**ours, DISCOVERY: 1}),  # and the scrape before
            source_cpu=cpu_of(self.rig.source.pid).total - self.source_cpu,
        )


def requested_round(rig: Rig, n: int, token: str, timeout: float) -> Phase:
    """``requestedAt = token`` on all N, until every ``lastHandledReconcileAt`` is ``token`` (Ready)."""
    names = {k.kustomization_name(i) for i in range(n)}
    maps = k.applied_config_maps(rig.api)
    poll = k.kustomization_poll(rig.poll_api, names, _handled(token), n, timeout)
    meter = Meter.start(rig)
    poll.start()
    k.request_all(rig.api, names, token)
    seconds = poll.wait(rig.controller.child, f"lastHandledReconcileAt {token}")[-1]
    phase = meter.phase(seconds, {"PATCH kustomizations": n, "LIST kustomizations": poll.lists})
    phase.config_map_writes = bc.changed(maps, k.applied_config_maps(rig.api))
    phase.handled = len(poll.ready_at)
    return phase


def repair_round(rig: Rig, n: int, timeout: float) -> tuple[Phase | None, int]:
    """One ConfigMap deleted in each of the N namespaces, then a requested reconcile of all N: seconds from the
    first request until all N are back (None at the timeout), and how many came back."""
    names = {k.kustomization_name(i) for i in range(n)}
    k.delete_drifted(rig.api, n)
    meter = Meter.start(rig)
    began = time.monotonic()
    k.request_all(rig.api, names, "bench-repair")
    lists, back = 0, 0
    while time.monotonic() < began + timeout:
        lists += 1
        back = sum(1 for key in k.applied_config_maps(rig.poll_api) if key.endswith(f"/{k.DRIFTED}"))
        if back >= n:
            return meter.phase(time.monotonic() - began, {"PATCH kustomizations": n, "LIST configmaps": lists}), back
        rig.controller.child.check_alive()
        time.sleep(k.poll_interval(n))
    return None, back


def run_side(n: int, args: argparse.Namespace, env: k.Environment, side: Side, round_: int) -> Result:
    """One side at one N on a fresh control plane; see the module docstring."""
    load = [f"start {load_average()}"]
    names = {k.kustomization_name(i) for i in range(n)}
    timeout = 180.0 + 1.0 * n
    with k.tenants_cluster(env, n) as (plane, work, setup_s):
        assert plane.apiserver.pid is not None and plane.etcd.pid is not None
        api, poll_api = KubeApi(plane, timeout=120), KubeApi(plane, timeout=120)
        stopped: list[tuple[int | None, float]] = []
        with contextlib.ExitStack() as stack:
            stack.callback(api.close)
            stack.callback(poll_api.close)
            source = bc.start_source(plane, work / "source", args, "bench.kustomize")
            stack.callback(source.stop)
            source.wait_ready()
            k.wait_source_ready(api)
            controller = start_measured(plane, work, args, side)
            stack.callback(lambda: stopped.append(controller.stop()))
            controller.wait_ready()
            rig = Rig(api, poll_api, controller, source, (controller.pid, plane.apiserver.pid, plane.etcd.pid), side)
            time.sleep(args.settle)
            idle_rss = memory_kib(controller.pid)["VmRSS"]
            idle_cpu = controller.idle_cpu(args.idle)

            # 1. create N, until all are Ready at their generation
            poll = k.kustomization_poll(poll_api, names, k.is_applied, n, timeout)
            meter = Meter.start(rig)
            tree = stack.enter_context(TreeSampler(controller.pid, every=0.05, tracked="kustomize"))  # to the end
            poll.start()
            k.create_all(api, n)
            ready_times = poll.wait(controller.child, "Ready after create")
            ready = meter.phase(ready_times[-1], {"POST kustomizations": n, "LIST kustomizations": poll.lists})
            ready_hwm = memory_kib(controller.pid)["VmHWM"]
            load.append(f"all Ready {load_average()}")
            work_ready = work_of(api, n, args.files)

            # 2. a requested reconcile of all N where nothing changed
            time.sleep(args.settle)
            noop = requested_round(rig, n, "bench-noop", timeout)
            load.append(f"after the no-op {load_average()}")

            # 3. drift: one ConfigMap deleted in each target namespace, then a requested reconcile of all N
            time.sleep(args.settle)
            repair, repaired = repair_round(rig, n, timeout)
            work_end = work_of(api, n, args.files)
            end_hwm = memory_kib(controller.pid)["VmHWM"]
    return Result(
        side=side.name,
        n=n,
        round=round_,
        setup_s=setup_s,
        ready_times=ready_times,
        ready=ready,
        tree=tree,
        idle_rss_kib=idle_rss,
        idle_cpu=idle_cpu,
        ready_hwm_kib=ready_hwm,
        end_hwm_kib=end_hwm,
        work_ready=work_ready,
        noop=noop,
        repair=repair,
        repaired=repaired,
        work_end=work_end,
        load=load,
        stop=stopped[0] if stopped else (None, 0.0),
    )


def report_one(r: Result, files: int) -> None:
    n, w = r.n, r.ready.window
    own = "Go" if r.side == "flux" else "Python"
    print(f"\n== Kustomizations, {r.side}, N = {n}, round {r.round + 1}; load avg {'; '.join(r.load)}")
    print(
        f"  set-up {r.setup_s:.1f}s (not timed); Ready: first {r.ready_times[0]:.1f}s, median "
        f"{r.ready_times[len(r.ready_times) // 2]:.1f}s, all {r.ready.seconds:.1f}s; {r.ready.reconciles:.0f} "
        f"reconciles ({r.ready.errors:.0f} errors)"
    )
    print(
        f"    controller CPU {w.controller.total:.1f}s ({w.controller.own:.1f} {own} + {w.controller.children:.1f} "
        f"children), {w.controller.total / n * 1e3:.0f} ms per Kustomization; apiserver {w.apiserver:.1f}s, etcd "
        f"{w.etcd:.1f}s, source process {r.ready.source_cpu:.1f}s, others {w.others:.1f}s; API requests "
        f"{sum(r.ready.requests.values()) / n:.1f} per Kustomization"
    )
    print(
        f"    RSS: idle {r.idle_rss_kib / MIB:.1f} MiB, VmHWM {r.ready_hwm_kib / MIB:.1f} at all Ready, "
        f"{r.end_hwm_kib / MIB:.1f} at the end; with children (sampled) {r.peak_with_children_kib / MIB:.1f} MiB, "
        f"at most {r.tree.peak_children} children at once; idle CPU {100 * r.idle_cpu:.2f}% of a core"
    )
    print(f"    work: {r.work_ready.line(n, files)}")
    o = r.noop
    cpu_ms, requests = o.per(n)
    detail = ", ".join(f"{key} {v / n:.2f}" for key, v in o.requests.most_common(6))
    print(
        f"  no-op (requestedAt on all {n}): {o.handled}/{n} handled in {o.seconds:.1f}s, {o.reconciles:.0f} "
        f"reconciles ({o.errors:.0f} errors); per no-op {cpu_ms:.1f} ms controller CPU "
        f"({o.window.controller.children / n * 1e3:.1f} of it children), {requests:.2f} API requests "
        f"({detail}), source {o.source_cpu / n * 1e3:.1f} ms; ConfigMaps written {o.config_map_writes}"
    )
    if r.repair is None:
        print(f"  drift: only {r.repaired} of {n} deleted ConfigMaps back at the timeout")
    else:
        p = r.repair
        cpu_ms, requests = p.per(n)
        print(
            f"  drift: {n} ConfigMaps deleted (one per namespace), all back {p.seconds:.1f}s after the requests; "
            f"{p.reconciles:.0f} reconciles, {cpu_ms:.1f} ms controller CPU and {requests:.2f} API requests per "
            f"Kustomization"
        )
    print(f"    work after: {r.work_end.line(n, files)}")
    print(f"  SIGTERM to exit {r.stop[1]:.1f}s (code {r.stop[0]})")
