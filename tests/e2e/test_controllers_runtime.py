"""The runtime around the reconcilers: CLI verbs, metrics, health, leader election, Flux events."""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.runtime.controller import Context, Key, Success, Watch
from fluxwarden.controllers.runtime.kube import Kube, Resource
from fluxwarden.controllers.runtime.leader import LeaderElector
from fluxwarden.controllers.runtime.manager import Manager, ManagerOptions
from fluxwarden.controllers.source.api import GIT_REPOSITORY, HELM_REPOSITORY
from tests.support.control_plane import ControlPlane
from tests.support.git_server import GitHttpServer, GitRepo
from tests.support.wait import until
from tests.support.webhook import free_port

SHARD = "sharding.fluxcd.io/key"


def cli(control_plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}
    return subprocess.run(
        [sys.executable, "-m", "fluxwarden.cli.main", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GitHttpServer, str, str]]:
    with GitHttpServer(tmp_path_factory.mktemp("git")) as server:
        url = server.create_repo("cli")
        work = GitRepo(tmp_path_factory.mktemp("work"))
        sha = work.commit({"a.yaml": "a: 1\n"})
        work.push(server.repo_path("cli"))
        yield server, url, sha


class Receiver(BaseHTTPRequestHandler):
    """Records the Flux events posted to it (the notification controller's role)."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Receiver.received.append(json.loads(body))
        self.send_response(202)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def events_receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def observed(start_reconcilers: Callable[..., Reconcilers], events_receiver: str) -> Reconcilers:
    """A source controller for shard ``cli`` with metrics, health and Flux event posting on."""
    return start_reconcilers(
        ("source",), label_selector=f"{SHARD}=cli", events_addr=events_receiver,
        metrics_port=free_port(), health_port=free_port(),
    )  # fmt: skip


def make_source(
    admin_api: client.ApiClient, resource: Resource, namespace: str, name: str, shard: str, spec: dict[str, Any]
) -> None:
    """A source object of ``resource`` in ``shard`` (interval 10m)."""
    body = {
        "apiVersion": resource.api_version, "kind": resource.kind,
        "metadata": {"name": name, "namespace": namespace, "labels": {SHARD: shard}},
        "spec": {"interval": "10m", **spec},
    }  # fmt: skip
    client.CustomObjectsApi(admin_api).create_namespaced_custom_object(
        resource.group, resource.version, namespace, resource.plural, body
    )


def make_repo(admin_api: client.ApiClient, namespace: str, name: str, url: str) -> None:
    make_source(admin_api, GIT_REPOSITORY, namespace, name, "cli", {"url": url, "ref": {"branch": "main"}})


def ready(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return until(
        lambda: kube.get(GIT_REPOSITORY, namespace, name),
        lambda o: any(
            c["type"] == "Ready" and c["status"] == "True" for c in o.get("status", {}).get("conditions", [])
        ),
        what=f"{name} Ready",
    )


def test_get_reconcile_suspend_resume_through_the_cli(
    control_plane: ControlPlane, admin_api: client.ApiClient, namespace: str, observed: Reconcilers,
    git: tuple[GitHttpServer, str, str],
) -> None:  # fmt: skip
    _, url, sha = git
    make_repo(admin_api, namespace, "cli", url)
    ready(Kube(admin_api), namespace, "cli")

    listing = cli(control_plane, "get", "sources", "git", "-n", namespace)
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.split() == ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    assert row.split()[:4] == ["cli", f"main@sha1:{sha}", "False", "True"]
    everywhere = cli(control_plane, "get", "sources", "-A")
    assert namespace in everywhere.stdout and everywhere.stdout.splitlines()[0].startswith("NAMESPACE")

    done = cli(control_plane, "reconcile", "source", "git", "cli", "-n", namespace)
    assert done.returncode == 0, done.stderr
    assert f"✔ stored artifact for revision 'main@sha1:{sha}'" in done.stdout

    assert cli(control_plane, "suspend", "source", "git", "cli", "-n", namespace).returncode == 0
    assert "True" in cli(control_plane, "get", "sources", "git", "-n", namespace).stdout.splitlines()[1].split()[2]
    suspended = cli(control_plane, "reconcile", "source", "git", "cli", "-n", namespace, "--timeout", "2s")
    assert suspended.returncode == 1 and f"GitRepository {namespace}/cli is suspended" in suspended.stderr
    resumed = cli(control_plane, "resume", "source", "git", "cli", "-n", namespace)
    assert resumed.returncode == 0 and "✔ GitRepository reconciliation completed" in resumed.stdout, resumed.stderr
    missing = cli(control_plane, "reconcile", "source", "git", "nope", "-n", namespace)
    assert missing.returncode == 1 and "nope" in missing.stderr and "Traceback" not in missing.stderr


def test_metrics_health_and_flux_events(
    admin_api: client.ApiClient, namespace: str, observed: Reconcilers, git: tuple[GitHttpServer, str, str]
) -> None:
    _, url, sha = git
    name = f"metrics-{uuid.uuid4().hex[:6]}"
    make_repo(admin_api, namespace, name, url)
    ready(Kube(admin_api), namespace, name)
    options = observed.manager.options
    metrics = httpx.get(f"http://127.0.0.1:{options.metrics_port}/metrics", timeout=5).text
    assert (
        f'gotk_reconcile_duration_seconds_count{{kind="GitRepository",name="{name}",namespace="{namespace}"}}'
        in metrics
    )
    assert (f'gotk_reconcile_condition{{kind="GitRepository",name="{name}",namespace="{namespace}",'
            'status="True",type="Ready"} 1.0') in metrics  # fmt: skip
    assert httpx.get(f"http://127.0.0.1:{options.health_port}/readyz", timeout=5).status_code == 200
    posted = until(
        lambda: [e for e in Receiver.received if e["involvedObject"]["name"] == name], bool, what="a Flux event"
    )
    event = posted[0]
    assert event["severity"] == "info" and event["reportingController"] == "source-controller"
    assert event["metadata"] == {"source.toolkit.fluxcd.io/revision": f"main@sha1:{sha}"}
    assert event["involvedObject"]["kind"] == "GitRepository" and event["reason"] == "Succeeded"


def test_leader_election_hands_over_when_the_leader_stops(admin_api: client.ApiClient, namespace: str) -> None:
    lease = f"lease-{uuid.uuid4().hex[:6]}"
    first = LeaderElector(admin_api, namespace, lease, "first", lease_duration=2, renew_deadline=1.5, retry_period=0.2)
    second = LeaderElector(
        admin_api, namespace, lease, "second", lease_duration=2, renew_deadline=1.5, retry_period=0.2
    )
    stop_first, stop_second = threading.Event(), threading.Event()
    assert first.acquire(stop_first)
    assert not second.try_acquire_or_renew(), "a held, fresh lease is not taken"
    took_over = threading.Thread(target=second.acquire, args=(stop_second,))
    took_over.start()
    took_over.join(1.0)
    assert took_over.is_alive(), "the second waits while the first renews"
    first_renewing = threading.Thread(target=first.keep, args=(stop_first, lambda: None))
    first_renewing.start()
    took_over.join(1.0)
    assert took_over.is_alive()
    stop_first.set()  # the leader stops renewing
    first_renewing.join(5)
    took_over.join(10)
    assert not took_over.is_alive(), "the second took over once the lease expired"
    holder = client.CoordinationV1Api(admin_api).read_namespaced_lease(lease, namespace).spec
    assert holder.holder_identity == "second" and holder.lease_transitions == 1


def series_of(metrics_port: int, name: str) -> list[str]:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    return [line for line in text.splitlines() if f'name="{name}"' in line]


def test_a_deleted_object_drops_all_its_metric_series(
    admin_api: client.ApiClient, namespace: str, observed: Reconcilers, git: tuple[GitHttpServer, str, str]
) -> None:
    _, url, _ = git
    name = f"gone-{uuid.uuid4().hex[:6]}"
    make_repo(admin_api, namespace, name, url)
    ready(Kube(admin_api), namespace, name)
    port = observed.manager.options.metrics_port
    before = series_of(port, name)
    for family in ("gotk_reconcile_condition{", "gotk_reconcile_duration_seconds_count{", "gotk_suspend_status{"):
        assert any(line.startswith(family) for line in before), f"{family} missing before the deletion: {before}"
    client.CustomObjectsApi(admin_api).delete_namespaced_custom_object(
        GIT_REPOSITORY.group, GIT_REPOSITORY.version, namespace, GIT_REPOSITORY.plural, name
    )
    until(lambda: series_of(port, name), lambda lines: not lines, what=f"every series of {name} gone")


class _Recorder:
    """A controller that only records what it reconciles: the runtime under test does the rest.

    It watches HelmRepositories through a mapper that raises on the one named ``poison`` (a bug in
    a mapper) and maps every other to the GitRepository of the same name.
    """

    name = "recorder"
    resource = GIT_REPOSITORY
    finalizer = "test.fluxwarden.io/recorder"

    def __init__(self) -> None:
        self.reconciled: list[str] = []
        self.watches = [Watch(HELM_REPOSITORY, self._map)]

    def _map(self, new: dict[str, Any], old: dict[str, Any] | None, own: list[dict[str, Any]]) -> list[Key]:
        if new["metadata"]["name"] == "poison":
            raise RuntimeError("mapper bug")
        if old is not None and old["metadata"]["resourceVersion"] == new["metadata"]["resourceVersion"]:
            return []  # a relist of an unchanged object
        return [(new["metadata"]["namespace"], new["metadata"]["name"])]

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        self.reconciled.append(obj["metadata"]["name"])
        return Success("recorded")

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        return


def make_helm_repo(admin_api: client.ApiClient, namespace: str, name: str, url: str, shard: str) -> None:
    make_source(admin_api, HELM_REPOSITORY, namespace, name, shard, {"url": url})


def test_a_crashing_mapper_does_not_stop_the_informer_and_readyz_follows_it(
    control_plane: ControlPlane, admin_api: client.ApiClient, namespace: str, flux_crds: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    shard = f"crash-{uuid.uuid4().hex[:6]}"
    recorder = _Recorder()
    port = free_port()
    options = ManagerOptions(label_selector=f"{SHARD}={shard}", health_port=port, watch_timeout=30, backoff_base=0.2)
    manager = Manager(Kube(admin_api), [recorder], options)

    def readyz() -> int:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code
        except httpx.TransportError:
            return 0

    def recorded(name: str, times: int) -> None:
        until(lambda: recorder.reconciled.count(name), lambda n: n >= times, what=f"{name} reconciled {times}x")

    manager.start()
    try:
        until(readyz, lambda code: code == 200, what="/readyz up after the first list")
        for name in ("a", "b"):
            make_source(admin_api, GIT_REPOSITORY, namespace, name, shard, {"url": "https://example.invalid/r.git"})
            recorded(name, 1)

        with caplog.at_level(logging.ERROR, logger="fluxwarden.controllers.informer"):
            make_helm_repo(admin_api, namespace, "poison", "https://marker-of-the-body.invalid/", shard)
            until(readyz, lambda code: code == 503, what="/readyz down while the informer restarts")
            for touch in range(3):  # more events of the poison within one backoff: no more log lines
                client.CustomObjectsApi(admin_api).patch_namespaced_custom_object(
                    HELM_REPOSITORY.group, HELM_REPOSITORY.version, namespace, HELM_REPOSITORY.plural, "poison",
                    {"metadata": {"annotations": {"touch": str(touch)}}},
                )  # fmt: skip
            # Later events of other objects are still delivered, while the poison makes every relist fail.
            make_helm_repo(admin_api, namespace, "a", "https://example.invalid/charts/", shard)
            recorded("a", 2)
            make_helm_repo(admin_api, namespace, "b", "https://example.invalid/charts/", shard)
            recorded("b", 2)
            assert readyz() == 503, "still down: the poison fails every list"
        failures = [r for r in caplog.records if "handler of HelmRepository events failed" in r.getMessage()]
        assert failures, "the failure is logged"
        first = failures[0].getMessage()
        assert f"{namespace}/poison" in first and "RuntimeError: mapper bug" in first
        assert "test_controllers_runtime.py" in first, "where the bug is"
        assert all(r.exc_info is None and "marker-of-the-body" not in r.getMessage() for r in failures)
        gaps = [later.created - earlier.created for earlier, later in itertools.pairwise(failures)]
        assert all(gap >= 0.9 for gap in gaps), f"logged once per failed list (backoff from 1s), not per event: {gaps}"

        client.CustomObjectsApi(admin_api).delete_namespaced_custom_object(
            HELM_REPOSITORY.group, HELM_REPOSITORY.version, namespace, HELM_REPOSITORY.plural, "poison"
        )
        until(readyz, lambda code: code == 200, timeout=60, what="/readyz up after a clean relist")

        # The API server goes away and comes back: down while it is gone, up and delivering after.
        control_plane.stop_apiserver()
        try:
            until(readyz, lambda code: code == 503, what="/readyz down without an API server")
        finally:
            control_plane.start_apiserver()
        until(readyz, lambda code: code == 200, timeout=60, what="/readyz up after the API server restart")
        before = recorder.reconciled.count("a")
        client.CustomObjectsApi(admin_api).patch_namespaced_custom_object(
            HELM_REPOSITORY.group, HELM_REPOSITORY.version, namespace, HELM_REPOSITORY.plural, "a",
            {"spec": {"interval": "5m"}},
        )  # fmt: skip
        recorded("a", before + 1)
    finally:
        manager.stop()
