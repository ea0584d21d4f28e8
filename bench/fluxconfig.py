"""How the FluxConfig controller copes with N FluxConfigs of two Kustomizations each on one git repository.

``python -m bench.fluxconfig [--configs 100]``. On a fresh control plane (etcd + kube-apiserver with
an audit log, Flux's CRDs and fluxwarden's FluxConfig CRD; ``bench/cluster.py``), one git repository
served over smart HTTP by the tests' git server in a process of its own, holding for each config
``configs/NNNN/infra`` and ``configs/NNNN/apps`` (one ConfigMap each, in the config's tenant
namespace ``bench-fc-NNNN``). N FluxConfigs ``fc-NNNN``, each with the kustomizations ``infra`` and
``apps`` (apps dependsOn infra), ``--scope namespace`` (default: each config in its tenant namespace)
or ``--scope cluster`` (all in ``cluster-config``, one of the default cluster-scope namespaces).

Two controller processes, as the manifests deploy them: ``fluxwarden controllers run --controllers
source,kustomize`` and ``--controllers fluxconfig`` (the measured one: its RSS and CPU are its own).
Each has a client certificate of its own user, so the audit log says which requests were whose.

Measured:

1. from the first create until every FluxConfig is Compliant at the pushed revision: per config
   p50/p90/max, and the same for the sources and both Kustomizations (from watches, so no poll
   interval blurs them); the aggregation lag (a config's Compliant after its last child was
   Ready); status writes per config; the fluxconfig controller's API requests (audit log); CPU;
2. the fluxconfig controller's RSS idle and its peak (``VmHWM``);
3. steady state, nothing changing, over ``--window`` s (>= 120): status writes to FluxConfigs (the
   watch's MODIFIED events whose status changed, the resourceVersions before and after, and the
   ``PATCH fluxconfigs/status`` requests in the audit log; the target is 0), while the controllers
   are shown to reconcile: ``--nudges`` times, a requested reconcile of every GitRepository and
   Kustomization the configs made, each handled (``lastHandledReconcileAt``), each a child status
   change that the fluxconfig controller reacts to; the reconciles counted from both processes'
   metrics; the fluxconfig controller's API requests per minute by verb and resource;
3b. a requested reconcile of every FluxConfig (``requestedAt``): each aggregates in full with nothing new,
   so it may write ``lastHandledReconcileAt`` and nothing else (target 0 other status writes); its API
   requests per reconcile;
4. one ``git push`` changing every config's two ConfigMaps, then (``--push-nudge``, default) a
   requested reconcile of the N GitRepositories, as a Flux Receiver would make: time until every
   FluxConfig is Compliant at the new revision, per config as in 1, and the ConfigMaps checked.

Everything it starts is stopped and every temporary directory removed on the way out; the run is
bounded by ``--deadline`` and every wait by its own timeout.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import args as bench_args
from bench.cluster import (
    ROOT,
    KubeApi,
    arm_deadline,
    audit_events,
    cluster,
    cpu_of,
    load_average,
    machine_busy,
    memory_kib,
    rerun_from_copy,
    user_kubeconfig,
)
from bench.controller import (
    Controller,
    Metrics,
    changed,
    controller_env,
    controllers_run,
    ready_condition,
    request_reconcile,
    resource_versions,
)
from bench.sources import start_git_server
from bench.stats import pct
from bench.watch import Event, Watcher, watching, writes
from tests.support.binaries import binary_dir
from tests.support.git_server import GitRepo, init_bare_repo

GROUP_VERSION = "clusterconfig.azure.com/v1beta1"
FLUXCONFIGS = f"/apis/{GROUP_VERSION}/fluxconfigs"
KUSTOMIZATIONS = "/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations"
GITREPOSITORIES = "/apis/source.toolkit.fluxcd.io/v1/gitrepositories"
CRD = ROOT / "manifests" / "crds" / "fluxconfig.yaml"
CRD_NAME = "fluxconfigs.clusterconfig.azure.com"
FC_USER = "bench:fluxconfig-controller"  # the client certificates' users: the audit log tells them apart
FLUX_USER = "bench:flux-controllers"
CLUSTER_CONFIG = "cluster-config"
TENANT_PREFIX = "bench-fc-"
REPO_NAME = "configs"
BRANCH = "main"
PARTS = ("infra", "apps")  # apps dependsOn infra
MIB = 1024.0
COMPLIANT = "Compliant"
MANAGED_CONFIG_MAPS = "/api/v1/configmaps?labelSelector=kustomize.toolkit.fluxcd.io%2Fname"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fluxconfig", description=__doc__.splitlines()[0], parents=[bench_args.common()]
    )
    parser.add_argument("--configs", type=int, default=100, help="FluxConfigs, 2 Kustomizations each (default 100)")
    parser.add_argument(
        "--scope", choices=("namespace", "cluster"), default="namespace",
        help="namespace: each config in its tenant namespace (default); cluster: all in cluster-config",
    )  # fmt: skip
    parser.add_argument(
        "--interval", type=int, default=60, help="syncIntervalInSeconds of every source and Kustomization (default 60)"
    )
    parser.add_argument("--window", type=float, default=150.0, help="steady window, s (>= 120)")
    parser.add_argument(
        "--nudges", type=int, default=2, help="requested reconciles of every child during the window (default 2)"
    )
    bench_args.switch(
        parser, "--push-nudge", True,
        "after the push, request a reconcile of every GitRepository (as a Receiver); else wait for the interval",
    )  # fmt: skip
    args = bench_args.parse(parser, argv)
    if args.configs < 1:
        parser.error("--configs must be positive")
    if args.window < 120:
        parser.error("--window must be at least 120 s")
    return args


# -- the repository and the objects ------------------------------------------------------------------


def config_name(index: int) -> str:
    return f"fc-{index:04d}"


def tenant(index: int) -> str:
    return f"{TENANT_PREFIX}{index:04d}"


def home(index: int, scope: str) -> str:
    """The namespace the FluxConfig (and so its source and Kustomizations) lives in."""
    return tenant(index) if scope == "namespace" else CLUSTER_CONFIG


def manifests(n: int, version: str) -> dict[str, str]:
    """One ConfigMap per config and part, in the config's tenant namespace; no kustomization.yaml."""
    return {
        f"configs/{i:04d}/{part}/configmap.yaml": (
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {part}\n  namespace: {tenant(i)}\n"
            f"data:\n  part: {part}\n  version: {version}\n"
        )
        for i in range(n)
        for part in PARTS
    }


