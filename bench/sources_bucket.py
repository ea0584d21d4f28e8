"""The Bucket scenario of ``bench.sources``: one Bucket of 1000 objects on a real S3 server, beside a GitRepository.

``python -m bench.sources bucket [--objects 1000] [--noop-rounds 10]``. On a fresh control plane (etcd +
kube-apiserver, Flux's CRDs), with ``fluxwarden controllers run --controllers source`` in its own process
(``bench.controller.controllers_run``, as the other benchmarks run it), and versitygw
(``tests.support.s3_server``, HTTPS with its own CA unless ``--no-tls``) holding a bucket of ``--objects``
distinct YAML files of about ``--object-size`` bytes, it measures:

1. the first artifact, ``--first-runs`` times (a new Bucket of the same bucket each time: nothing cached
   in storage): seconds from the create until the watch shows Ready with Flux's revision, computed here
   from the MD5 ETags of what was uploaded (``tests.support.buckets.flux_revision``); the listings and
   downloads it took, from versitygw's access log (the controller's User-Agent);
2. ``--noop-rounds`` requested no-op reconciles of the first Bucket: ``reconcile.fluxcd.io/requestedAt``,
   until the watch shows ``lastHandledReconcileAt`` with the revision unchanged (p50/p90); per round the
   listings and object downloads in the access log (targets 1 and 0), the status writes the watch saw
   beyond ``lastHandledReconcileAt`` (target 0), the reconciles counted and the mean time in ``reconcile()``
   (controller metrics), and the CPU of the controller and of versitygw;
3. the controller's RSS: idle, and peak (``VmHWM``) after the Bucket phases;
4. unless ``--no-git``: the same for a GitRepository of the same files (one commit on the tests' git
   server, in a process of its own), after the Buckets, so the two do not compete.

Bounded by ``--deadline``; every process it started is stopped and every temporary directory removed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import args as bench_args
from bench.cluster import (
    KubeApi,
    arm_deadline,
    cluster,
    cpu_of,
    load_average,
    memory_kib,
    rerun_from_copy,
)
from bench.controller import (
    Controller,
    controller_env,
    controllers_run,
    ready_condition,
    request_reconcile,
)
from bench.sources import git_repository, read_profile, start_git_server
from bench.stats import pct
from bench.watch import Watcher, watching, writes
from tests.support.binaries import binary_dir
from tests.support.buckets import Request, controller_requests, flux_revision, logged_s3, md5
from tests.support.git_server import GitRepo, init_bare_repo
from tests.support.s3_server import S3Server
from tests.support.tls import PrivateCA

NAMESPACE = "bench-sources"
SOURCE = "/apis/source.toolkit.fluxcd.io/v1/namespaces/" + NAMESPACE
BUCKETS, GITREPOSITORIES = f"{SOURCE}/buckets", f"{SOURCE}/gitrepositories"
BUCKET_NAME = "configs"
INTERVAL = "1h"  # no interval reconcile inside the run: every reconcile measured is one this benchmark asked for
LIST, GET = "s3_ListObjectsV2", "s3_GetObject"
HANDLED = "lastHandledReconcileAt"
MIB = 1024.0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sources bucket", description=__doc__.splitlines()[0], parents=[bench_args.common()]
    )
    parser.add_argument("--objects", type=int, default=1000, help="objects in the bucket (default 1000)")
    parser.add_argument("--object-size", type=int, default=3072, help="bytes per object, about (default 3072)")
    parser.add_argument("--first-runs", type=int, default=3, help="Buckets created one after another (default 3)")
    parser.add_argument("--noop-rounds", type=int, default=10, help="requested no-op reconciles (default 10)")
    bench_args.switch(parser, "--tls", True, "S3 over HTTPS")
    bench_args.switch(
        parser,
        "--keep-alive",
        True,
        "versitygw keeps connections open, as AWS S3 does (default); --no-keep-alive: its own default, "
        "which closes each connection after one answer, so every request is a new TCP (and TLS) connection",
    )
    bench_args.switch(parser, "--git", True, "also a GitRepository of the same files")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the controller under bench.sources' _profiled-controller (one cProfile per thread, thread CPU "
        "clock) and print where its CPU went",
    )
    args = bench_args.parse(parser, argv)
    if min(args.objects, args.object_size, args.first_runs, args.noop_rounds) < 1:
        parser.error("--objects, --object-size, --first-runs and --noop-rounds must be at least 1")
    return args


# -- the content ------------------------------------------------------------------------------------


def files(count: int, size: int) -> dict[str, bytes]:
    """``count`` distinct ConfigMaps of about ``size`` bytes, 50 to a directory, as a config bucket holds them."""
    found = {}
    for i in range(count):
        name = f"config-{i:04d}"
        head = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: team-{i // 50:02d}\ndata:\n"
        lines, j = [head], 0
        while sum(map(len, lines)) < size:
            lines.append(f"  key{j:03d}: value-{i:04d}-{j:03d}-{'x' * 24}\n")
            j += 1
        found[f"apps/team-{i // 50:02d}/{name}.yaml"] = "".join(lines).encode()
    return found


def upload(s3: S3Server, objects: dict[str, bytes]) -> str:
    """The bucket filled over 8 connections; Flux's revision of it, from what was sent.

    The client sends no checksum it is not asked for: versitygw v1.8.0 with ``--keep-alive`` misreads the
    next request on a connection after an ``aws-chunked`` upload (boto3's default) and answers 400.
    """
    os.environ["AWS_REQUEST_CHECKSUM_CALCULATION"] = "when_required"  # read as the client is made
    try:
        client = s3.client()
    finally:
        del os.environ["AWS_REQUEST_CHECKSUM_CALCULATION"]
    client.create_bucket(Bucket=BUCKET_NAME)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda item: client.put_object(Bucket=BUCKET_NAME, Key=item[0], Body=item[1]), objects.items()))
    return flux_revision({key: md5(body) for key, body in objects.items()})


def git_revision(root: Path, scratch: Path, objects: dict[str, bytes]) -> str:
    """``files.git`` under ``root``, one commit of ``objects``; Flux's revision ``main@sha1:<commit>``."""
    init_bare_repo(root / "files.git")
    repo = GitRepo(scratch / "files")
    commit = repo.commit(dict(objects), message="1000 files")
    repo.push(root / "files.git")
    return f"main@sha1:{commit}"


def bucket_object(name: str, s3: S3Server) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "bucketName": BUCKET_NAME, "endpoint": s3.endpoint, "interval": INTERVAL, "secretRef": {"name": "s3-keys"},
    }  # fmt: skip
    if s3.insecure:
        spec["insecure"] = True
    else:
        spec["certSecretRef"] = {"name": "s3-ca"}
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "Bucket", "metadata": {"name": name}, "spec": spec}


