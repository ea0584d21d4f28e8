"""How the kustomize controller copes with N tenant Kustomizations of one GitRepository, on a real API server.

``python -m bench.kustomize [--counts 100,1000]``. For each N, on a fresh control plane (etcd +
kube-apiserver, CRDs installed as the e2e tests do; ``bench/cluster.py``), with ``fluxwarden
controllers run --controllers source,kustomize`` in a process of its own (so RSS and CPU are the
controller's alone) and its default tenancy settings (enforced: every apply impersonates
``system:serviceaccount:<namespace>:flux-applier``):

- one GitRepository ``apps`` (interval 10m) in the configuration namespace ``bench-config``, on a
  git repository whose ``./apps`` holds 10 ConfigMaps and no kustomization.yaml (the controller
  generates one, as Flux does for a plain directory);
- N Kustomizations ``app-NNNN`` beside it (interval 10m, prune, path ./apps), each with its own
  ``targetNamespace: bench-t-NNNN``. Every build is distinct (the target namespace is part of the
  BuildCache key), so no Kustomization profits from another's build, and the API server checks
  the impersonated account's RBAC in N namespaces: each target namespace has a RoleBinding that
  lets ``bench-config:flux-applier`` write there, and nothing else does.

Why one configuration namespace: with tenancy enforced, a Kustomization may only use a source in
its own namespace, so N Kustomizations of ONE GitRepository share its namespace and its applier
account. A distinct targetNamespace (rather than one namespace and a namePrefix) is how tenants'
apps land in practice, and keeps every namespace at 10 ConfigMaps instead of one holding 10 N.

Measured, per N:

1. time from the first create until every Kustomization is Ready at its generation (one list call
   per poll), the CPU of the controller (its threads; its children: kustomize and git) and of the
   API server and etcd meanwhile, and that the 10 N ConfigMaps exist;
2. the controller's RSS before the first Kustomization and its peak (``VmHWM``);
3. a spec change (interval 10m -> 1m) on all N: each reconcile checks its 10 objects for drift,
   which must not write a ConfigMap;
4. steady state at the 1m interval: a window longer than one interval in which every reconcile is
   a no-op that still checks every object for drift (one labelled LIST per kind and namespace, a
   dry-run where the resourceVersion moved; with ``--live-drift``, the watch cache);
   reconciles counted from the controller's metrics, CPU per no-op reconcile (gross, and above the
   idle controller), the API server's own request count per no-op (``apiserver_request_total``),
   a check that nothing was written, and the CPU share this gives at the 10m interval
   (extrapolated);
5. drift: one ConfigMap deleted by hand in each target namespace (N drifted objects), then a
   requested reconcile of all N (with ``--live-drift``, nothing requested): seconds until all are
   back, and the API requests it took;
6. when the largest N misses the target (1000 Ready in < 4 min with < 300 MiB; ``--profile auto``),
   a second run of that N under ``_profiled-controller``: one cProfile per thread on that thread's
   CPU clock, plus a wall-clock stack sampler of the kustomize workers, so the report says both where
   the CPU goes and what the workers wait for.

Everything it starts is stopped and every temporary directory removed on the way out; the whole run
is bounded by ``--deadline`` and every wait by its own timeout.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import io
import json
import os
import pstats
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bench import args as bench_args
from bench.cluster import (
    KubeApi,
    api_requests,
    arm_deadline,
    cluster,
    grant_tenant_admin,
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
    controller_env,
    controllers_run,
    deep_size,
    ready_condition,
    request_reconcile,
    resource_versions,
    thread_profiles,
)
from tests.support.binaries import binary_dir, prepend_to_path
from tests.support.control_plane import ControlPlane
from tests.support.git_server import GitHttpServer, GitRepo

CONFIG_NAMESPACE = "bench-config"
TARGET_PREFIX = "bench-t-"
APPLIER = "flux-applier"
SOURCE_NAME = "apps"
REPO_NAME = "apps"
BRANCH = "main"
STEADY_INTERVAL = "1m"
STEADY_SECONDS = 60.0
CREATE_INTERVAL_SECONDS = 600.0
KUSTOMIZATIONS = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{namespace}/kustomizations"
GITREPOSITORIES = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{namespace}/gitrepositories"
OWNER_NAMESPACE_LABEL = "kustomize.toolkit.fluxcd.io/namespace"
WORKER_PREFIX = "kustomize-controller-"  # the manager names its worker threads <controller name>-<index>
TARGET_N, TARGET_SECONDS, TARGET_MIB = 1000, 240.0, 300.0
MIB = 1024.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.kustomize",
        description=__doc__.splitlines()[0],
        parents=[bench_args.common("100,1000", "Kustomizations")],
    )
    parser.add_argument("--files", type=int, default=10, help="ConfigMaps in ./apps (default 10)")
    parser.add_argument("--window", type=float, default=70.0, help="steady window, s (> 60: one 1m interval)")
    parser.add_argument(
        "--profile", choices=("auto", "always", "never"), default="auto", help="profile the largest N (auto: if missed)"
    )
    bench_args.switch(
        parser,
        "--live-drift",
        False,
        "run the controller with --live-drift (metadata watches of applied kinds); the repair phase then "
        "requests no reconcile",
    )
    parser.add_argument(
        "--repair-timeout", type=float, default=None, help="seconds to wait for the repair (default 120 + 0.6 N)"
    )
    args = bench_args.parse(parser, argv)
    if args.window <= STEADY_SECONDS:
        parser.error(f"--window must cover one interval ({STEADY_SECONDS:g}s) and its jitter")
    return args


# -- the repository, the tenants, the objects ------------------------------------------------------


def app_files(files: int) -> dict[str, str]:
    """``./apps``: ConfigMaps of ~0.4 KB, no kustomization.yaml (the controller generates one)."""
    return {
        f"apps/config-{k:02d}.yaml": (
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-{k:02d}\n  labels:\n"
            f"    app.kubernetes.io/name: bench-app\n    app.kubernetes.io/part-of: bench\ndata:\n"
            + "".join(f"  key{j}: value-{k}-{j}\n" for j in range(12))
        )
        for k in range(files)
    }


def target_namespace(index: int) -> str:
    return f"{TARGET_PREFIX}{index:04d}"


def kustomization_name(index: int) -> str:
    return f"app-{index:04d}"


def set_up_tenants(api: KubeApi, n: int, git_url: str) -> None:
    """The configuration namespace, its applier account and GitRepository; N target namespaces, each
    with a RoleBinding that gives that account a tenant-admin ClusterRole there, and only there."""
    api.must("POST", "/api/v1/namespaces", {"metadata": {"name": CONFIG_NAMESPACE}})
    grant_tenant_admin(api, CONFIG_NAMESPACE, APPLIER, [target_namespace(i) for i in range(n)])
    api.must(
        "POST",
        GITREPOSITORIES.format(namespace=CONFIG_NAMESPACE),
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": SOURCE_NAME, "namespace": CONFIG_NAMESPACE},
            "spec": {"url": git_url, "interval": "10m", "ref": {"branch": BRANCH}},
        },
    )


def kustomization(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": kustomization_name(index), "namespace": CONFIG_NAMESPACE},
        "spec": {
            "interval": "10m",
            "retryInterval": "1m",  # a transient failure shows as a late Ready, not a 10-minute hole
            "path": "./apps",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": SOURCE_NAME},
            "targetNamespace": target_namespace(index),
        },
    }


def is_applied(obj: dict[str, Any]) -> bool:
    """Ready=True at the object's current generation, with a revision applied."""
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation") or not status.get("lastAppliedRevision"):
        return False
    return ready_condition(obj).get("status") == "True"


