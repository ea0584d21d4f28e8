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
   poll); the CPU of the controller (its threads; its children: the helm processes it reaped), the
   API server, etcd and this process; the helm processes started, by subcommand; the ConfigMaps
   (10 N) and release Secrets (N) that exist;
2. the controller's RSS before the first HelmRelease, its own peak (``VmHWM``), and the peak of the
   whole process tree (controller + helm children at once), sampled every 20 ms from ``/proc``;
3. no-op reconciles (``--noop-rounds``): ``reconcile.fluxcd.io/requestedAt`` set on all N, then a
   wait until every ``status.lastHandledReconcileAt`` matches: seconds, helm processes started
   (target 0), controller CPU per no-op (gross and above the idle controller), API requests per
   no-op (``apiserver_request_total``; this benchmark's own patches and lists taken out), and
   that no ConfigMap or release Secret was written;
4. once, after the largest N, with the controller stopped: helm alone against the same cluster
   (``helm version``: process start; ``helm template``: render; ``helm status``: client and
   storage read; ``helm install`` of a fresh release as flux-applier with the controller's flags,
   with a cold and a warm discovery cache; ``helm package``, which the source controller runs per
   HelmChart), so the report can say whether process start and discovery dominate.

Helm processes are counted exactly: ``helm`` on the controller's PATH is a two-line shell script
that appends its pid and first argument to a log, then ``exec``\\ s the pinned helm (same pid, same
argv[0], ~2 ms). The workload (``Workload``, ``set_up_workload``, ``create_releases``) takes a
namespace prefix, N and the repository URL, so ``bench/vs_flux`` can run Flux's helm-controller on
the same objects. Everything it starts is stopped and every temporary directory removed on the way
out; the whole run is bounded by ``--deadline`` and every wait by its own timeout.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cluster import (
    DISCOVERY,
    KubeApi,
    add_run_arguments,
    api_requests,
    arm_deadline,
    cluster,
    count_list,
    grant_tenant_admin,
    load_average,
    memory_kib,
    rerun_from_copy,
)
from bench.controller import (
    Controller,
    Metrics,
    Poll,
    Snapshot,
    Window,
    add_controller_arguments,
    changed,
    controllers_run,
    pct,
    ready_condition,
    request_reconcile,
    resource_versions,
)
from tests.support.binaries import binary_dir
from tests.support.control_plane import ControlPlane
from tests.support.helm_repo import HelmRepoServer
from tests.support.tls import PrivateCA

PREFIX = "bench"
APPLIER = "flux-applier"
REPOSITORY = "charts"
CA_SECRET = "charts-ca"
CHART, CHART_VERSION = "bench-app", "1.0.0"
HELM_RELEASES = "/apis/helm.toolkit.fluxcd.io/v2/namespaces/{namespace}/helmreleases"
HELM_REPOSITORIES = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{namespace}/helmrepositories"
RELEASE_SECRETS = "/api/v1/secrets?labelSelector=owner%3Dhelm"  # helm's storage driver labels its Secrets so
CONTROLLER_NAME = "helm-controller"  # the manager's name for the HelmRelease controller (metrics label)
MIB = 1024.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.helm", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", "--counts", dest="counts", default="10,50,200", help="numbers of HelmReleases")
    parser.add_argument("--files", type=int, default=10, help="ConfigMaps in the chart (default 10)")
    parser.add_argument("--noop-rounds", type=int, default=2, help="requested no-op reconciles of all N, one by one")
    parser.add_argument("--samples", type=int, default=5, help="helm calls timed alone, per kind (largest N)")
    add_controller_arguments(parser)
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    args.count_list = count_list(parser, args.counts)
    if args.noop_rounds < 1 or args.samples < 1:
        parser.error("--noop-rounds and --samples must be at least 1")
    return args


# -- the workload (also Flux's, in bench/vs_flux) --------------------------------------------------