def create_secrets(api: KubeApi, s3: S3Server) -> None:
    secrets = f"/api/v1/namespaces/{NAMESPACE}/secrets"
    api.must("POST", secrets, {"metadata": {"name": "s3-keys"}, "stringData": s3.secret_data()})
    if s3.ca_pem is not None:
        api.must("POST", secrets, {"metadata": {"name": "s3-ca"}, "stringData": {"ca.crt": s3.ca_pem.decode()}})


# -- what one phase cost ------------------------------------------------------------------------------


def settled(read: Callable[[], list[Request]], quiet: float = 1.0, timeout: float = 15.0) -> list[Request]:
    """The access log's requests once no new one has come for ``quiet`` s (versitygw writes it as it answers)."""
    found, since, deadline = read(), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.1)
        if len(now := read()) != len(found):
            found, since = now, time.monotonic()
    return found


@dataclass(frozen=True)
class Phase:
    """One create or one requested reconcile of one object, as the watch, the access log and /proc saw it."""

    seconds: float
    revision: str
    listings: int  # -1: not countable (a GitRepository)
    downloads: int
    other_requests: int
    status_writes: int  # beyond lastHandledReconcileAt (target 0 for a no-op)
    handled_writes: int  # status writes of lastHandledReconcileAt alone
    reconciles: float
    reconcile_ms: float  # mean time in reconcile() (gotk_reconcile_duration_seconds)
    controller_cpu_ms: float
    server_cpu_ms: float  # versitygw or the git server