def wait_source_ready(api: KubeApi, timeout: float = 120.0) -> float:
    began, deadline = time.monotonic(), time.monotonic() + timeout
    path = GITREPOSITORIES.format(namespace=CONFIG_NAMESPACE) + f"/{SOURCE_NAME}"
    while True:
        obj = api.must("GET", path)
        if (obj.get("status") or {}).get("artifact") and ready_condition(obj).get("status") == "True":
            return time.monotonic() - began
        if time.monotonic() > deadline:
            raise RuntimeError(f"GitRepository {SOURCE_NAME} not Ready after {timeout:.0f}s: {obj.get('status')}")
        time.sleep(0.2)


def kustomization_poll(
    api: KubeApi, names: set[str], done_when: Callable[[dict[str, Any]], bool], n: int, timeout: float
) -> Poll:
    """Lists the Kustomizations until every name passes ``done_when``; notes when each first did."""
    collection = KUSTOMIZATIONS.format(namespace=CONFIG_NAMESPACE)
    return Poll(lambda: api.items(collection), names, done_when, poll_interval(n), time.monotonic() + timeout)


def poll_interval(n: int) -> float:
    """Listing N Kustomizations costs the API server and this process; coarser polls for larger N."""
    return min(2.0, max(0.25, n / 500))


def applied_config_maps(api: KubeApi) -> dict[str, str]:
    """resourceVersion of every ConfigMap the controller applied (by its owner label), across namespaces."""
    return resource_versions(api, f"/api/v1/configmaps?labelSelector={OWNER_NAMESPACE_LABEL}%3D{CONFIG_NAMESPACE}")


def events(api: KubeApi) -> int:
    """Events about the Kustomizations so far: each one an API write the controller paid for."""
    return len(api.items(f"/api/v1/namespaces/{CONFIG_NAMESPACE}/events"))


DRIFTED = "config-00"  # the ConfigMap deleted by hand in every target namespace for the repair phase


def delete_drifted(api: KubeApi, n: int) -> float:
    began = time.monotonic()
    for index in range(n):
        api.must("DELETE", f"/api/v1/namespaces/{target_namespace(index)}/configmaps/{DRIFTED}")
    return time.monotonic() - began


def request_all(api: KubeApi, names: set[str], token: str) -> None:
    request_reconcile(api, KUSTOMIZATIONS.format(namespace=CONFIG_NAMESPACE), names, token)