def chart_templates(files: int) -> dict[str, str]:
    """``files`` ConfigMaps of ~0.4 KB (as bench.kustomize's), one value of the release in each."""
    return {
        f"config-{k:02d}.yaml": (
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-{k:02d}\n  labels:\n"
            f"    app.kubernetes.io/name: bench-app\n    app.kubernetes.io/part-of: bench\ndata:\n"
            "  tenant: {{ .Values.tenant | quote }}\n" + "".join(f"  key{j}: value-{k}-{j}\n" for j in range(12))
        )
        for k in range(files)
    }


@dataclass(frozen=True)
class Workload:
    """N HelmReleases of one chart in ``<prefix>-config``, each released into its own ``<prefix>-t-NNNN``.

    ``service_account`` None leaves ``spec.serviceAccountName`` unset (fluxwarden then runs helm as
    ``flux-applier``; Flux needs ``--default-service-account=flux-applier`` for the same).
    """

    prefix: str
    n: int
    repo_url: str
    ca_pem: bytes
    service_account: str | None = None

    @property
    def config_namespace(self) -> str:
        return f"{self.prefix}-config"

    @property
    def collection(self) -> str:
        return HELM_RELEASES.format(namespace=self.config_namespace)

    def target_namespace(self, index: int) -> str:
        return f"{self.prefix}-t-{index:04d}"

    @staticmethod
    def name(index: int) -> str:
        return f"app-{index:04d}"

    @property
    def names(self) -> set[str]:
        return {self.name(i) for i in range(self.n)}

    def helm_repository(self) -> dict[str, Any]:
        return {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": {"name": REPOSITORY, "namespace": self.config_namespace},
            "spec": {"url": self.repo_url, "interval": "10m", "certSecretRef": {"name": CA_SECRET}},
        }

    def helm_release(self, index: int) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "interval": "10m",
            "targetNamespace": self.target_namespace(index),
            "chart": {
                "spec": {
                    "chart": CHART,
                    "version": CHART_VERSION,
                    "sourceRef": {"kind": "HelmRepository", "name": REPOSITORY},
                    "interval": "10m",
                }
            },
            "install": {"remediation": {"retries": 3}},  # a transient failure is a late Ready, not a 10m hole
            "values": {"tenant": self.name(index)},
        }
        if self.service_account is not None:
            spec["serviceAccountName"] = self.service_account
        return {
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": self.name(index), "namespace": self.config_namespace},
            "spec": spec,
        }


def set_up_workload(api: KubeApi, workload: Workload) -> float:
    """Everything but the HelmReleases: the configuration namespace with its applier (tenant-admin there
    too, since Flux stores releases there), N target namespaces it may write to, the CA Secret and the
    HelmRepository. Seconds taken."""
    began = time.monotonic()
    config = workload.config_namespace
    api.must("POST", "/api/v1/namespaces", {"metadata": {"name": config}})
    targets = [workload.target_namespace(i) for i in range(workload.n)]
    grant_tenant_admin(api, config, APPLIER, targets, in_config=True)
    secret = {"metadata": {"name": CA_SECRET}, "data": {"ca.crt": base64.b64encode(workload.ca_pem).decode()}}
    api.must("POST", f"/api/v1/namespaces/{config}/secrets", secret)
    api.must("POST", HELM_REPOSITORIES.format(namespace=config), workload.helm_repository())
    return time.monotonic() - began


def create_releases(api: KubeApi, workload: Workload) -> float:
    """The N HelmReleases, one POST each over one connection; seconds taken."""
    began = time.monotonic()
    for index in range(workload.n):
        api.must("POST", workload.collection, workload.helm_release(index))
    return time.monotonic() - began


def is_released(obj: dict[str, Any]) -> bool:
    """Ready=True at the object's current generation."""
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return ready_condition(obj).get("status") == "True"


def wait_repository_ready(api: KubeApi, workload: Workload, timeout: float = 120.0) -> float:
    began, deadline = time.monotonic(), time.monotonic() + timeout
    path = HELM_REPOSITORIES.format(namespace=workload.config_namespace) + f"/{REPOSITORY}"
    while True:
        obj = api.must("GET", path)
        if (obj.get("status") or {}).get("artifact") and ready_condition(obj).get("status") == "True":
            return time.monotonic() - began
        if time.monotonic() > deadline:
            raise RuntimeError(f"HelmRepository {REPOSITORY} not Ready after {timeout:.0f}s: {obj.get('status')}")
        time.sleep(0.2)