@dataclass
class Rig:
    api: KubeApi
    controller: Controller
    watcher: Watcher
    kind: str
    collection: str
    server_pid: int
    requests: Callable[[], list[Request]] | None  # the controller's requests for the bucket, from the access log


def measure(rig: Rig, key: str, act: Callable[[], None], done: Callable[[dict[str, Any]], bool], what: str) -> Phase:
    """``act`` (a create or a requestedAt), until the watch shows ``key`` passing ``done``; what it cost."""
    seen = len(rig.requests()) if rig.requests is not None else 0
    metrics = rig.controller.reconcile_metrics(rig.kind)
    cpu, server = cpu_of(rig.controller.pid), cpu_of(rig.server_pid)
    started = time.monotonic()
    act()
    seconds = rig.watcher.wait_all(started, done, {key}, 300.0, rig.controller.child.check_alive, what)[key]
    requests = settled(rig.requests)[seen:] if rig.requests is not None else []
    time.sleep(1.0)  # a late status write would show in the window
    ended = time.monotonic()
    after = rig.controller.reconcile_metrics(rig.kind)
    counted = writes([e for e in rig.watcher.snapshot() if e.key == key], started, ended, ignore=(HANDLED,))
    last = rig.watcher.last(key) or {}
    actions = [r.action for r in requests]
    return Phase(
        seconds=seconds,
        revision=str(((last.get("status") or {}).get("artifact") or {}).get("revision", "")),
        listings=actions.count(LIST) if rig.requests is not None else -1,
        downloads=actions.count(GET),
        other_requests=len(actions) - actions.count(LIST) - actions.count(GET),
        status_writes=counted.status_total,
        handled_writes=counted.ignored,
        reconciles=after.reconciles - metrics.reconciles,
        reconcile_ms=after.mean_reconcile_ms_since(metrics),
        controller_cpu_ms=(cpu_of(rig.controller.pid) - cpu).total * 1e3,
        server_cpu_ms=(cpu_of(rig.server_pid) - server).total * 1e3,
    )


