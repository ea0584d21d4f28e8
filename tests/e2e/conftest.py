"""Fixtures for end-to-end tests: one real control plane per session, a fresh namespace per test.

A start failure of the control plane is an error, never a skip: e2e tests that silently do not run
would hide exactly the problems they exist to find.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import ControllersOptions, Reconcilers, build
from fluxwarden.controllers.runtime.kube import Kube
from fluxwarden.controllers.runtime.manager import ManagerOptions
from tests.support import flux_crds as flux_crds_support
from tests.support import fluxconfig_crd as fluxconfig_crd_support
from tests.support.control_plane import ControlPlane
from tests.support.field_warnings import FieldWarnings, recording
from tests.support.git_server import GitHttpServer
from tests.support.kube import Impersonate, Kubectl, KubectlRunner, api_client, kubectl_binary
from tests.support.oci_artifacts import RegistryReader
from tests.support.oci_registry import OciRegistry
from tests.support.tls import PrivateCA


@pytest.fixture(scope="session")
def control_plane(test_binaries: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver for the whole session; a start failure fails the tests that need it."""
    with ControlPlane(test_binaries, tmp_path_factory.mktemp("control-plane")) as plane:
        yield plane


@pytest.fixture(scope="session")
def admin_api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    """A client with the admin certificate (group system:masters): RBAC lets it do anything."""
    with api_client(control_plane.kubeconfig) as api:
        yield api


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane, test_binaries: Path) -> Kubectl:
    """kubectl of the apiserver's own version against the test cluster as admin.

    It raises on a non-zero exit unless ``check=False``. Session-scoped so module fixtures can use it.
    """
    return KubectlRunner(
        kubectl_binary(test_binaries), control_plane.kubeconfig, control_plane.kubeconfig.parent / "kubectl-cache"
    )


@pytest.fixture(scope="session")
def flux_crds(kubectl: Kubectl) -> list[str]:
    """The CRDs of the pinned upstream Flux release (tests/flux/crds.sh), installed once with a
    server-side apply and Established; returns their names. manifests/crds (the stand-ins for
    clusters without Flux) is not installed: it is checked with a server-side dry run instead.

    No directory is an error (FluxCRDsMissing), never a skip.
    """
    return flux_crds_support.install(kubectl)


@pytest.fixture(scope="session")
def fluxconfig_crd(kubectl: Kubectl) -> str:
    """fluxwarden's FluxConfig CRD (manifests/crds/fluxconfig.yaml), server-side applied and Established."""
    return fluxconfig_crd_support.install(kubectl)


@pytest.fixture(scope="session")
def field_warnings() -> Iterator[FieldWarnings]:
    with recording() as warnings:
        yield warnings


@pytest.fixture(autouse=True)
def no_pruned_fields(field_warnings: FieldWarnings) -> Iterator[None]:
    """Fail a test during which the API server pruned a field it does not know (Flux's schemas are strict).

    Controllers run in background threads, so a warning is charged to the test that was running.
    """
    field_warnings.take()
    yield
    pruned = field_warnings.take()
    if pruned:
        pytest.fail("the API server pruned fields missing from the CRD schema:\n" + "\n".join(sorted(set(pruned))))