def flux_config(index: int, args: argparse.Namespace, url: str) -> dict[str, Any]:
    namespace = home(index, args.scope)
    timing = {"syncIntervalInSeconds": args.interval, "timeoutInSeconds": 120}
    path = f"./configs/{index:04d}"
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "FluxConfig",
        "metadata": {"name": config_name(index), "namespace": namespace},
        "spec": {
            "scope": args.scope,
            "namespace": namespace,
            "sourceKind": "GitRepository",
            "gitRepository": {"url": url, "repositoryRef": {"branch": BRANCH}, **timing},
            "kustomizations": {
                "infra": {"path": f"{path}/infra", "prune": True, **timing},
                "apps": {"path": f"{path}/apps", "prune": True, "dependsOn": ["infra"], **timing},
            },
        },
    }


@dataclass(frozen=True)
class Keys:
    """``namespace/name`` of every object of the run, by kind."""

    configs: set[str]
    sources: set[str]
    kustomizations: dict[str, set[str]]  # part -> keys
    by_config: dict[str, list[str]]  # config key -> its source and Kustomization keys

    @classmethod
    def of(cls, n: int, scope: str) -> Keys:
        configs, sources, parts, by_config = set(), set(), {p: set[str]() for p in PARTS}, {}
        for i in range(n):
            key = f"{home(i, scope)}/{config_name(i)}"
            configs.add(key)
            sources.add(key)  # the source is named after the config
            children = [f"{key}-{part}" for part in PARTS]
            for part, child in zip(PARTS, children, strict=True):
                parts[part].add(child)
            by_config[key] = [key, *children]
        return cls(configs, sources, parts, by_config)

    @property
    def all_kustomizations(self) -> set[str]:
        return set().union(*self.kustomizations.values())


# -- states ------------------------------------------------------------------------------------------


def _current(obj: dict[str, Any]) -> bool:
    return bool((obj.get("status") or {}).get("observedGeneration") == obj["metadata"].get("generation"))