def poll_interval(n: int) -> float:
    return min(2.0, max(0.25, n / 200))


def release_poll(api: KubeApi, workload: Workload, done_when: Any, timeout: float) -> Poll:
    return Poll(
        lambda: api.items(workload.collection), workload.names, done_when, poll_interval(workload.n),
        time.monotonic() + timeout,
    )  # fmt: skip


def config_maps(api: KubeApi, workload: Workload) -> dict[str, str]:
    """resourceVersion of every ConfigMap of the chart in the target namespaces."""
    prefix = f"{workload.prefix}-t-"
    return {
        key: version
        for key, version in resource_versions(api, "/api/v1/configmaps").items()
        if key.startswith(prefix) and "/config-" in key
    }


def field_managers(api: KubeApi, path: str) -> list[str]:
    status, obj = api.send("GET", path)
    return sorted({e.get("manager", "") for e in obj["metadata"].get("managedFields") or []}) if status == 200 else []


def events(api: KubeApi, workload: Workload) -> int:
    return len(api.items(f"/api/v1/namespaces/{workload.config_namespace}/events"))


# -- the chart repository --------------------------------------------------------------------------


@contextlib.contextmanager
def chart_repository(root: Path, files: int) -> Iterator[tuple[HelmRepoServer, PrivateCA, Path]]:
    """``bench-app`` packaged by the real helm and served over HTTPS with its own CA; its archive."""
    authority = PrivateCA()
    with HelmRepoServer(root, tls=authority.server_context()) as server:
        archive = server.add_chart(CHART, CHART_VERSION, {"tenant": ""}, templates=chart_templates(files))
        yield server, authority, archive


# -- helm processes: counted exactly, and sampled for memory ---------------------------------------


class HelmCounter:
    """``helm`` for the controller's PATH: logs ``<pid> <first argument>``, then ``exec``\\ s the real helm
    under the same ``argv[0]`` (the controller runs helm through a link named ``helm-controller``, which
    helm then names its server-side apply field manager after).

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
            f'exec -a "$0" {shlex.quote(str(real))} "$@"\n'  # helm names its field manager after argv[0]
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


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def _status(pid: int) -> dict[str, str]:
    values: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Name", "VmRSS", "RssAnon", "VmHWM"):
                values[key] = rest.strip().split()[0] if key != "Name" else rest.strip()
    return values


@dataclass
class Tree:
    """The controller's process tree as sampled: peaks of the sum over live processes."""

    samples: int = 0
    peak_rss_kib: int = 0  # sum of VmRSS: counts helm's shared binary pages once per process, an upper bound
    peak_anon_kib: int = 0  # sum of RssAnon: the memory no process shares
    peak_children: int = 0
    child_hwm_kib: int = 0  # the largest VmHWM seen of a helm child
    helm_pids: set[int] = field(default_factory=set)
    seen: dict[int, tuple[float, float]] = field(default_factory=dict)  # helm pid -> first and last sample seen
    names: dict[int, str] = field(default_factory=dict)  # every descendant seen -> its name (comm)
    sampler_cpu_s: float = 0.0

    def lifetimes_ms(self, commands: dict[int, str]) -> dict[str, list[float]]:
        """How long each helm process lived, by its first argument (``commands``: pid -> it), to one sample."""
        found: dict[str, list[float]] = collections.defaultdict(list)
        for pid, (first, last) in self.seen.items():
            if pid in commands:
                found[commands[pid]].append((last - first) * 1e3)
        return dict(found)

    def unlogged(self, commands: dict[int, str]) -> collections.Counter[str]:
        """Names of the descendants that the counting helm did not log (not helm, or not through PATH)."""
        return collections.Counter(name for pid, name in self.names.items() if pid not in commands)


