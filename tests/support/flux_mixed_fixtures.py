"""Module-scoped fixtures of the mixed-deployment tests, made by factories so each module names only what differs.

A module assigns one to a name (``flux_helm = flux_fixture("helm-controller")``): pytest takes the fixture's
name from that attribute. Each module has its own fluxwarden shard, so no module reconciles another's
objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from tests.support import helm_charts
from tests.support.control_plane import ControlPlane
from tests.support.flux_mixed import FLUX_SHARD, Objects, Tenant, flux_on_shard, tenant_namespaces
from tests.support.flux_upstream import FluxController
from tests.support.helm_repo import HelmRepoServer
from tests.support.notification import event_url
from tests.support.tenants import SHARD
from tests.support.tls import PrivateCA


def fluxwarden_fixture(shard: str, *controllers: str) -> Any:
    """fluxwarden's ``controllers``, watching only objects of ``shard``."""

    @pytest.fixture(scope="module")
    def fixture(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
        return start_reconcilers(controllers, label_selector=f"{SHARD}={shard}")

    return fixture


def flux_fixture(name: str, *args: str, shard: str = FLUX_SHARD, events: bool = False) -> Any:
    """Flux's ``name`` controller on ``shard``, with ``args`` added; with ``events``, posting its events to the
    module's ``fluxwarden`` fixture (its event server), as ``--events-addr`` does in a Flux install."""

    @pytest.fixture(scope="module")
    def fixture(
        control_plane: ControlPlane,
        flux_crds: list[str],
        tmp_path_factory: pytest.TempPathFactory,
        request: pytest.FixtureRequest,
    ) -> Iterator[FluxController]:
        events_addr = (f"--events-addr={event_url(request.getfixturevalue('fluxwarden'))}",) if events else ()
        work = tmp_path_factory.mktemp(name)
        with flux_on_shard(name, control_plane.kubeconfig, work, *args, *events_addr, shard=shard) as controller:
            yield controller

    return fixture


def chart_fixture(folder: str, values: dict[str, Any], *versions: str) -> Any:
    """An HTTPS chart repository (trusted through the session's ``authority``) serving chart ``cms`` at
    ``versions``, each with ``values`` and two ConfigMaps ``<release>-0`` and ``<release>-1``."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory: pytest.TempPathFactory, authority: PrivateCA) -> Iterator[HelmRepoServer]:
        with HelmRepoServer(tmp_path_factory.mktemp(folder), tls=authority.server_context()) as repo:
            for version in versions:
                repo.add_chart("cms", version, values, templates=helm_charts.configmaps(2))
            yield repo

    return fixture


def tenant_fixture(*watchers: str) -> Any:
    """A new ``Tenant`` per test whose waits fail when one of the module's Flux controllers (fixtures
    ``watchers``) exits; it starts them and the module's ``fluxwarden`` fixture first."""

    @pytest.fixture
    def fixture(
        admin_api: client.ApiClient, namespace_factory: Callable[[], str], request: pytest.FixtureRequest
    ) -> Tenant:
        request.getfixturevalue("fluxwarden")
        controllers: tuple[FluxController, ...] = tuple(request.getfixturevalue(w) for w in watchers)
        config, target = tenant_namespaces(admin_api, namespace_factory)
        return Tenant(admin_api, config, target, Objects(admin_api, config, controllers))

    return fixture