def compliant_at(revision: str) -> Callable[[dict[str, Any]], bool]:
    def done(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        return (
            _current(obj)
            and status.get("complianceState") == COMPLIANT
            and status.get("sourceSyncedCommitId") == revision
            and ready_condition(obj).get("status") == "True"
        )

    return done


def applied_at(revision: str) -> Callable[[dict[str, Any]], bool]:
    def done(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        return (
            _current(obj)
            and status.get("lastAppliedRevision") == revision
            and ready_condition(obj).get("status") == "True"
        )

    return done


def stored_at(revision: str) -> Callable[[dict[str, Any]], bool]:
    def done(obj: dict[str, Any]) -> bool:
        artifact = (obj.get("status") or {}).get("artifact") or {}
        return artifact.get("revision") == revision and ready_condition(obj).get("status") == "True"

    return done


def handled(token: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: (obj.get("status") or {}).get("lastHandledReconcileAt") == token


# -- accounting --------------------------------------------------------------------------------------


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process (with the children it reaped), and the machine's busy time."""
    found = {name: cpu_of(pid).total for name, pid in pids.items()}
    found["machine"] = machine_busy()[0]
    return found


def cpu_between(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    used = {k: b[k] - a[k] for k in a}
    used["others"] = max(0.0, used.pop("machine") - sum(used.values()))
    return used


def requests_of(events: list[dict[str, Any]], user: str) -> collections.Counter[str]:
    """``verb resource[/subresource]`` of ``user``'s requests; watches apart (they are logged when they end)."""
    counts: collections.Counter[str] = collections.Counter()
    for event in events:
        if (event.get("user") or {}).get("username") != user:
            continue
        ref = event.get("objectRef") or {}
        resource = ref.get("resource") or event.get("requestURI", "?").split("?")[0]
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        counts[f"{event.get('verb')} {resource}"] += 1
    return counts


def non_watch(counts: collections.Counter[str]) -> int:
    return sum(v for k, v in counts.items() if not k.startswith("watch "))


def status_patches(counts: collections.Counter[str]) -> int:
    return sum(v for k, v in counts.items() if k in ("patch fluxconfigs/status", "update fluxconfigs/status"))


# -- phases ------------------------------------------------------------------------------------------


@dataclass
class Converge:
    """Until every FluxConfig was Compliant at one revision (after the creates, or after a push)."""

    seconds: float
    configs: list[float]
    sources: list[float]
    kustomizations: dict[str, list[float]]  # part -> times
    lag: list[float]  # per config: Compliant minus its last child's Ready
    apps_first: int  # configs whose apps applied the revision before their infra did (dependsOn not honoured)
    status_writes: dict[str, int]  # config key -> status writes in the phase
    fc_reconciles: float
    fc_requests: collections.Counter[str]
    cpu: dict[str, float]


@dataclass
class Steady:
    seconds: float
    writes_watch: int  # FluxConfig MODIFIED events whose status changed
    writes_other: int  # other FluxConfig MODIFIED events (spec, metadata)
    versions_moved: int  # FluxConfigs whose resourceVersion moved
    status_patches: int  # PATCH fluxconfigs/status requests by the fluxconfig controller (audit)
    nudges: list[tuple[float, int]]  # per round: seconds until every child handled it, children
    fc_reconciles: float
    fc_errors: float
    fc_mean_ms: float
    flux_reconciles: float
    fc_requests: collections.Counter[str]
    flux_requests: collections.Counter[str]
    child_writes: int  # sources and Kustomizations whose status moved (the nudges' handled marks)
    cpu: dict[str, float]

    @property
    def minutes(self) -> float:
        return self.seconds / 60.0


@dataclass
class Requested:
    """A requested reconcile of every FluxConfig, nothing else changed: a full aggregation each, no news."""

    seconds: float  # until every FluxConfig handled it
    aggregation_writes: int  # status writes that changed more than lastHandledReconcileAt (target 0)
    handled_writes: int  # status writes of lastHandledReconcileAt alone (expected: one per config)
    fc_reconciles: float
    fc_mean_ms: float
    fc_requests: collections.Counter[str]
    cpu_s: float  # the fluxconfig controller's CPU over the round


@dataclass
class Result:
    n: int
    scope: str
    setup_s: float
    create_s: float
    idle_rss_kib: int
    idle_cpu: float
    ready: Converge
    ready_hwm_kib: int
    steady: Steady
    requested: Requested
    push: Converge
    push_nudged: bool
    config_maps: tuple[int, int]  # at the new version, in all
    fc_hwm_kib: int
    fc_rss_kib: int
    flux_hwm_kib: int
    stops: list[tuple[int | None, float]] = field(default_factory=list)
    load: list[str] = field(default_factory=list)
    logs: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # name -> lines, error lines, first error


def converge(
    watchers: tuple[Watcher, Watcher, Watcher],
    keys: Keys,
    revision: str,
    since: float,
    timeout: float,
    alive: Callable[[], None],
    what: str,
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Wait until every FluxConfig is Compliant at ``revision``; when each config, source, Kustomization got there."""
    fcs, kustomizations, sources = watchers
    configs = fcs.wait_all(since, compliant_at(revision), keys.configs, timeout, alive, what)
    children = kustomizations.first_times(since, applied_at(revision), keys.all_kustomizations)
    stored = sources.first_times(since, stored_at(revision), keys.sources)
    return configs, children, stored


def summarize(
    keys: Keys,
    times: tuple[dict[str, float], dict[str, float], dict[str, float]],
    fc_events: list[Event],
    since: float,
    end: float,
    fc_reconciles: float,
    fc_requests: collections.Counter[str],
    cpu: dict[str, float],
) -> Converge:
    configs, children, stored = times
    child_times = {**children, **stored}
    lag = [
        configs[key] - max(child_times.get(c, configs[key]) for c in keys.by_config[key])
        for key in sorted(keys.configs)
    ]
    found = writes(fc_events, since, end)
    return Converge(
        seconds=max(configs.values()),
        configs=sorted(configs.values()),
        sources=sorted(stored.values()),
        kustomizations={
            part: sorted(children[k] for k in keys.kustomizations[part] if k in children) for part in PARTS
        },
        lag=sorted(lag),
        apps_first=sum(
            1 for key in keys.configs if children.get(f"{key}-apps", 0.0) < children.get(f"{key}-infra", 0.0)
        ),
        status_writes={k: found.status.get(k, 0) for k in keys.configs},
        fc_reconciles=fc_reconciles,
        fc_requests=fc_requests,
        cpu=cpu,
    )


def nudge(api: KubeApi, keys: Keys, token: str, sources: bool, kustomizations: bool) -> int:
    """``requestedAt: token`` on the configs' GitRepositories and/or Kustomizations; how many were patched."""
    targets: list[tuple[str, str]] = []
    if sources:
        targets += [(GITREPOSITORIES, k) for k in keys.sources]
    if kustomizations:
        targets += [(KUSTOMIZATIONS, k) for k in keys.all_kustomizations]
    for collection, key in sorted(targets):
        namespace, name = key.split("/")
        where = collection.replace("/v1/", f"/v1/namespaces/{namespace}/")
        request_reconcile(api, where, {name}, token)
    return len(targets)


@dataclass(frozen=True)
class Mark:
    """A phase's start: the controller's metrics, the audit log's size, each process's CPU seconds."""

    metrics: Metrics
    audit: int
    cpu: dict[str, float]


@dataclass
class Run:
    """What the phases share: the API, the watches, the processes and the audit log."""

    api: KubeApi
    watchers: tuple[Watcher, Watcher, Watcher]
    fc: Controller
    flux: Controller
    pids: dict[str, int]
    audit: Path
    keys: Keys

    def alive(self) -> None:
        self.fc.child.check_alive()
        self.flux.child.check_alive()
        for watcher in self.watchers:
            watcher.check()

    def offset(self) -> int:
        return self.audit.stat().st_size

    def fc_metrics(self) -> Metrics:
        """The fluxconfig controller's reconciles and time in reconcile() (FluxConfigs)."""
        return self.fc.reconcile_metrics("FluxConfig", "fluxconfig-controller")

    def flux_metrics(self) -> Metrics:
        """Both Flux controllers' reconciles, and the Kustomizations' time in reconcile()."""
        return self.flux.reconcile_metrics("Kustomization")

    def mark(self) -> Mark:
        """The counters a phase's ``converged`` measures from."""
        return Mark(self.fc_metrics(), self.offset(), cpu_seconds(self.pids))

    def converged(
        self, mark: Mark, times: tuple[dict[str, float], dict[str, float], dict[str, float]], t0: float, t1: float
    ) -> Converge:
        """The phase from ``t0`` (counters at ``mark``) to ``t1``, every config converged at ``times``."""
        return summarize(
            self.keys, times, self.watchers[0].snapshot(), t0, t1,
            self.fc_metrics().reconciles - mark.metrics.reconciles,
            requests_of(audit_events(self.audit, mark.audit), FC_USER), cpu_between(mark.cpu, cpu_seconds(self.pids)),
        )  # fmt: skip


def steady_window(run: Run, args: argparse.Namespace) -> Steady:
    """``args.window`` s with nothing changing; ``args.nudges`` requested reconciles of every child inside."""
    api, keys = run.api, run.keys
    fcs, kustomizations, sources = run.watchers
    versions = resource_versions(api, FLUXCONFIGS)
    fc0, flux0 = run.fc_metrics(), run.flux_metrics()
    audit0, cpu0, began = run.offset(), cpu_seconds(run.pids), time.monotonic()
    children = keys.sources | keys.all_kustomizations
    rounds: list[tuple[float, int]] = []
    for index in range(args.nudges):
        at = began + (index + 0.2) * args.window / max(args.nudges, 1)
        run.fc.watch(max(0.0, at - time.monotonic()))
        token, sent = f"bench-steady-{index}", time.monotonic()
        count = nudge(api, keys, token, sources=True, kustomizations=True)
        left = began + args.window - time.monotonic() - 2
        done = kustomizations.wait_all(sent, handled(token), keys.all_kustomizations, left, run.alive, token)
        done |= sources.wait_all(sent, handled(token), keys.sources, left, run.alive, token)
        rounds.append((max(done.values()), count))
    run.fc.watch(max(0.0, began + args.window - time.monotonic()))
    end = time.monotonic()
    time.sleep(1.0)  # events of the window's last moment arrive; the audit log is written before each answer
    cpu = cpu_between(cpu0, cpu_seconds(run.pids))
    fc1, flux1 = run.fc_metrics(), run.flux_metrics()
    audit = audit_events(run.audit, audit0)
    found = writes(fcs.snapshot(), began, end)
    child_events = kustomizations.snapshot() + sources.snapshot()
    child_writes = len({e.key for e in child_events if began <= e.at < end and e.type == "MODIFIED"} & children)
    fc_requests = requests_of(audit, FC_USER)
    return Steady(
        seconds=end - began,
        writes_watch=found.status_total,
        writes_other=found.spec + found.other,
        versions_moved=changed(versions, resource_versions(api, FLUXCONFIGS)),
        status_patches=status_patches(fc_requests),
        nudges=rounds,
        fc_reconciles=fc1.reconciles - fc0.reconciles,
        fc_errors=fc1.errors - fc0.errors,
        fc_mean_ms=fc1.mean_reconcile_ms_since(fc0),
        flux_reconciles=flux1.reconciles - flux0.reconciles,
        fc_requests=fc_requests,
        flux_requests=requests_of(audit, FLUX_USER),
        child_writes=child_writes,
        cpu=cpu,
    )


def request_all_configs(run: Run) -> Requested:
    """``requestedAt`` on every FluxConfig: each reconciles in full and must write ``lastHandledReconcileAt`` only."""
    token, keys = "bench-requested", run.keys
    fc0, audit0, cpu0, began = run.fc_metrics(), run.offset(), cpu_of(run.fc.pid).total, time.monotonic()
    for key in sorted(keys.configs):
        namespace, name = key.split("/")
        request_reconcile(run.api, f"/apis/{GROUP_VERSION}/namespaces/{namespace}/fluxconfigs", {name}, token)
    done = run.watchers[0].wait_all(began, handled(token), keys.configs, 120 + len(keys.configs), run.alive, token)
    end = time.monotonic()
    time.sleep(1.0)
    fc1 = run.fc_metrics()
    found = writes(run.watchers[0].snapshot(), began, end + 1.0, ignore=("lastHandledReconcileAt",))
    return Requested(
        seconds=max(done.values()),
        aggregation_writes=found.status_total,
        handled_writes=found.ignored,
        fc_reconciles=fc1.reconciles - fc0.reconciles,
        fc_mean_ms=fc1.mean_reconcile_ms_since(fc0),
        fc_requests=requests_of(audit_events(run.audit, audit0), FC_USER),
        cpu_s=cpu_of(run.fc.pid).total - cpu0,
    )


# -- the run -----------------------------------------------------------------------------------------


@dataclass
class Environment:
    bins: Path
    work: Path
    git_url: str
    repo: GitRepo
    bare: Path
    git_pid: int


@contextlib.contextmanager
def environment(args: argparse.Namespace) -> Iterator[Environment]:
    """A work dir and the repository, served by the tests' git server in a process of its own (N sources
    fetch it every interval); all gone on the way out."""
    bins = binary_dir()
    with tempfile.TemporaryDirectory(prefix="fluxwarden-bench-fluxconfig-") as tmp:
        work = Path(tmp)
        bare = init_bare_repo(work / "repos" / f"{REPO_NAME}.git", default_branch=BRANCH)
        repo = GitRepo(work / "checkout", branch=BRANCH)
        repo.commit(manifests(args.configs, "v1"), message="v1")
        repo.push(bare)
        server, url = start_git_server(work / "repos", work / "git-server.log")
        try:
            yield Environment(bins, work, f"{url}/{REPO_NAME}.git", repo, bare, server.pid)
        finally:
            server.stop()


def revision_of(repo: GitRepo) -> str:
    return f"{BRANCH}@sha1:{repo.rev_parse('HEAD')}"


def start_controllers(plane: Any, work: Path, args: argparse.Namespace) -> tuple[Controller, Controller]:
    """``--controllers source,kustomize`` and ``--controllers fluxconfig``, each as its own user."""
    tmp = work / "controller-tmp"  # kustomize build dirs, removed with the work dir
    tmp.mkdir(exist_ok=True)
    env = controller_env(tmp)
    flux_config_file = user_kubeconfig(plane, FLUX_USER, work / "flux-controllers.kubeconfig")
    fc_config_file = user_kubeconfig(plane, FC_USER, work / "fluxconfig-controller.kubeconfig")
    (work / "fc").mkdir(exist_ok=True)
    flux_cli = controllers_run(plane, work, args, "source,kustomize", kubeconfig=flux_config_file)
    fc_cli = controllers_run(plane, work / "fc", args, "fluxconfig", kubeconfig=fc_config_file)
    flux = Controller.launch(flux_cli, work / "flux-controllers.log", module="bench.fluxconfig", env=env,
                             request_timeout=30)  # fmt: skip
    fc = Controller.launch(fc_cli, work / "fluxconfig-controller.log", module="bench.fluxconfig", env=env,
                           request_timeout=30)  # fmt: skip
    return flux, fc


def run_bench(args: argparse.Namespace, env: Environment) -> Result:
    n, keys = args.configs, Keys.of(args.configs, args.scope)
    load = [f"start {load_average()}"]
    work = env.work / "cluster"
    work.mkdir()
    audit = work / "audit.log"
    with cluster(env.bins, work, audit_log=audit) as running:
        plane = running.plane
        running.kubectl("apply", "--server-side", "-f", str(CRD))
        running.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
        assert plane.apiserver.pid is not None and plane.etcd.pid is not None
        api = KubeApi(plane, timeout=120)
        began = time.monotonic()
        namespaces = [tenant(i) for i in range(n)] + ([CLUSTER_CONFIG] if args.scope == "cluster" else [])
        for namespace in namespaces:
            api.must("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
        setup_s = time.monotonic() - began
        flux, fc = start_controllers(plane, work, args)
        stops: list[tuple[int | None, float]] = []
        with contextlib.ExitStack() as stack:
            stack.callback(api.close)
            stack.callback(lambda: stops.append(flux.stop()))
            stack.callback(lambda: stops.append(fc.stop()))
            flux.wait_ready()
            fc.wait_ready()
            time.sleep(args.settle)
            idle_rss = memory_kib(fc.pid)["VmRSS"]
            idle_cpu = fc.idle_cpu(args.idle)
            pids = {"fluxconfig": fc.pid, "source+kustomize": flux.pid, "apiserver": plane.apiserver.pid,
                    "etcd": plane.etcd.pid, "git server": env.git_pid}  # fmt: skip
            with watching(plane, FLUXCONFIGS, KUSTOMIZATIONS, GITREPOSITORIES) as found:
                watchers = (found[0], found[1], found[2])
                run = Run(api, watchers, fc, flux, pids, audit, keys)

                # 1. create N, until all Compliant at the first revision
                revision = revision_of(env.repo)
                mark = run.mark()
                t0 = time.monotonic()
                for index in range(n):
                    body = flux_config(index, args, env.git_url)
                    api.must("POST", f"/apis/{GROUP_VERSION}/namespaces/{home(index, args.scope)}/fluxconfigs", body)
                create_s = time.monotonic() - t0
                times = converge(watchers, keys, revision, t0, 300 + 3 * n, run.alive, "Compliant after create")
                t1 = time.monotonic()
                time.sleep(0.5)
                ready = run.converged(mark, times, t0, t1)
                ready_hwm = memory_kib(fc.pid)["VmHWM"]
                load.append(f"all Compliant {load_average()}")

                # 2. steady state: nothing changes, the controllers reconcile
                fc.watch(args.settle)
                steady = steady_window(run, args)
                load.append(f"after window {load_average()}")
                requested = request_all_configs(run)

                # 3. one push changing every config's manifests
                fc.watch(args.settle)
                mark = run.mark()
                t0 = time.monotonic()
                env.repo.commit(manifests(n, "v2"), message="v2")
                env.repo.push(env.bare)
                revision = revision_of(env.repo)
                if args.push_nudge:
                    nudge(api, keys, "bench-push", sources=True, kustomizations=False)
                timeout = 300 + 2 * n + (0 if args.push_nudge else 1.1 * args.interval)
                times = converge(watchers, keys, revision, t0, timeout, run.alive, "Compliant after the push")
                t1 = time.monotonic()
                time.sleep(0.5)
                push = run.converged(mark, times, t0, t1)
                maps = api.items(MANAGED_CONFIG_MAPS)
                at_v2 = sum(1 for m in maps if (m.get("data") or {}).get("version") == "v2")
                load.append(f"after push {load_average()}")
            fc_memory, flux_memory = memory_kib(fc.pid), memory_kib(flux.pid)
        logs = {name: log_errors(c.child.log_path) for name, c in (("fluxconfig", fc), ("source+kustomize", flux))}
    return Result(
        n=n, scope=args.scope, setup_s=setup_s, create_s=create_s, idle_rss_kib=idle_rss, idle_cpu=idle_cpu,
        ready=ready, ready_hwm_kib=ready_hwm, steady=steady, requested=requested, push=push,
        push_nudged=args.push_nudge,
        config_maps=(at_v2, len(maps)), fc_hwm_kib=fc_memory["VmHWM"], fc_rss_kib=fc_memory["VmRSS"],
        flux_hwm_kib=flux_memory["VmHWM"], stops=stops, load=load, logs=logs,
    )  # fmt: skip


def log_errors(path: Path) -> tuple[int, int, str]:
    """Lines of a controller's log, those that say error or Traceback, and the first of them."""
    lines = path.read_text(errors="replace").splitlines()
    bad = [line for line in lines if "error" in line.lower() or "traceback" in line.lower()]
    return len(lines), len(bad), bad[0][:300] if bad else ""


# -- reporting ---------------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    if not values:
        return "none"
    return f"p50 {pct(values, 50):.1f}s, p90 {pct(values, 90):.1f}s, max {max(values):.1f}s"


def cpu_line(cpu: dict[str, float], seconds: float) -> str:
    return ", ".join(f"{k} {v:.1f}s ({100 * v / max(seconds, 1e-9):.0f}%)" for k, v in cpu.items())


def top(counts: collections.Counter[str], per: float, unit: str, limit: int = 8) -> str:
    rows = [(k, v) for k, v in counts.most_common() if not k.startswith("watch ")]
    return ", ".join(f"{k} {v / per:.1f}" for k, v in rows[:limit]) + (f" (per {unit})" if rows else "none")


def report_converge(c: Converge, n: int, what: str) -> None:
    writes_per = sorted(c.status_writes.values())
    requests = non_watch(c.fc_requests)
    print(f"  {what}: all {n} FluxConfigs Compliant in {c.seconds:.1f}s")
    print(f"    FluxConfigs Compliant:  {spread(c.configs)}")
    print(f"    GitRepositories Ready:  {spread(c.sources)}")
    for part in PARTS:
        print(f"    Kustomizations {part + ':':<7} {spread(c.kustomizations[part])}")
    print(f"    aggregation lag (Compliant after the config's last child Ready): {spread(c.lag)}")
    print(f"    apps applied the revision before its infra (dependsOn): {c.apps_first} of {n} configs (Flux: 0)")
    print(
        f"    FluxConfig status writes: {sum(writes_per)} ({sum(writes_per) / n:.1f} per config, max {writes_per[-1]});"
        " "
        f"fluxconfig controller: {c.fc_reconciles:.0f} reconciles ({c.fc_reconciles / n:.1f} per config), "
        f"{requests} API requests ({requests / n:.1f} per config)"
    )
    print(f"      requests per config: {top(c.fc_requests, n, 'config')}")
    print(f"    CPU: {cpu_line(c.cpu, c.seconds)}")


def report(r: Result, args: argparse.Namespace) -> None:
    n = r.n
    print(
        f"\n== {n} FluxConfigs x 2 Kustomizations (infra; apps dependsOn infra), one git repository, scope {r.scope}, "
        f"syncIntervalInSeconds {args.interval}"
    )
    print(f"  load avg: {'; '.join(r.load)}; set-up {r.setup_s:.1f}s; {n} creates sent in {r.create_s:.1f}s")
    report_converge(r.ready, n, "create")
    print(
        f"  fluxconfig controller RSS: idle {r.idle_rss_kib / MIB:.1f} MiB, peak (VmHWM) {r.ready_hwm_kib / MIB:.1f}"
        " at "
        f"all Compliant, {r.fc_hwm_kib / MIB:.1f} at the end (VmRSS {r.fc_rss_kib / MIB:.1f}); idle CPU "
        f"{100 * r.idle_cpu:.2f}% of a core; source+kustomize process VmHWM {r.flux_hwm_kib / MIB:.1f} MiB"
    )
    s = r.steady
    minutes = s.minutes
    nudges = "; ".join(f"{count} children handled in {sec:.1f}s" for sec, count in s.nudges)
    fc_requests = non_watch(s.fc_requests)
    print(
        f"  steady {s.seconds:.0f}s, nothing changing, {len(s.nudges)} requested reconciles of every child ({nudges})"
    )
    print(
        f"    FluxConfig status writes: {s.writes_watch} ({s.writes_watch / minutes:.2f}/min; target 0) by the watch; "
        f"{s.status_patches} PATCH fluxconfigs/status in the audit log; {s.versions_moved} of {n} resourceVersions"
        " moved; "
        f"{s.writes_other} other FluxConfig writes"
    )
    print(
        f"    reconciling meanwhile: fluxconfig {s.fc_reconciles:.0f} reconciles ({s.fc_reconciles / minutes:.0f}/min, "
        f"{s.fc_errors:.0f} errors, mean {s.fc_mean_ms:.1f} ms); source+kustomize {s.flux_reconciles:.0f} "
        f"({s.flux_reconciles / minutes:.0f}/min); {s.child_writes} of {3 * n} children's status written"
    )
    per_reconcile = fc_requests / max(s.fc_reconciles, 1)
    print(
        f"    fluxconfig controller API requests: {fc_requests} ({fc_requests / minutes:.0f}/min, "
        f"{per_reconcile:.1f} per reconcile): {top(s.fc_requests, minutes, 'min')}"
    )
    flux_requests = non_watch(s.flux_requests)
    print(f"    source+kustomize API requests: {flux_requests} ({flux_requests / minutes:.0f}/min)")
    print(f"    CPU: {cpu_line(s.cpu, s.seconds)}")
    q = r.requested
    q_requests = non_watch(q.fc_requests)
    print(
        f"  requested reconcile of every FluxConfig (requestedAt, nothing else changed): handled in {q.seconds:.1f}s, "
        f"{q.fc_reconciles:.0f} reconciles, mean {q.fc_mean_ms:.1f} ms, {1e3 * q.cpu_s / n:.0f} ms CPU per config"
    )
    print(
        f"    status writes beyond lastHandledReconcileAt: {q.aggregation_writes} (target 0); lastHandledReconcileAt "
        f"alone: {q.handled_writes} (expected {n}); API requests per reconcile "
        f"{q_requests / max(q.fc_reconciles, 1):.1f}: {top(q.fc_requests, max(q.fc_reconciles, 1), 'reconcile')}"
    )
    how = "a requested reconcile of every GitRepository" if r.push_nudged else f"the {args.interval}s interval"
    report_converge(r.push, n, f"git push changing all {2 * n} ConfigMaps, then {how}")
    print(f"    ConfigMaps at the new version: {r.config_maps[0]} of {r.config_maps[1]} (expected {2 * n})")
    for name, (lines, bad, first) in r.logs.items():
        print(f"  {name} log: {lines} lines, {bad} mention an error" + (f"; first: {first}" if bad else ""))
    print("  SIGTERM to exit: " + ", ".join(f"{sec:.1f}s (exit {code})" for code, sec in r.stops))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.code != "worktree":
        return rerun_from_copy("bench.fluxconfig", argv, args, show_commit=False)
    arm_deadline("bench.fluxconfig", args.deadline)
    import fluxwarden

    print(
        f"bench.fluxconfig: {os.cpu_count()} cores, load avg {load_average()}; {args.configs} FluxConfigs; "
        f"controllers `--controllers source,kustomize` and `--controllers fluxconfig` (--concurrency "
        f"{args.concurrency}{'' if args.enforce else ', --no-enforce'}) from {Path(fluxwarden.__file__).parent}",
        flush=True,
    )
    try:
        with environment(args) as env:
            began = time.monotonic()
            result = run_bench(args, env)
            print(f"  (took {time.monotonic() - began:.0f}s)", flush=True)
    finally:
        signal.alarm(0)
    report(result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