def _namespace_name(test_name: str) -> str:
    """A DNS label unique to this test run: ``e2e-<test name>-<random>``, at most 63 characters."""
    stem = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:45].rstrip("-")
    return f"e2e-{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def namespace_factory(admin_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    """Make as many fresh namespaces as a test needs (e.g. two tenants); all deleted afterwards.

    Deletion is Background and the namespaces stay Terminating: a bare apiserver runs no
    namespace controller. Unique names keep tests independent of that.
    """
    core = client.CoreV1Api(admin_api)
    made: list[str] = []

    def make() -> str:
        name = _namespace_name(request.node.name)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        made.append(name)
        return name

    yield make
    for name in made:
        core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def namespace(namespace_factory: Callable[[], str]) -> str:
    """A fresh namespace for this test."""
    return namespace_factory()


@pytest.fixture
def impersonate(control_plane: ControlPlane) -> Iterator[Impersonate]:
    """``impersonate(namespace, service_account)``: an admin client acting as that service account.

    The apiserver adds the service-account groups itself, as it does for a real token.
    """
    with contextlib.ExitStack() as clients:

        def make(namespace: str, service_account: str) -> client.ApiClient:
            user = f"system:serviceaccount:{namespace}:{service_account}"
            api = api_client(control_plane.kubeconfig, impersonate_user=user)
            clients.enter_context(api)
            return api

        yield make


RunningReconcilers = list[tuple[Reconcilers, client.ApiClient | None]]


@pytest.fixture(scope="session")
def running_reconcilers() -> RunningReconcilers:
    """The controllers start_reconcilers started and has not stopped yet, oldest first."""
    return []


def _stop_since(running: RunningReconcilers, count: int) -> None:
    while len(running) > count:
        reconcilers, own = running.pop()
        reconcilers.stop()
        if own is not None:
            own.close()


@pytest.fixture(scope="module", autouse=True)
def stop_module_reconcilers(running_reconcilers: RunningReconcilers) -> Iterator[None]:
    """Stop the controllers a module started when it ends: an e2e worker runs many modules, and controllers
    left running keep watching and requeueing the objects of finished modules, slowing every later one."""
    before = len(running_reconcilers)
    yield
    _stop_since(running_reconcilers, before)


@pytest.fixture(scope="session")
def start_reconcilers(
    control_plane: ControlPlane,
    flux_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
    running_reconcilers: RunningReconcilers,
) -> Iterator[Callable[..., Reconcilers]]:
    """Factory: ``start_reconcilers(controllers=("source",), label_selector=None, api=None, **options)`` runs
    the real controllers in this process against the test cluster; they are stopped when the module that
    started them ends.

    Each instance should watch its own shard (``label_selector``) so that two never reconcile one object.
    ``api`` is the controllers' client (default: a new admin client); the caller closes one it passes.
    """
    running = running_reconcilers

    def start(
        controllers: tuple[str, ...] = ("source",),
        label_selector: str | None = None,
        api: client.ApiClient | None = None,
        **options: Any,
    ) -> Reconcilers:
        own = None if api is not None else api_client(control_plane.kubeconfig)
        api = api or own
        manager_fields = {f.name for f in dataclasses.fields(ManagerOptions)}
        defaults: dict[str, Any] = {"concurrency": 4, "watch_timeout": 30, "backoff_base": 0.2}
        given = {k: v for k, v in options.items() if k in manager_fields}
        manager = ManagerOptions(**{**defaults, **given, "label_selector": label_selector})
        options = {k: v for k, v in options.items() if k not in manager_fields}
        reconcilers = build(
            Kube(api),
            ControllersOptions(
                controllers=controllers,
                storage_path=tmp_path_factory.mktemp("storage"),
                storage_host="127.0.0.1",
                storage_port=0,
                manager=manager,
                **options,
            ),
        )
        reconcilers.start()
        running.append((reconcilers, own))
        return reconcilers

    yield start
    _stop_since(running, 0)


@pytest.fixture(scope="module")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttpServer]:
    """A smart-HTTP git server on loopback for one test module (a module may define its own, with auth)."""
    with GitHttpServer(tmp_path_factory.mktemp("git")) as server:
        yield server


@pytest.fixture(scope="module")
def authority() -> PrivateCA:
    """The private CA the HTTPS test servers' certificates come from (one per module)."""
    return PrivateCA()


@pytest.fixture(scope="module")
def registry() -> Iterator[OciRegistry]:
    """One htpasswd + TLS registry per test module."""
    with OciRegistry(PrivateCA()) as server:
        yield server


@pytest.fixture(scope="module")
def reader(registry: OciRegistry) -> Iterator[RegistryReader]:
    """Reads the registry by hand, independently of the controller's client."""
    found = RegistryReader(registry)
    yield found
    found.close()