def wait_repaired(api: KubeApi, n: int, child: Any, began: float, timeout: float) -> tuple[float | None, int]:
    """Seconds from ``began`` until all N deleted ConfigMaps exist again (None at the timeout), and how many did."""
    deadline = began + timeout
    while True:
        back = sum(1 for key in applied_config_maps(api) if key.endswith(f"/{DRIFTED}"))
        if back >= n:
            return time.monotonic() - began, back
        child.check_alive()
        if time.monotonic() > deadline:
            return None, back
        time.sleep(poll_interval(n))


# -- the controller process ------------------------------------------------------------------------


def start_controller(
    plane: ControlPlane, work: Path, args: argparse.Namespace, log: Path, profile_out: Path | None = None
) -> Controller:
    """``fluxwarden controllers run --controllers source,kustomize`` in its own process, probes on."""
    tmp = work / "controller-tmp"  # kustomize build dirs (tempfile.gettempdir()), removed with the work dir
    tmp.mkdir(exist_ok=True)
    cli = controllers_run(plane, work, args, "source,kustomize", *(["--live-drift"] if args.live_drift else []))
    env = controller_env(tmp)
    return Controller.launch(cli, log, module="bench.kustomize", profile_out=profile_out, env=env, request_timeout=30)


def scrape(controller: Controller) -> Metrics:
    """The kustomize controller's reconciles and time in reconcile() (Kustomizations only)."""
    return controller.reconcile_metrics("Kustomization", "kustomize-controller")


# -- CPU accounting --------------------------------------------------------------------------------


def window_line(w: Window) -> str:
    c = w.controller
    return (
        f"controller {w.share(c.total):.0f}% ({w.share(c.own):.0f}% Python + {w.share(c.children):.0f}% "
        f"kustomize/git), apiserver {w.share(w.apiserver):.0f}%, etcd {w.share(w.etcd):.0f}%, "
        f"bench {w.share(w.bench):.0f}%, others {w.share(w.others):.0f}% "
        f"(% of one core; {os.cpu_count()} cores)"
    )


# -- one N -----------------------------------------------------------------------------------------


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
    config_maps: int
    idle_rss_kib: int
    idle_cpu: float  # CPU s per s, one GitRepository and no Kustomization
    ready_hwm_kib: int
    reapply_s: float
    reapply: Window
    reapply_reconciles: float
    reapply_writes: int
    steady: Window
    steady_reconciles: float
    steady_errors: float
    steady_mean_ms: float
    steady_kustomization_writes: int
    steady_config_map_writes: int
    steady_requests: collections.Counter[str]
    repair_s: float | None
    repaired: int
    repair_requested: bool
    repair_requests: collections.Counter[str]
    events: tuple[int, int, int]  # Events created: until all Ready, by the re-apply pass, in the steady window
    end_hwm_kib: int
    end_rss_kib: int
    storage: Path = Path()  # the controller's artifact storage, left on disk for time_parts
    stop: tuple[int | None, float] = (None, 0.0)
    load: list[str] = field(default_factory=list)

    @property
    def all_ready_s(self) -> float:
        return self.ready_times[-1]

    @property
    def noop_ms(self) -> float:
        """Controller CPU per no-op reconcile over the window, the idle controller's share included."""
        return self.steady.controller.total / max(self.steady_reconciles, 1) * 1e3

    @property
    def noop_marginal_ms(self) -> float:
        """The same above the idle controller: what each no-op reconcile adds."""
        above = self.steady.controller.total - self.idle_cpu * self.steady.seconds
        return max(0.0, above) / max(self.steady_reconciles, 1) * 1e3

    @property
    def at_10m_percent(self) -> float:
        """Extrapolated share of a core at the 10m interval: idle, plus N no-ops every 600 s."""
        return 100 * self.idle_cpu + self.n * self.noop_marginal_ms / 1e3 / CREATE_INTERVAL_SECONDS * 100


@contextlib.contextmanager
def tenants_cluster(env: Environment, n: int) -> Iterator[tuple[ControlPlane, Path, float]]:
    """A fresh control plane with the tenants set up and the source pushed; the set-up seconds."""
    work = Path(tempfile.mkdtemp(prefix=f"n{n}-", dir=env.work))
    with cluster(env.bins, work) as running:
        api = KubeApi(running.plane)
        try:
            began = time.monotonic()
            set_up_tenants(api, n, env.git_url)
            setup_s = time.monotonic() - began
        finally:
            api.close()
        yield running.plane, work, setup_s


def create_all(api: KubeApi, n: int) -> float:
    began = time.monotonic()
    collection = KUSTOMIZATIONS.format(namespace=CONFIG_NAMESPACE)
    for index in range(n):
        api.must("POST", collection, kustomization(index))
    return time.monotonic() - began