def ready_at(revision: str) -> Callable[[dict[str, Any]], bool]:
    def done(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        return (
            ready_condition(obj).get("status") == "True"
            and (status.get("artifact") or {}).get("revision") == revision
            and status.get("observedGeneration") == obj["metadata"].get("generation")
        )

    return done


def _create(rig: Rig, body: dict[str, Any]) -> Callable[[], None]:
    return lambda: rig.api.must("POST", rig.collection, body)


def _request(rig: Rig, name: str, token: str) -> Callable[[], None]:
    return lambda: request_reconcile(rig.api, rig.collection, {name}, token)


def _handled(token: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: (obj.get("status") or {}).get(HANDLED) == token


@dataclass
class Source:
    kind: str
    firsts: list[Phase]
    noops: list[Phase]
    hwm_kib: int  # controller VmHWM after this kind's phases


def run_kind(rig: Rig, make: Callable[[str], dict[str, Any]], revision: str, args: argparse.Namespace) -> Source:
    """``--first-runs`` creates, then ``--noop-rounds`` requested reconciles of the first object."""
    names = [f"{rig.kind.lower()}-{i}" for i in range(args.first_runs)]
    firsts = [
        measure(rig, f"{NAMESPACE}/{name}", _create(rig, make(name)), ready_at(revision), f"{rig.kind} {name} Ready")
        for name in names
    ]
    noops = []
    for round_ in range(args.noop_rounds):
        token = f"bench-noop-{round_}-{time.time():.0f}"
        what = f"{rig.kind} {names[0]} {HANDLED} {token}"
        noops.append(measure(rig, f"{NAMESPACE}/{names[0]}", _request(rig, names[0], token), _handled(token), what))
    wrong = [p.revision for p in [*firsts, *noops] if p.revision != revision]
    if wrong:
        raise RuntimeError(f"{rig.kind}: revision {wrong[0]!r} seen, {revision!r} expected")
    return Source(rig.kind, firsts, noops, memory_kib(rig.controller.pid)["VmHWM"])


@dataclass(frozen=True)
class Alone:
    """A no-op's S3 work redone in this process with the controller's own client code, the controller stopped:
    CPU ms (this thread) and wall ms of making the client, of a listing on it (a new connection), and of a
    second listing on the same client (the connection kept, unless ``--no-keep-alive``)."""

    client: list[tuple[float, float]]
    first_listing: list[tuple[float, float]]
    second_listing: list[tuple[float, float]]


def _count(client: Any) -> int:
    return sum(1 for _ in client.list(""))


def time_alone(s3: S3Server, rounds: int) -> Alone:
    from fluxwarden.controllers.source.bucket_api import BucketSpec
    from fluxwarden.controllers.source.bucket_fetch import DEFAULT_CONCURRENCY
    from fluxwarden.controllers.source.bucket_providers import make_client

    spec = BucketSpec.of({"metadata": {}, "spec": bucket_object("alone", s3)["spec"]})
    secret = {k: v.encode() for k, v in s3.secret_data().items()}
    cert = {"ca.crt": s3.ca_pem} if s3.ca_pem is not None else None
    found: dict[str, list[tuple[float, float]]] = {"client": [], "first": [], "second": []}

    def timed(what: str, call: Callable[[], object]) -> Any:
        cpu, wall = time.thread_time(), time.perf_counter()
        value = call()
        found[what].append(((time.thread_time() - cpu) * 1e3, (time.perf_counter() - wall) * 1e3))
        return value

    for _ in range(rounds):
        client = timed("client", lambda: make_client(spec, NAMESPACE, secret, cert, DEFAULT_CONCURRENCY))
        try:
            for what in ("first", "second"):
                if timed(what, functools.partial(_count, client)) < 1:
                    raise RuntimeError("the listing alone found no object")
        finally:
            client.close()
    return Alone(found["client"], found["first"], found["second"])


# -- the run ------------------------------------------------------------------------------------------


@dataclass
class Result:
    objects: int
    total_bytes: int
    upload_s: float
    idle_rss_kib: int
    idle_cpu: float  # CPU seconds per second, no object yet
    sources: list[Source]
    load: list[str]
    profile: str
    alone: Alone


@contextlib.contextmanager
def git_server(work: Path, objects: dict[str, bytes], enabled: bool) -> Iterator[tuple[str, int, str] | None]:
    """The files as one commit on the tests' git server in its own process: (URL, pid, revision), or None."""
    if not enabled:
        yield None
        return
    revision = git_revision(work / "repos", work, objects)
    child, url = start_git_server(work / "repos", work / "git-server.log")
    try:
        yield f"{url}/files.git", child.pid, revision
    finally:
        child.stop()


def run(args: argparse.Namespace, work: Path) -> Result:
    objects = files(args.objects, args.object_size)
    load = [f"start {load_average()}"]
    access_log = work / "s3-access.log"
    profile_out = work / "controller.prof" if args.profile else None
    with (
        logged_s3(access_log, PrivateCA() if args.tls else None, keep_alive=args.keep_alive) as s3,
        git_server(work, objects, args.git) as git,
        cluster(binary_dir(), work / "cluster") as running,
    ):
        began = time.monotonic()
        revision = upload(s3, objects)
        upload_s = time.monotonic() - began
        plane = running.plane
        api = KubeApi(plane, timeout=60)
        with contextlib.ExitStack() as stack:
            stack.callback(api.close)
            api.must("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
            create_secrets(api, s3)
            tmp = work / "controller-tmp"
            tmp.mkdir()
            controller = Controller.launch(
                controllers_run(plane, work, args, "source"), work / "controller.log", module="bench.sources",
                env=controller_env(tmp), request_timeout=30, profile_out=profile_out,
            )  # fmt: skip
            stack.callback(controller.stop)
            controller.wait_ready()
            time.sleep(args.settle)  # let start-up settle before reading the idle RSS and CPU
            idle_rss = memory_kib(controller.pid)["VmRSS"]
            idle_cpu = controller.idle_cpu(args.idle)
            watchers = stack.enter_context(watching(plane, BUCKETS, GITREPOSITORIES))
            assert s3.pid is not None

            def requests() -> list[Request]:
                return controller_requests(access_log, BUCKET_NAME) if access_log.exists() else []

            rig = Rig(api, controller, watchers[0], "Bucket", BUCKETS, s3.pid, requests)
            sources = [run_kind(rig, lambda name: bucket_object(name, s3), revision, args)]
            load.append(f"after the Buckets {load_average()}")
            if git is not None:
                url, pid, git_rev = git
                rig = Rig(api, controller, watchers[1], "GitRepository", GITREPOSITORIES, pid, None)

                def make(name: str) -> dict[str, Any]:
                    body: dict[str, Any] = json.loads(git_repository(name, url))
                    body["spec"]["interval"] = INTERVAL
                    return body

                sources.append(run_kind(rig, make, git_rev, args))
                load.append(f"after the GitRepositories {load_average()}")
        alone = time_alone(s3, args.noop_rounds)
    profile = "" if profile_out is None else read_profile(profile_out) if profile_out.exists() else "(none written)"
    total = sum(map(len, objects.values()))
    return Result(len(objects), total, upload_s, idle_rss, idle_cpu, sources, load, profile, alone)


# -- the report -----------------------------------------------------------------------------------------


def report(result: Result) -> None:
    print(
        f"\n{result.objects} objects, {result.total_bytes / MIB:.0f} KiB in all, uploaded in {result.upload_s:.1f}s; "
        f"load avg {'; '.join(result.load)}"
    )
    for source in result.sources:
        print(f"\n== {source.kind}")
        for label, phases in (("create", source.firsts), ("no-op", source.noops)):
            for i, p in enumerate(phases):
                requests = "" if p.listings < 0 else f", {p.listings} listings, {p.downloads} downloads"
                print(
                    f"  {label} {i + 1}: {p.seconds:.2f}s{requests}, {p.status_writes} status writes + "
                    f"{p.handled_writes} of {HANDLED} alone, {p.reconciles:.0f} reconciles, reconcile() "
                    f"{p.reconcile_ms:.0f} ms, CPU controller {p.controller_cpu_ms:.0f} ms, server "
                    f"{p.server_cpu_ms:.0f} ms"
                )
    print(
        f"\ncontroller before the first object: RSS {result.idle_rss_kib / MIB:.1f} MiB, CPU "
        f"{100 * result.idle_cpu:.2f}% of a core"
    )
    rows: list[tuple[str, Callable[[Source], str]]] = [
        ("first artifact s (p50 / max)", lambda s: _spread([p.seconds for p in s.firsts], "{:.2f}")),
        ("  listings / downloads", lambda s: _requests(s.firsts)),
        ("  controller CPU ms (p50)", lambda s: f"{pct([p.controller_cpu_ms for p in s.firsts], 50):.0f}"),
        ("no-op reconcile s (p50 / p90)", lambda s: _p50_p90([p.seconds for p in s.noops], "{:.3f}")),
        ("  reconcile() ms (p50 / p90)", lambda s: _p50_p90([p.reconcile_ms for p in s.noops], "{:.1f}")),
        ("  object downloads per no-op", lambda s: _per(s.noops, lambda p: p.downloads, s.noops[0].listings < 0)),
        ("  listings per no-op", lambda s: _per(s.noops, lambda p: p.listings, s.noops[0].listings < 0)),
        ("  status writes per no-op", lambda s: _per(s.noops, lambda p: p.status_writes)),
        (f"  writes of {HANDLED} alone", lambda s: _per(s.noops, lambda p: p.handled_writes)),
        ("  reconciles per no-op", lambda s: _per(s.noops, lambda p: p.reconciles)),
        ("  controller CPU ms per no-op", lambda s: f"{_mean([p.controller_cpu_ms for p in s.noops]):.1f}"),
        ("  server CPU ms per no-op", lambda s: f"{_mean([p.server_cpu_ms for p in s.noops]):.1f}"),
        ("controller peak RSS MiB (VmHWM after)", lambda s: f"{s.hwm_kib / MIB:.1f}"),
    ]
    names = [f"{s.kind} ({result.objects} {'objects' if s.kind == 'Bucket' else 'files'})" for s in result.sources]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'':<{width}}  " + "  ".join(f"{n:>28}" for n in names))
    for label, cell in rows:
        print(f"{label:<{width}}  " + "  ".join(f"{cell(s):>28}" for s in result.sources))
    print(
        f"(targets for the Bucket: 0 downloads, 1 listing, 0 status writes per no-op; a requested reconcile "
        f"always writes {HANDLED}, as Flux's does. S3 lists 1000 keys a page. CPU from /proc in 10 ms ticks.)"
    )
    a = result.alone
    print(
        f"\na no-op's S3 work alone, in this process with the controller's client code ({len(a.client)} samples, "
        f"p50 CPU / wall ms): make the client {_cpu_wall(a.client)}; list {result.objects} keys on it (new "
        f"connection) {_cpu_wall(a.first_listing)}; list again on it {_cpu_wall(a.second_listing)}"
    )
    if result.profile:
        print(f"\ncProfile of the controller over the whole run (thread CPU clock, all threads):\n{result.profile}")


def _cpu_wall(samples: list[tuple[float, float]]) -> str:
    return f"{pct([c for c, _ in samples], 50):.1f} / {pct([w for _, w in samples], 50):.1f}"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _spread(values: list[float], fmt: str) -> str:
    return f"{fmt.format(pct(values, 50))} / {fmt.format(max(values))}"


def _p50_p90(values: list[float], fmt: str) -> str:
    return f"{fmt.format(pct(values, 50))} / {fmt.format(pct(values, 90))}"


def _requests(phases: list[Phase]) -> str:
    if phases[0].listings < 0:
        return "n/a"
    return f"{_mean([p.listings for p in phases]):.2f} / {_mean([p.downloads for p in phases]):.0f}"


def _per(phases: list[Phase], value: Callable[[Phase], float], absent: bool = False) -> str:
    if absent:
        return "n/a"
    values = [value(p) for p in phases]
    return f"{_mean(values):.2f} (max {max(values):g})"


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if args.code != "worktree":
        return rerun_from_copy("bench.sources", ["bucket", *argv], args)
    arm_deadline("bench.sources bucket", args.deadline)
    import fluxwarden

    print(
        f"bench.sources bucket: {os.cpu_count()} cores, load avg {load_average()}; {args.objects} objects of about "
        f"{args.object_size} bytes over {'HTTPS' if args.tls else 'HTTP'} "
        f"(keep-alive {'on' if args.keep_alive else 'off'}), {args.first_runs} creates, "
        f"{args.noop_rounds} no-op rounds; controller = `fluxwarden controllers run --controllers source` "
        f"(concurrency {args.concurrency}) from {Path(fluxwarden.__file__).parent}",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="fluxwarden-bench-bucket-") as tmp:
            result = run(args, Path(tmp))
    finally:
        signal.alarm(0)
    report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