class TreeSampler:
    """A thread that reads the controller's descendants from ``/proc`` every ``every`` s."""

    def __init__(self, root: int, every: float = 0.02) -> None:
        self.root, self.every, self.tree = root, every, Tree()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)

    def _sample(self) -> None:
        pids, queue = [], [self.root]
        while queue:
            pid = queue.pop()
            pids.append(pid)
            queue += _children(pid)
        rss = anon = children = 0
        now = time.monotonic()
        for pid in pids:
            status = _status(pid)
            if not status.get("VmRSS"):
                continue  # gone, or a zombie
            rss, anon = rss + int(status["VmRSS"]), anon + int(status.get("RssAnon", "0"))
            if pid != self.root:
                children += 1
                self.tree.names[pid] = status.get("Name", "?")  # the last: a fork shows its parent's name until exec
                if status.get("Name", "").startswith("helm"):
                    self.tree.helm_pids.add(pid)
                    self.tree.seen[pid] = (self.tree.seen.get(pid, (now, now))[0], now)
                    self.tree.child_hwm_kib = max(self.tree.child_hwm_kib, int(status.get("VmHWM", "0")))
        t = self.tree
        t.samples += 1
        t.peak_rss_kib, t.peak_anon_kib = max(t.peak_rss_kib, rss), max(t.peak_anon_kib, anon)
        t.peak_children = max(t.peak_children, children)

    def _run(self) -> None:
        began = time.thread_time()
        while not self._stop.wait(self.every):
            self._sample()
        self.tree.sampler_cpu_s = time.thread_time() - began

    def __enter__(self) -> Tree:
        self._thread.start()
        return self.tree

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


# -- the controller process ------------------------------------------------------------------------


def start_controller(plane: ControlPlane, work: Path, args: argparse.Namespace, helm: HelmCounter) -> Controller:
    """``fluxwarden controllers run --controllers source,helm`` in its own process; the counting helm first
    on its PATH, then the pinned binaries."""
    tmp = work / "controller-tmp"  # helm's values files and caches, removed with the work dir
    tmp.mkdir(exist_ok=True)
    path = os.pathsep.join([str(helm.directory), str(binary_dir()), os.environ.get("PATH", os.defpath)])
    env = {**os.environ, "PATH": path, "TMPDIR": str(tmp)}
    cli = controllers_run(plane, work, args, "source,helm")
    return Controller.launch(cli, work / "controller.log", module="bench.helm", env=env, request_timeout=30)


_METRIC_NAMES = (
    "controller_runtime_reconcile_total",
    "gotk_reconcile_duration_seconds_sum",
    "gotk_reconcile_duration_seconds_count",
)


def scrape(controller: Controller) -> Metrics:
    query = "&".join(f"name[]={name}" for name in _METRIC_NAMES)
    return Metrics.parse(controller.scrape(f"?{query}"), kind="HelmRelease", controller=CONTROLLER_NAME)


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

    def cpu_ms(self, n: int, idle_cpu: float) -> tuple[float, float]:
        """Controller CPU per no-op reconcile: gross, and above the idle controller."""
        total = self.window.controller.total
        return total / n * 1e3, max(0.0, total - idle_cpu * self.window.seconds) / n * 1e3


@dataclass
class Result:
    n: int
    setup_s: float
    create_s: float
    ready_times: list[float]
    failed: dict[str, str]
    lists: int
    ready: Window
    ready_reconciles: float
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
    alone: HelmAlone | None = None  # helm timed alone (the largest N)
    stop: tuple[int | None, float] = (None, 0.0)
    load: list[str] = field(default_factory=list)

    @property
    def all_ready_s(self) -> float:
        return self.ready_times[-1]