def run_count(n: int, args: argparse.Namespace, env: Environment) -> Result:
    """One N on a fresh control plane and controller; see the module docstring for the phases."""
    names = {kustomization_name(i) for i in range(n)}
    load = [f"start {load_average()}"]
    with tenants_cluster(env, n) as (plane, work, setup_s):
        assert plane.apiserver.pid is not None and plane.etcd.pid is not None
        apiserver, etcd = plane.apiserver.pid, plane.etcd.pid
        api, poll_api = KubeApi(plane, timeout=120), KubeApi(plane, timeout=120)
        controller = start_controller(plane, work, args, work / "controller.log")
        stopped: list[tuple[int | None, float]] = []
        with contextlib.ExitStack() as stack:
            stack.callback(api.close)
            stack.callback(poll_api.close)
            stack.callback(lambda: stopped.append(controller.stop()))
            controller.wait_ready()
            wait_source_ready(api)
            time.sleep(args.settle)  # let start-up and the first source reconcile settle
            idle_rss = memory_kib(controller.pid)["VmRSS"]
            idle_cpu = controller.idle_cpu(args.idle)

            # 1. create N, wait until all are Ready
            m0 = scrape(controller)
            poll = kustomization_poll(poll_api, names, is_applied, n, 120.0 + 0.6 * n)
            before = Snapshot.take(controller.pid, apiserver, etcd)
            poll.start()
            create_s = create_all(api, n)
            ready_times = poll.wait(controller.child, "Ready after create")
            after = Snapshot.take(controller.pid, apiserver, etcd)
            ready_hwm = memory_kib(controller.pid)["VmHWM"]
            m1 = scrape(controller)
            load.append(f"all Ready {load_average()}")
            config_maps = applied_config_maps(api)
            config_map_count = len(config_maps)
            events_ready = events(api)

            # 2. spec change: interval 10m -> 1m; a new generation re-sends every object
            time.sleep(args.settle)
            generations: dict[str, int] = {}
            reapply_start = Snapshot.take(controller.pid, apiserver, etcd)
            collection = KUSTOMIZATIONS.format(namespace=CONFIG_NAMESPACE)
            for name in sorted(names):
                patched = api.must(
                    "PATCH", f"{collection}/{name}", {"spec": {"interval": STEADY_INTERVAL}},
                    "application/merge-patch+json",
                )  # fmt: skip
                generations[name] = int(patched["metadata"]["generation"])

            def reapplied(obj: dict[str, Any]) -> bool:
                meta = obj["metadata"]
                return int(meta.get("generation", 0)) >= generations.get(meta["name"], 1 << 30) and is_applied(obj)

            repoll = kustomization_poll(poll_api, names, reapplied, n, 120.0 + 0.6 * n)
            repoll.run()  # in this thread: the patches are all sent
            reapply_s = repoll.wait(controller.child, "Ready after the interval change")[-1]
            reapply_end = Snapshot.take(controller.pid, apiserver, etcd)
            m2 = scrape(controller)
            reapply_writes = changed(config_maps, applied_config_maps(api))
            events_reapply = events(api)

            # 3. steady state: every reconcile a no-op, at the 1m interval
            time.sleep(args.settle)
            kustomizations = resource_versions(api, collection)
            config_maps = applied_config_maps(api)
            first = scrape(controller)
            requests_before = api_requests(api)
            start = Snapshot.take(controller.pid, apiserver, etcd)
            controller.watch(args.window)
            end = Snapshot.take(controller.pid, apiserver, etcd)
            requests_after = api_requests(api)
            last = scrape(controller)
            memory = memory_kib(controller.pid)
            load.append(f"after window {load_average()}")
            kustomization_writes = changed(kustomizations, resource_versions(api, collection))
            config_map_writes = changed(config_maps, applied_config_maps(api))
            events_steady = events(api)

            # 4. drift: one ConfigMap deleted by hand in each of the N target namespaces, then repaired
            time.sleep(args.settle)
            repair_before = api_requests(api)
            delete_drifted(api, n)
            began = time.monotonic()  # from the last deletion, or the first request
            if not args.live_drift:
                request_all(api, names, "bench-repair")
            repair_timeout = args.repair_timeout if args.repair_timeout is not None else 120.0 + 0.6 * n
            repair_s, repaired = wait_repaired(poll_api, n, controller.child, began, repair_timeout)
            repair_requests = api_requests(api) - repair_before
    return Result(
        n=n,
        setup_s=setup_s,
        create_s=create_s,
        ready_times=ready_times,
        failed=poll.failed,
        lists=poll.lists,
        ready=Window.between(before, after),
        ready_reconciles=m1.reconciles - m0.reconciles,
        config_maps=config_map_count,
        idle_rss_kib=idle_rss,
        idle_cpu=idle_cpu,
        ready_hwm_kib=ready_hwm,
        reapply_s=reapply_s,
        reapply=Window.between(reapply_start, reapply_end),
        reapply_reconciles=m2.reconciles - m1.reconciles,
        reapply_writes=reapply_writes,
        steady=Window.between(start, end),
        steady_reconciles=last.reconciles - first.reconciles,
        steady_errors=last.errors - first.errors,
        steady_mean_ms=last.mean_reconcile_ms_since(first),
        steady_kustomization_writes=kustomization_writes,
        steady_config_map_writes=config_map_writes,
        steady_requests=requests_after - requests_before,
        repair_s=repair_s,
        repaired=repaired,
        repair_requested=not args.live_drift,
        repair_requests=repair_requests,
        events=(events_ready, events_reapply - events_ready, events_steady - events_reapply),
        end_hwm_kib=memory["VmHWM"],
        end_rss_kib=memory["VmRSS"],
        storage=work / "storage",
        stop=stopped[0] if stopped else (None, 0.0),
        load=load,
    )


