"""A Kustomization changes hands between upstream Flux's kustomize-controller and fluxwarden's, both ways.

Flux's kustomize-controller (v1.9.5, built from its Go module, multi-tenancy lockdown flags) and
fluxwarden's run side by side on label shards. The GitRepository stays on fluxwarden's shard for the
whole test (fluxwarden's source controller serves the artifact to both), so only the Kustomization
moves, with the documented steps: suspend, move it to the other shard, resume.

Each direction checks what a migration must keep: no object re-created (uids), none even written
(resourceVersions: both sides apply the same fields under the same field manager, so the new owner's
drift check finds nothing), nothing pruned that git still has, the inventory unchanged (Flux's ids),
and one field manager, ``kustomize-controller``, so a field removed from git after the hand-over is
removed from the live object. Then one file leaves git and the new owner prunes exactly that object,
which it knows only from the old owner's inventory.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.source.api import GIT_REPOSITORY
from tests.support.flux_migration import config_map_id, config_maps, hand_over, inventory, managers, uids, versions
from tests.support.flux_mixed_fixtures import flux_fixture, fluxwarden_fixture
from tests.support.flux_upstream import FluxController
from tests.support.git_server import GitHttpServer
from tests.support.tenants import SHARD, Tenant, condition, configmap, make_tenant

FLUXWARDEN_SHARD = "migrate-kustomize-fluxwarden"
FLUX_SHARD = "migrate-kustomize-flux"
# Flux's field manager, and the only one an object applied by either side may show.
APPLIED_BY = {("kustomize-controller", "Apply")}
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


fluxwarden = fluxwarden_fixture(FLUXWARDEN_SHARD, "source", "kustomize")
flux = flux_fixture("kustomize-controller", "--no-remote-bases=true", shard=FLUX_SHARD)


def two_keys(name: str, value: str) -> str:
    return f'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: "{value}"\n  extra: "x"\n'


FILES = {"app/a.yaml": two_keys("a", "1"), "app/b.yaml": configmap("b", "2"), "app/c.yaml": configmap("c", "3")}


def refresh(tenant: Tenant) -> None:
    """Fetch the new commit now instead of at the GitRepository's interval."""
    body = {"metadata": {"annotations": {REQUESTED_AT: uuid.uuid4().hex[:12]}}}
    tenant.patch("repo", body, resource=GIT_REPOSITORY)


def migrate(tenant: Tenant, old_shard: str, new_shard: str, alive: Callable[[], None]) -> None:
    """Apply with the old owner, hand over, and check what the new owner kept, changed and pruned."""
    core, target = tenant.core, tenant.target
    first = tenant.push(FILES)
    tenant.git_repository()  # on fluxwarden's shard, whoever owns the Kustomization
    dataclasses.replace(tenant, shard=old_shard).kustomization("app", path="./app", targetNamespace=target)
    before = tenant.ready("app", first, timeout=90)
    alive()
    listed = inventory(before)
    assert listed == {config_map_id(target, n) for n in ("a", "b", "c")}, before["status"].get("inventory")
    created, written = uids(core, target), versions(core, target)
    assert sorted(created) == ["a", "b", "c"]
    for name, obj in config_maps(core, target).items():
        assert managers(obj) == APPLIED_BY, (name, managers(obj))

    hand_over(lambda body: tenant.patch("app", body), new_shard)
    # Only the new owner sees the resumed generation (the old one's watch dropped the object when its
    # label changed), so Ready at that generation is the new owner's reconcile.
    after = tenant.ready("app", first, timeout=90)
    assert after["metadata"]["labels"][SHARD] == new_shard
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 2  # suspend, resume
    assert condition(after)["reason"] == "ReconciliationSucceeded", condition(after)
    alive()
    assert inventory(after) == listed, "the new owner keeps the old owner's inventory"
    assert uids(core, target) == created, "no object was re-created or pruned"
    assert versions(core, target) == written, "the new owner found nothing to change"

    # A field and a file leave git: the field goes from the live object (one field manager owns it)
    # and the file's object is pruned, known only from the old owner's inventory.
    files = {"app/a.yaml": configmap("a", "1")}
    second = tenant.push(files, delete=("app/c.yaml",))
    refresh(tenant)
    done = tenant.ready("app", second, timeout=90)
    alive()
    assert inventory(done) == listed - {config_map_id(target, "c")}
    left = config_maps(core, target)
    assert {name: str(c.metadata.uid) for name, c in left.items()} == {n: created[n] for n in ("a", "b")}
    assert left["a"].data == {"value": "1"}, "a field removed from git is removed from the live object"
    assert left["b"].metadata.resource_version == written["b"], "what git kept unchanged is left alone"
    for name, obj in left.items():
        assert managers(obj) == APPLIED_BY, (name, managers(obj))


def applied_by_flux(flux: FluxController, namespace: str) -> bool:
    """Flux's log has a server-side apply of Kustomization ``app`` in ``namespace``."""
    wanted = f'"Kustomization":{{"name":"app","namespace":"{namespace}"}}'
    return any("server-side apply completed" in line and wanted in line for line in flux.log().splitlines())


@pytest.mark.parametrize(
    ("first", "second"), [(FLUX_SHARD, FLUXWARDEN_SHARD), (FLUXWARDEN_SHARD, FLUX_SHARD)],
    ids=["flux_to_fluxwarden", "fluxwarden_to_flux"],
)  # fmt: skip
def test_migration(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    fluxwarden: Reconcilers,
    flux: FluxController,
    first: str,
    second: str,
) -> None:
    tenant = make_tenant(admin_api, namespace_factory, git_server, tmp_path, shard=FLUXWARDEN_SHARD)
    migrate(tenant, first, second, flux.assert_running)
    assert applied_by_flux(flux, tenant.config), "Flux applied it, first or last"