def noop_round(
    api: KubeApi,
    poll_api: KubeApi,
    workload: Workload,
    controller: Controller,
    pids: tuple[int, int, int],
    helm: HelmCounter,
    token: str,
) -> NoOp:
    """requestedAt = ``token`` on all N, until every lastHandledReconcileAt is ``token``."""
    n = workload.n
    maps, secrets = config_maps(api, workload), resource_versions(api, RELEASE_SECRETS)
    events_before = events(api, workload)
    first, mark = scrape(controller), len(helm.calls())
    requests_before = api_requests(api)

    def handled(obj: dict[str, Any]) -> bool:
        return (obj.get("status") or {}).get("lastHandledReconcileAt") == token

    poll = release_poll(poll_api, workload, handled, 120.0 + 1.0 * n)
    start = Snapshot.take(*pids)
    with TreeSampler(controller.pid) as tree:
        poll.start()
        request_reconcile(api, workload.collection, workload.names, token)
        seconds = poll.wait(controller.child, f"lastHandledReconcileAt {token}")[-1]
    end = Snapshot.take(*pids)
    requests = api_requests(api) - requests_before
    ours = collections.Counter({"PATCH helmreleases": n, "LIST helmreleases": poll.lists})
    last = scrape(controller)
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
    )


def run_count(n: int, args: argparse.Namespace, env: Environment) -> Result:
    """One N on a fresh control plane and controller; see the module docstring for the phases."""
    load = [f"start {load_average()}"]
    work = Path(tempfile.mkdtemp(prefix=f"n{n}-", dir=env.work))
    workload = Workload(PREFIX, n, env.repo_url, env.ca_pem)
    helm = HelmCounter(work / "helm-shim", binary_dir() / "helm")
    with cluster(env.bins, work) as running:
        plane = running.plane
        assert plane.apiserver.pid is not None and plane.etcd.pid is not None
        api, poll_api = KubeApi(plane, timeout=120), KubeApi(plane, timeout=120)
        stopped: list[tuple[int | None, float]] = []
        with contextlib.ExitStack() as stack:
            stack.callback(api.close)
            stack.callback(poll_api.close)
            setup_s = set_up_workload(api, workload)
            controller = start_controller(plane, work, args, helm)
            stack.callback(lambda: stopped.append(controller.stop()))
            pids = (controller.pid, plane.apiserver.pid, plane.etcd.pid)
            controller.wait_ready()
            wait_repository_ready(api, workload)
            time.sleep(args.settle)
            idle_rss = memory_kib(controller.pid)["VmRSS"]
            idle_cpu = controller.idle_cpu(args.idle)

            # 1. create N, until all are Ready
            m0, mark = scrape(controller), len(helm.calls())
            poll = release_poll(poll_api, workload, is_released, 180.0 + 3.0 * n)
            before = Snapshot.take(*pids)
            with TreeSampler(controller.pid) as tree:
                poll.start()
                create_s = create_releases(api, workload)
                ready_times = poll.wait(controller.child, "Ready after create")
            after = Snapshot.take(*pids)
            ready_hwm = memory_kib(controller.pid)["VmHWM"]
            m1, helm_calls = scrape(controller), helm.since(mark)
            load.append(f"all Ready {load_average()}")
            maps = config_maps(api, workload)
            secrets = api.items(RELEASE_SECRETS)
            managers = field_managers(api, f"/api/v1/namespaces/{workload.target_namespace(0)}/configmaps/config-00")
            events_ready = events(api, workload)

            # 2. requested reconciles where nothing changed
            noops = []
            for round_ in range(args.noop_rounds):
                time.sleep(args.settle)
                noops.append(noop_round(api, poll_api, workload, controller, pids, helm, f"bench-noop-{round_}"))
            load.append(f"after no-ops {load_average()}")
            end_hwm = memory_kib(controller.pid)["VmHWM"]
        alone = None
        if n == args.count_list[-1]:  # the controller is stopped: helm alone on the same cluster
            meta: dict[str, Any] = secrets[0]["metadata"] if secrets else {}
            release = (str(meta.get("namespace", "")), str((meta.get("labels") or {}).get("name", "")))
            alone = time_helm(plane, work, env.archive, release, args.samples)
    return Result(
        n=n,
        setup_s=setup_s,
        create_s=create_s,
        ready_times=ready_times,
        failed=poll.failed,
        lists=poll.lists,
        ready=Window.between(before, after),
        ready_reconciles=m1.reconciles - m0.reconciles,
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
        alone=alone,
        stop=stopped[0] if stopped else (None, 0.0),
        load=load,
    )