@dataclass
class Profiled:
    seconds: float
    hwm_kib: int
    cpu: str
    wall: str


def profile_count(n: int, args: argparse.Namespace, env: Environment) -> Profiled:
    """The create -> all Ready phase of ``n`` again, on a fresh cluster, under ``_profiled-controller``."""
    with tenants_cluster(env, n) as (plane, work, _):
        out = work / "controller.prof"
        api, poll_api = KubeApi(plane, timeout=120), KubeApi(plane, timeout=120)
        controller = start_controller(plane, work, args, work / "profiled.log", profile_out=out)
        try:
            controller.wait_ready()
            wait_source_ready(api)
            time.sleep(args.settle)
            poll = kustomization_poll(
                poll_api, {kustomization_name(i) for i in range(n)}, is_applied, n, 300.0 + 1.5 * n
            )
            poll.start()
            create_all(api, n)
            seconds = poll.wait(controller.child, "Ready under the profiler")[-1]
            hwm = memory_kib(controller.pid)["VmHWM"]
        finally:
            api.close()
            poll_api.close()
            controller.stop()
        cpu = read_cpu_profile(out) if out.exists() else "(no profile written)"
        wall_path = Path(f"{out}.wall.json")
        wall = read_wall_samples(wall_path) if wall_path.exists() else "(no samples written)"
    return Profiled(seconds, hwm, cpu, wall)


# -- one build timed alone, by part ----------------------------------------------------------------


@dataclass
class Parts:
    """Median wall ms of each step a Kustomization's build takes, in this process with nothing else running."""

    ms: dict[str, float]
    kustomize_cpu_ms: float  # the kustomize process's CPU per build (reaped child)
    c_loader_same: bool  # libyaml and the pure-Python build.ManifestLoader read the same objects as the controller
    build_kib: float  # one built object list as Python objects, as the BuildCache holds it