# -- helm alone ------------------------------------------------------------------------------------


@dataclass
class Call:
    """One kind of helm call timed alone: wall and CPU ms, API requests, per sample."""

    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)  # the process's VmHWM, read until it exits
    requests: list[collections.Counter[str]] = field(default_factory=list)

    def line(self, name: str) -> str:
        api = ""
        if self.requests:
            total = statistics.median(sum(r.values()) for r in self.requests)
            keys = collections.Counter(k for r in self.requests for k in r)
            each = ", ".join(f"{k} {statistics.median(r[k] for r in self.requests):g}" for k, _ in keys.most_common(8))
            api = f"\n      API requests {total:g}: {each}"
        return (
            f"  {name:<44} wall p50 {pct(self.wall_ms, 50):6.1f} ms (min {min(self.wall_ms):6.1f}), CPU p50 "
            f"{pct(self.cpu_ms, 50):6.1f} ms, peak RSS {max(self.rss_kib) / MIB:5.1f} MiB{api}"
        )


class PeakRss:
    """A thread that reads ``VmHWM`` of ``pid`` every 10 ms until it exits (``ru_maxrss`` of a child would count
    the pages of this process it was forked from)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.kib = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            hwm = _status(self.pid).get("VmHWM")
            if hwm:
                self.kib = max(self.kib, int(hwm))
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class HelmAlone:
    calls: dict[str, Call]
    argv: str


def helm_env(home: Path, discovery_cache: Path) -> dict[str, str]:
    """A throw-away helm home; ``KUBECACHEDIR`` is where client-go keeps its discovery cache."""
    return {
        **os.environ, "HOME": str(home), "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data"),
        "KUBECACHEDIR": str(discovery_cache),
    }  # fmt: skip


def post_renderer(work: Path, name: str, namespace: str) -> tuple[list[str], dict[str, str], Path] | None:
    """The controller's post-renderer for a HelmRelease with no postRenderers (the owner labels alone):
    helm's flags, its environment and the plugin's config file; None for code from before the plugin."""
    try:
        from fluxwarden.controllers.helm import postrender
    except ImportError:
        return None
    owner = {"helm.toolkit.fluxcd.io/name": name, "helm.toolkit.fluxcd.io/namespace": namespace}
    scratch = Path(tempfile.mkdtemp(prefix="postrender-", dir=work))
    prepared = postrender.prepare(scratch, None, None, owner, kustomize=str(binary_dir() / "kustomize"))
    return prepared.args, prepared.env, Path(prepared.args[-1])


def time_helm(plane: ControlPlane, work: Path, archive: Path, release: tuple[str, str], samples: int) -> HelmAlone:
    """Each helm call of a reconcile alone, against the cluster with no controller running.

    ``install`` (the controller's flags) of a fresh release into a fresh namespace where
    ``bench-config:flux-applier`` is tenant admin, impersonated as the controller does: with a cold
    discovery cache (an empty ``KUBECACHEDIR`` per call, as a helm with a new home has), a warm one
    (shared, filled once; the controller keeps one ``$HOME``), and warm with the post-renderer the
    controller adds to every install (its plugin: a Python interpreter, then kustomize), whose
    parts are timed alone too.
    """
    helm = str(binary_dir() / "helm")
    api = KubeApi(plane, timeout=120)
    calls: dict[str, Call] = collections.defaultdict(Call)
    values = work / "values.yaml"
    values.write_text("tenant: alone\n")
    # as the controller's runner.Identity: the user only, the API server adds a service account's groups
    impersonate = ["--kube-as-user", f"system:serviceaccount:{PREFIX}-config:{APPLIER}"]
    kube = ["--kubeconfig", str(plane.kubeconfig)]
    warm = work / "discovery-warm"
    namespaces = [f"{PREFIX}-alone-{i:02d}" for i in range(3 * samples + 1)]
    grant_tenant_admin(api, f"{PREFIX}-config", APPLIER, namespaces)
    post = post_renderer(work, "alone", f"{PREFIX}-config")
    rendered = work / "rendered.yaml"

    def install(name: str, namespace: str, *extra: str) -> list[str]:
        """The controller's install (fluxwarden/controllers/helm/commands.py, Flux's defaults)."""
        return [
            helm, "install", name, str(archive), "--values", str(values), "--namespace", namespace, "--timeout",
            "300s", "--wait=watcher", "--wait-for-jobs", "--take-ownership", "--server-side=true", *kube,
            *impersonate, *extra,
        ]  # fmt: skip

    def run(
        kind: str | None,
        argv: list[str],
        cache: Path,
        count: bool = True,
        *,
        extra_env: dict[str, str] | None = None,
        stdin: Path | None = None,
        stdout: Path | None = None,
    ) -> None:
        home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
        before_requests = api_requests(api, discovery=True) if count else None
        out, err = stdout or home / "out.txt", home / "err.txt"
        with out.open("wb") as sink, err.open("wb") as errors, (stdin or Path(os.devnull)).open("rb") as source:
            began = time.perf_counter()
            env = {**helm_env(home, cache), **(extra_env or {})}
            process = subprocess.Popen(argv, env=env, stdin=source, stdout=sink, stderr=errors)
            with PeakRss(process.pid) as peak:
                _, status, usage = os.wait4(process.pid, 0)  # this child's own CPU (and its reaped children's)
            wall = (time.perf_counter() - began) * 1e3
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} {argv[1]}: exit {process.returncode}: {err.read_text()[-500:]}")
        if kind is None:
            return
        call = calls[kind]
        call.wall_ms.append(wall)
        call.cpu_ms.append((usage.ru_utime + usage.ru_stime) * 1e3)
        call.rss_kib.append(peak.kib)
        if before_requests is not None:
            found = api_requests(api, discovery=True) - before_requests
            found[DISCOVERY] -= 1  # the first of the two scrapes
            call.requests.append(+found)

    try:
        run(None, install("alone-warmup", namespaces[-1]), warm, count=False)  # fills the warm cache
        namespace, name = release
        for index in range(samples):
            cold = Path(tempfile.mkdtemp(prefix="discovery-", dir=work))
            run("helm version (process start)", [helm, "version", "--short"], cold, count=False)
            template = [helm, "template", "alone", str(archive), "--values", str(values)]
            run("helm template (render only)", template, cold, False, stdout=rendered)
            if name:
                status = [helm, "status", name, "--namespace", namespace, *kube]
                run("helm status, cold discovery cache", status, cold)
                run("helm status, warm", status, warm)
            cold = Path(tempfile.mkdtemp(prefix="discovery-", dir=work))
            run("helm install, cold discovery cache", install(f"alone-{index}", namespaces[3 * index]), cold)
            run("helm install, warm", install(f"alone-{index}", namespaces[3 * index + 1]), warm)
            if post is not None:
                args, env, config = post
                kind = "helm install + post-renderer, warm (the controller's)"
                run(kind, install(f"alone-{index}", namespaces[3 * index + 2], *args), warm, extra_env=env)
                plugin = [sys.executable, "-P", "-m", "fluxwarden.controllers.helm.plugin", str(config)]
                run("  post-renderer plugin alone (Python + kustomize)", plugin, cold, False, stdin=rendered)
                imports = [sys.executable, "-P", "-c", "import fluxwarden.controllers.helm.plugin.run"]
                run("  of it: Python start + the plugin's imports", imports, cold, False)
            chart = Path(tempfile.mkdtemp(prefix="chart-", dir=work))
            shutil.unpack_archive(archive, chart)
            package = [helm, "package", str(chart / CHART), "-d", str(chart)]
            run("helm package (source controller, per HelmChart)", package, cold, count=False)
    finally:
        api.close()
    argv = install("NAME", "NAMESPACE", *(post[0] if post else []))
    return HelmAlone(dict(calls), " ".join(["helm", *argv[1:]]))


# -- reporting -------------------------------------------------------------------------------------


def window_line(w: Window) -> str:
    c = w.controller
    return (
        f"controller {w.share(c.total):.0f}% ({w.share(c.own):.0f}% Python + {w.share(c.children):.0f}% children: helm "
        "and its post-renderer), "
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
        f"\n== N = {n} HelmReleases x chart of {args.files} ConfigMaps, one HTTPS HelmRepository, targetNamespace "
        f"each; helm as system:serviceaccount:{PREFIX}-config:{APPLIER}{'' if args.enforce else ' (--no-enforce)'}"
    )
    print(f"  load avg: {'; '.join(r.load)}; set-up ({n} namespaces + RoleBindings) {r.setup_s:.1f}s, not timed")
    print(
        f"  create {r.create_s:.1f}s; Ready: first {times[0]:.1f}s, median {statistics.median(times):.1f}s, p90 "
        f"{pct(times, 90):.1f}s, all {r.all_ready_s:.1f}s ({n / r.all_ready_s:.2f}/s; {r.lists} list calls; "
        f"{r.ready_reconciles:.0f} reconciles)"
    )
    if r.failed:
        print(f"  {len(r.failed)} seen Ready=False on the way, e.g. {next(iter(r.failed.items()))}")
    w = r.ready
    print(f"  until all Ready: {window_line(w)}")
    print(
        f"    per HelmRelease: controller {w.controller.own / n * 1e3:.0f} ms Python + "
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
            f"({o.window.controller.own / n * 1e3:.1f} Python + {o.window.controller.children / n * 1e3:.1f} helm); "
            f"API requests {requests / n:.2f} ({detail})"
        )
        print(
            f"    written: {o.config_map_writes} ConfigMaps, {o.secret_writes} release Secrets, {o.events} Events; "
            f"{window_line(o.window)}"
        )
    print(f"  controller idle: {100 * r.idle_cpu:.2f}% of a core; SIGTERM to exit {r.stop[1]:.1f}s (code {r.stop[0]})")


def report_table(results: list[Result]) -> None:
    print(
        "\nN     all Ready s  rel/s  ctrl VmHWM MiB  tree peak MiB  helm/install  CPU ms/rel (Python+children)  "
        "no-op: helm procs  CPU ms (gross/above idle)  API req  s"
    )
    for r in results:
        w, o = r.ready, r.noops[-1]
        gross, above = o.cpu_ms(r.n, r.idle_cpu)
        print(
            f"{r.n:<5} {r.all_ready_s:>11.1f}  {r.n / r.all_ready_s:>5.2f}  {r.end_hwm_kib / MIB:>14.1f}  "
            f"{r.tree.peak_rss_kib / MIB:>13.1f}  {sum(r.helm_calls.values()) / r.n:>12.2f}  "
            f"{w.controller.own / r.n * 1e3:>9.0f} + {w.controller.children / r.n * 1e3:<12.0f}  "
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
    if args.code != "worktree":
        return rerun_from_copy("bench.helm", argv, args, show_commit=False)
    arm_deadline("bench.helm", args.deadline)
    import fluxwarden

    print(
        f"bench.helm: {os.cpu_count()} cores, load avg {load_average()}; sizes {args.count_list}; controller = "
        f"`fluxwarden controllers run --controllers source,helm --concurrency {args.concurrency}"
        f"{'' if args.enforce else ' --no-enforce'}` from {Path(fluxwarden.__file__).parent}",
        flush=True,
    )
    results: list[Result] = []
    try:
        with environment(args) as env:
            for n in args.count_list:
                began = time.monotonic()
                results.append(run_count(n, args, env))
                report_one(results[-1], args)
                print(f"  (N={n} took {time.monotonic() - began:.0f}s in all)", flush=True)
    finally:
        signal.alarm(0)
    report_table(results)
    if results[-1].alone is not None:
        report_alone(results[-1].alone, results[-1], args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