def time_parts(storage: Path, scratch: Path, samples: int = 20) -> Parts:
    """Fetch, unpack, generate, overlay, kustomize, parse: each step of one build of ``kustomization(0)``.

    The artifact is the one the controller stored, served by fluxwarden's own ArtifactServer here,
    so every step is the controller's code on the controller's input; the cluster is gone by now, so
    nothing competes. Also timed: what a BuildCache hit and the applied-digest check cost, and the
    same parse with a libyaml loader (same implicit resolvers as ``build.ManifestLoader``).
    """
    import copy
    import hashlib
    import statistics

    import httpx
    import yaml

    try:
        from fluxwarden.controllers.artifacts.unpack import safe_extract
    except ImportError:  # --code <revision> from before the shared artifact client
        from fluxwarden.controllers.source.artifact import safe_extract  # type: ignore[no-redef,attr-defined]
    from fluxwarden.controllers.apply.applier import digest
    from fluxwarden.controllers.kustomize import build as kbuild
    from fluxwarden.controllers.kustomize.fetch import fetch_artifact
    from fluxwarden.controllers.source.storage import ArtifactServer, Storage

    class CManifestLoader(yaml.CSafeLoader):
        """``build.ManifestLoader``'s resolvers on libyaml's parser."""

    CManifestLoader.yaml_implicit_resolvers = kbuild.ManifestLoader.yaml_implicit_resolvers

    prepend_to_path(binary_dir())  # the pinned kustomize, as the controller runs it
    tarball = next(storage.rglob("*.tar.gz"))
    data = tarball.read_bytes()
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    overlay = kbuild.Overlay.from_spec(kustomization(0)["spec"])
    times: dict[str, list[float]] = collections.defaultdict(list)
    kustomize_cpu = 0.0

    def timed(name: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        result = call(*args, **kwargs)
        times[name].append((time.perf_counter() - began) * 1e3)
        return result

    def new_client() -> None:
        httpx.Client(timeout=10).close()  # what http_fetch.fetch builds for every download

    objects: list[dict[str, Any]] = []
    c_objects: list[Any] = []
    py_objects: list[Any] = []
    with ArtifactServer(Storage(storage, ""), "127.0.0.1", 0) as server:
        url = f"{server.url}/{tarball.relative_to(storage).as_posix()}"
        for index in range(samples):
            base = scratch / f"parts-{index}"
            timed("httpx.Client() + close (one per fetch)", new_client)
            timed("fetch_artifact (GET, sha256, unpack)", fetch_artifact, url, expected, base / "f", 1 << 29, 60)
            timed("  safe_extract alone", safe_extract, data, base / "x", 1 << 29)
            root = (base / "x").resolve()
            directory = kbuild.resolve_path(root, "./apps")
            kfile = timed("  generate_kustomization (YAML reads)", kbuild.generate_kustomization, root, directory)
            timed("  apply_overlay", kbuild.apply_overlay, root, kfile, overlay)
            before = self_cpu()
            text = timed("  kustomize build (process)", kbuild._run_kustomize, root, directory, 60)
            kustomize_cpu += (self_cpu() - before).children
            objects = timed("  parse_manifests (the controller's parse)", kbuild.parse_manifests, text)
            c_objects = timed("  the same parse with libyaml", lambda t: list(yaml.load_all(t, CManifestLoader)), text)
            py_objects = timed(
                "  the same parse, pure-Python loader", lambda t: list(yaml.load_all(t, kbuild.ManifestLoader)), text
            )
            timed(
                "build() whole (generate..parse)", kbuild.build, base / "f", "./apps", overlay, block_remote_bases=True
            )
            timed("BuildCache hit (deepcopy)", copy.deepcopy, objects)
            timed("applied-digest check (10 x sha256 of JSON)", lambda found: [digest(o) for o in found], objects)
            shutil.rmtree(base)
    ms = {name: statistics.median(values) for name, values in times.items()}
    same = c_objects == objects == py_objects
    return Parts(ms, kustomize_cpu / samples * 1e3, same, deep_size(objects) / 1024)


# -- the profiled controller (runs in the child) ---------------------------------------------------


_DRIVERS = {("prologue.py", "run_once"), ("prologue.py", "_reconcile"), ("kustomization.py", "reconcile")}


def _frame_name(frame: FrameType) -> str:
    code = frame.f_code
    return f"{Path(code.co_filename).name}:{code.co_name}"


def _classify(frame: FrameType) -> tuple[str, str]:
    """(step, leaf): the call the innermost reconcile driver is making, and the innermost frame.

    The drivers are ``run_once`` / ``_reconcile`` (the prologue) and ``KustomizationReconciler.reconcile``:
    a worker inside ``reconcile`` calling ``_build`` is in step ``reconcile>_build``, whatever it waits on.
    """
    stack: list[FrameType] = []
    current: FrameType | None = frame
    while current is not None:
        stack.append(current)
        current = current.f_back
    stack.reverse()  # outermost first
    step = ""
    for index, item in enumerate(stack):
        code = item.f_code
        if (Path(code.co_filename).name, code.co_name) in _DRIVERS and index + 1 < len(stack):
            step = f"{code.co_name}>{stack[index + 1].f_code.co_name}"
    if not step:
        step = "(between reconciles)"
    return step, _frame_name(frame)


def _sample_workers(stop: threading.Event, counts: collections.Counter[str], every: float) -> None:
    """Every ``every`` s, the step and leaf frame of each kustomize worker thread (wall clock)."""
    while not stop.wait(every):
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if names.get(ident, "").startswith(WORKER_PREFIX):
                step, leaf = _classify(frame)
                counts[f"{step}\t{leaf}"] += 1


def profiled_controller(out: str, argv: list[str]) -> int:
    """``_profiled-controller OUT -- ARGS``: fluxwarden's CLI with one cProfile per thread, plus a sampler.

    Every thread but the sampler gets its own profiler on its own CPU clock
    (``bench.controller.thread_profiles``: waiting on the API or a kustomize process costs nothing),
    merged into ``OUT`` when the CLI returns (SIGTERM). CPU alone hides what bounds the time to Ready,
    so a sampler also records, every 10 ms of wall time, which step each kustomize worker is in
    (``OUT.wall.json``).
    """
    from fluxwarden.cli.main import main as fluxwarden_main

    def c_timer(clock: int) -> Callable[[], float]:
        # A C-level timer (no Python frame per call, so little overhead) on the thread's own clock. A
        # thread disables its profiler before it exits, so the timer is never called on a dead clock.
        return functools.partial(time.clock_gettime, clock)

    with thread_profiles(out, c_timer, skip="bench-sampler"):
        counts: collections.Counter[str] = collections.Counter()
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_workers, args=(stop, counts, 0.01), name="bench-sampler", daemon=True)
        sampler.start()
        try:
            return fluxwarden_main(argv)
        finally:
            stop.set()
            sampler.join(5)
            Path(f"{out}.wall.json").write_text(json.dumps(dict(counts)))


def read_cpu_profile(path: Path) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out).strip_dirs()
    total = getattr(stats, "total_tt", 0.0)
    out.write(f"total CPU in Python threads: {total:.1f} s\n")
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(45)
    return out.getvalue()


def read_wall_samples(path: Path) -> str:
    counts: dict[str, int] = json.loads(path.read_text())
    busy = {k: v for k, v in counts.items() if not k.startswith("(between reconciles)")}
    total, busy_total = sum(counts.values()), sum(busy.values())
    by_step: collections.Counter[str] = collections.Counter()
    for key, value in busy.items():
        by_step[key.split("\t")[0]] += value
    lines = [
        f"{total} worker samples (10 ms each), {100 * busy_total / max(total, 1):.0f}% inside a reconcile",
        "share of in-reconcile worker time by step (driver>callee):",
    ]
    lines += [f"  {100 * v / max(busy_total, 1):5.1f}%  {k}" for k, v in by_step.most_common(14)]
    lines.append("top (step, innermost frame) pairs:")
    for key, value in collections.Counter(busy).most_common(25):
        step, leaf = key.split("\t")
        lines.append(f"  {100 * value / max(busy_total, 1):5.1f}%  {step:<34} {leaf}")
    return "\n".join(lines)


# -- reporting -------------------------------------------------------------------------------------


def mode_line(args: argparse.Namespace) -> str:
    if args.enforce:
        return (
            f"tenancy enforced: applies impersonate system:serviceaccount:{CONFIG_NAMESPACE}:{APPLIER}, "
            "RBAC from one RoleBinding per target namespace"
        )
    return "--no-enforce: applies as the controller (admin), no impersonation"


def report_one(r: Result, args: argparse.Namespace) -> None:
    n, times = r.n, r.ready_times
    print(
        f"\n== N = {n} Kustomizations x {args.files} ConfigMaps, one GitRepository, targetNamespace per "
        f"Kustomization; {mode_line(args)}"
    )
    print(f"  load avg: {'; '.join(r.load)}; set-up ({n} namespaces + RoleBindings) {r.setup_s:.1f}s, not timed")
    print(
        f"  create {r.create_s:.1f}s; Ready: first {times[0]:.1f}s, median {times[len(times) // 2]:.1f}s, "
        f"all {r.all_ready_s:.1f}s ({n / r.all_ready_s:.2f}/s; {r.lists} list calls; "
        f"{r.ready_reconciles:.0f} reconciles)"
    )
    if r.failed:
        print(f"  {len(r.failed)} seen Ready=False on the way, e.g. {next(iter(r.failed.items()))}")
    w = r.ready
    print(f"  until all Ready: {window_line(w)}")
    print(
        f"    per Kustomization: controller {w.controller.own / n * 1e3:.0f} ms Python + "
        f"{w.controller.children / n * 1e3:.0f} ms kustomize/git, apiserver {w.apiserver / n * 1e3:.0f} ms, "
        f"etcd {w.etcd / n * 1e3:.0f} ms CPU; ConfigMaps applied {r.config_maps} (expected {n * args.files}); "
        f"{r.events[0]} Events"
    )
    print(
        f"  controller RSS: idle {r.idle_rss_kib / MIB:.1f} MiB; peak (VmHWM) {r.ready_hwm_kib / MIB:.1f} at all "
        f"Ready, {r.end_hwm_kib / MIB:.1f} at the end (VmRSS {r.end_rss_kib / MIB:.1f})"
    )
    a = r.reapply
    print(
        f"  interval 10m -> 1m on all N (new generation: all {n * args.files} objects checked for drift): Ready again "
        f"in {r.reapply_s:.1f}s, {r.reapply_reconciles:.0f} reconciles, {a.controller.own / n * 1e3:.0f} ms Python + "
        f"{a.controller.children / n * 1e3:.0f} ms kustomize CPU and apiserver {a.apiserver / n * 1e3:.0f} ms each; "
        f"ConfigMaps written: {r.reapply_writes}; {r.events[1]} Events"
    )
    s = r.steady
    print(
        f"  steady {s.seconds:.0f}s at 1m: {r.steady_reconciles:.0f} no-op reconciles "
        f"({r.steady_reconciles / s.seconds:.2f}/s; N/60s = {n / STEADY_SECONDS:.2f}/s), {r.steady_errors:.0f} errors, "
        f"mean reconcile() {r.steady_mean_ms:.1f} ms; written: {r.steady_kustomization_writes} Kustomizations, "
        f"{r.steady_config_map_writes} ConfigMaps, {r.events[2]} Events"
    )
    print(f"    {window_line(s)}")
    per = max(r.steady_reconciles, 1)
    print(
        f"    per no-op reconcile: controller {r.noop_ms:.1f} ms CPU gross, {r.noop_marginal_ms:.1f} ms above idle "
        f"({s.controller.own / per * 1e3:.1f} Python + {s.controller.children / per * 1e3:.1f} kustomize, gross); "
        f"apiserver {s.apiserver / per * 1e3:.1f} ms, etcd {s.etcd / per * 1e3:.1f} ms"
    )
    requests = sum(r.steady_requests.values())
    detail = ", ".join(f"{k} {v / per:.2f}" for k, v in r.steady_requests.most_common(6))
    print(f"    API requests per no-op reconcile: {requests / per:.2f} ({detail}); {requests} in the window")
    how = "after a requested reconcile of all N" if r.repair_requested else "by live drift watches, nothing requested"
    back = f"all back in {r.repair_s:.1f}s" if r.repair_s is not None else f"only {r.repaired} back at the timeout"
    print(
        f"  drift: {n} ConfigMaps deleted by hand (one per Kustomization), {back} {how}; "
        f"{sum(r.repair_requests.values())} API requests "
        f"({', '.join(f'{k} {v}' for k, v in r.repair_requests.most_common(5))})"
    )
    print(
        f"    controller idle (one GitRepository, no Kustomization): {100 * r.idle_cpu:.2f}% of a core; at the 10m "
        f"interval (extrapolated: idle + N x {r.noop_marginal_ms:.1f} ms / 600 s): {r.at_10m_percent:.2f}% of a core"
    )
    print(f"  SIGTERM to exit of the controller: {r.stop[1]:.1f}s (exit code {r.stop[0]})")


def report_table(results: list[Result]) -> None:
    print(
        "\nN      all Ready s  obj/s  peak RSS MiB  ctrl CPU ms/obj  apiserver ms/obj  re-apply s  "
        "no-op ms (gross/above idle)  steady %core @1m  @10m (extrapolated)"
    )
    for r in results:
        w = r.ready
        print(
            f"{r.n:<6} {r.all_ready_s:>11.1f}  {r.n / r.all_ready_s:>5.2f}  {r.end_hwm_kib / MIB:>12.1f}"
            f"  {w.controller.total / r.n * 1e3:>15.0f}  {w.apiserver / r.n * 1e3:>16.0f}  {r.reapply_s:>10.1f}"
            f"  {r.noop_ms:>13.1f} / {r.noop_marginal_ms:<11.1f}  {r.steady.share(r.steady.controller.total):>16.1f}"
            f"  {r.at_10m_percent:>8.2f}"
        )


def report_parts(p: Parts, n: int) -> None:
    print("\none build of one Kustomization timed alone, by part (median wall ms, this process, cluster stopped):")
    for name, value in p.ms.items():
        print(f"  {value:8.2f}  {name}")
    print(
        f"  kustomize process CPU {p.kustomize_cpu_ms:.1f} ms per build; libyaml and pure-Python loaders read the "
        f"same objects: {p.c_loader_same}; one cached build {p.build_kib:.0f} KiB of Python objects (x N={n}: "
        f"{p.build_kib * n / 1024:.0f} MiB for a BuildCache holding every Kustomization's build)"
    )


def verdict(r: Result) -> tuple[bool, str]:
    """The target, for N = 1000 (or scaled linearly for other N, as a hint)."""
    seconds_target = TARGET_SECONDS * r.n / TARGET_N
    peak = r.end_hwm_kib / MIB
    met = r.all_ready_s < seconds_target and peak < TARGET_MIB
    scaled = "" if r.n == TARGET_N else f" (scaled from {TARGET_N} in {TARGET_SECONDS:g}s)"
    return met, (
        f"N={r.n}: all Ready in {r.all_ready_s:.1f}s (target < {seconds_target:.0f}s{scaled}), peak RSS {peak:.1f} MiB "
        f"(target < {TARGET_MIB:g}): {'met' if met else 'MISSED'}"
    )


# -- main ------------------------------------------------------------------------------------------


@dataclass
class Environment:
    bins: Path
    work: Path
    git_url: str


@contextlib.contextmanager
def environment(args: argparse.Namespace) -> Iterator[Environment]:
    """Binaries, a work dir, the repository and its git server (a thread here: one repository, fetched
    once per 10m, costs nothing worth a process); all gone on the way out."""
    bins = binary_dir()
    with tempfile.TemporaryDirectory(prefix="fluxwarden-bench-kustomize-") as tmp:
        work = Path(tmp)
        with GitHttpServer(work / "repos") as server:
            server.create_repo(REPO_NAME, default_branch=BRANCH)
            repo = GitRepo(work / "checkout", branch=BRANCH)
            repo.commit(app_files(args.files), message="apps")
            repo.push(server.repo_path(REPO_NAME))
            yield Environment(bins, work, server.repo_url(REPO_NAME))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_profiled-controller"] and len(argv) >= 3 and argv[2] == "--":
        return profiled_controller(argv[1], argv[3:])
    args = parse_args(argv)
    if args.code != "worktree":
        return rerun_from_copy("bench.kustomize", argv, args, show_commit=False)
    arm_deadline("bench.kustomize", args.deadline)
    import fluxwarden

    print(
        f"bench.kustomize: {os.cpu_count()} cores, load avg {load_average()}; counts {args.count_list}; controller = "
        f"`fluxwarden controllers run --controllers source,kustomize --concurrency {args.concurrency}"
        f"{'' if args.enforce else ' --no-enforce'}` from {Path(fluxwarden.__file__).parent}",
        flush=True,
    )
    results: list[Result] = []
    profiled: Profiled | None = None
    parts: Parts | None = None
    try:
        with environment(args) as env:
            for n in args.count_list:
                began = time.monotonic()
                results.append(run_count(n, args, env))
                report_one(results[-1], args)
                print(f"  (N={n} took {time.monotonic() - began:.0f}s in all)", flush=True)
            largest = results[-1]
            parts = time_parts(largest.storage, env.work)
            met, _ = verdict(largest)
            if args.profile == "always" or (args.profile == "auto" and not met):
                began = time.monotonic()
                print(f"\nprofiling the controller through create -> all Ready of N={largest.n} ...", flush=True)
                profiled = profile_count(largest.n, args, env)
                print(f"  (took {time.monotonic() - began:.0f}s)", flush=True)
    finally:
        signal.alarm(0)
    report_table(results)
    if parts is not None:
        report_parts(parts, results[-1].n)
    print()
    for r in results:
        print(verdict(r)[1])
    if profiled is not None:
        print(
            f"\nProfiled run of N={results[-1].n} (slower under the profiler): all Ready in {profiled.seconds:.1f}s, "
            f"VmHWM {profiled.hwm_kib / MIB:.1f} MiB"
        )
        print("\nWhere the kustomize workers' wall time goes (stack samples):")
        print(profiled.wall)
        print("\ncProfile of the controller, all threads, on each thread's CPU clock:")
        print(profiled.cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
