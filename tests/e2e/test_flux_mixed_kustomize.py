"""Mixed deployment: upstream Flux's kustomize-controller applies fluxwarden's GitRepository artifacts.

The GitRepository is on fluxwarden's shard, the Kustomization on Flux's (``--watch-label-selector``).
Flux downloads ``status.artifact.url`` from fluxwarden's artifact server and checks it against
``status.artifact.digest`` (fluxcd/pkg/http/fetch), so a wrong URL or digest format fails here.
fluxwarden runs its own kustomize controller too, on its shard: it must leave Flux's Kustomization alone.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.source.api import GIT_REPOSITORY, OCI_REPOSITORY
from tests.support.control_plane import ControlPlane
from tests.support.flux_mixed import FLUX_SHARD, FLUXWARDEN_SHARDS, Objects, configmaps, flux_on_shard, registry_secrets
from tests.support.flux_upstream import FluxController
from tests.support.git_server import GitHttpServer, GitRepo
from tests.support.oci_artifacts import RegistryReader, fluxwarden_push, write_tree
from tests.support.oci_registry import OciRegistry
from tests.support.tenants import OWNER_NAME, SHARD, condition, configmap, grant
from tests.support.wait import until

# fluxwarden's own shard in this module: its reconcilers run until the session ends, so no module shares it.
FLUXWARDEN_SHARD = f"{FLUXWARDEN_SHARDS}-kustomize"


@pytest.fixture(scope="module")
def fluxwarden(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_reconcilers(("source", "kustomize"), label_selector=f"{SHARD}={FLUXWARDEN_SHARD}")


@pytest.fixture(scope="module")
def flux_kustomize(
    control_plane: ControlPlane, flux_crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FluxController]:
    work = tmp_path_factory.mktemp("flux-kustomize")
    with flux_on_shard("kustomize-controller", control_plane.kubeconfig, work) as controller:
        yield controller


def tenant_namespaces(api: client.ApiClient, namespace_factory: Callable[[], str]) -> tuple[str, str]:
    """A config namespace whose flux-applier may write there and to a target namespace (Flux's lockdown)."""
    config, target = namespace_factory(), namespace_factory()
    client.CoreV1Api(api).create_namespaced_service_account(config, {"metadata": {"name": "flux-applier"}})
    grant(api, config, config)
    grant(api, target, config)
    return config, target


def test_flux_kustomize_controller_applies_a_fluxwarden_git_artifact(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    fluxwarden: Reconcilers,
    flux_kustomize: FluxController,
) -> None:
    config, target = tenant_namespaces(admin_api, namespace_factory)
    git_server.create_repo("mixed-kustomize")
    repo = GitRepo(tmp_path / "work")
    first = repo.commit({"apps/a.yaml": configmap("app-a", "one"), "apps/b.yaml": configmap("app-b", "two")})
    repo.push(git_server.repo_path("mixed-kustomize"))

    objects = Objects(admin_api, config, (flux_kustomize,))
    git_spec = {"url": git_server.repo_url("mixed-kustomize"), "interval": "1m", "ref": {"branch": "main"}}
    objects.create(GIT_REPOSITORY, "repo", FLUXWARDEN_SHARD, git_spec)
    kustomization = objects.create(
        KUSTOMIZATION, "apps", FLUX_SHARD,
        {"interval": "1m", "retryInterval": "2s", "path": "./apps", "prune": True, "targetNamespace": target,
         "sourceRef": {"kind": "GitRepository", "name": "repo"}},
    )  # fmt: skip

    source = objects.ready(GIT_REPOSITORY, "repo")
    artifact = source["status"]["artifact"]
    assert artifact["revision"] == f"main@sha1:{first}"
    assert artifact["url"].startswith(fluxwarden.artifacts.url), "the artifact is fluxwarden's to serve"
    done = objects.ready(KUSTOMIZATION, "apps")
    assert done["status"]["lastAppliedRevision"] == f"main@sha1:{first}"
    assert done["status"]["lastAttemptedRevision"] == f"main@sha1:{first}"
    assert condition(done)["reason"] == "ReconciliationSucceeded"
    assert configmaps(admin_api, target) == {"app-a": {"value": "one"}, "app-b": {"value": "two"}}
    labels = client.CoreV1Api(admin_api).read_namespaced_config_map("app-a", target).metadata.labels
    assert labels[OWNER_NAME] == "apps"
    assert sorted(e["id"] for e in done["status"]["inventory"]["entries"]) == [
        f"{target}_app-a__ConfigMap",
        f"{target}_app-b__ConfigMap",
    ]
    assert done["metadata"]["uid"] == kustomization["metadata"]["uid"]
    # Only Flux wrote the Kustomization's status: fluxwarden's kustomize controller is on the other shard.
    writers = {m["manager"] for m in done["metadata"].get("managedFields") or [] if m.get("subresource") == "status"}
    assert writers == {"gotk-kustomize-controller"}, writers  # Flux's status field manager

    # A new commit: fluxwarden's source controller makes a new artifact, Flux applies it and prunes.
    second = repo.commit({"apps/a.yaml": configmap("app-a", "three")}, delete=("apps/b.yaml",))
    repo.push(git_server.repo_path("mixed-kustomize"))
    objects.request(GIT_REPOSITORY, "repo", "second")
    objects.wait(
        KUSTOMIZATION, "apps",
        lambda o: (o.get("status") or {}).get("lastAppliedRevision") == f"main@sha1:{second}",
        f"applied at {second}",
    )  # fmt: skip
    until(lambda: configmaps(admin_api, target), lambda cms: "app-b" not in cms, what="app-b pruned by Flux")
    assert configmaps(admin_api, target) == {"app-a": {"value": "three"}}
    new_artifact = objects.get(GIT_REPOSITORY, "repo")["status"]["artifact"]
    assert new_artifact["digest"] != artifact["digest"]


def tarball(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))
    return out.getvalue()


def test_flux_refuses_a_fluxwarden_artifact_whose_bytes_do_not_match_its_digest(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    fluxwarden: Reconcilers,
    flux_kustomize: FluxController,
) -> None:
    """Flux checks the bytes it downloads against the digest fluxwarden wrote: a swapped file is refused."""
    config, target = tenant_namespaces(admin_api, namespace_factory)
    git_server.create_repo("mixed-tampered")
    repo = GitRepo(tmp_path / "work")
    sha = repo.commit({"apps/a.yaml": configmap("app-a", "from-git")})
    repo.push(git_server.repo_path("mixed-tampered"))
    objects = Objects(admin_api, config, (flux_kustomize,))
    git_spec = {"url": git_server.repo_url("mixed-tampered"), "interval": "1h", "ref": {"branch": "main"}}
    objects.create(GIT_REPOSITORY, "repo", FLUXWARDEN_SHARD, git_spec)
    artifact = objects.ready(GIT_REPOSITORY, "repo")["status"]["artifact"]
    assert artifact["revision"] == f"main@sha1:{sha}"
    # The served file is replaced by a valid archive of other content, before Flux first reads it.
    fluxwarden.storage.local_path(artifact["path"]).write_bytes(tarball({"apps/a.yaml": configmap("app-a", "evil")}))
    objects.create(
        KUSTOMIZATION, "apps", FLUX_SHARD,
        {"interval": "1h", "retryInterval": "2s", "path": "./apps", "prune": True, "targetNamespace": target,
         "sourceRef": {"kind": "GitRepository", "name": "repo"}},
    )  # fmt: skip
    failed = objects.wait(
        KUSTOMIZATION, "apps",
        lambda o: condition(o).get("status") == "False" and condition(o).get("reason") == "ArtifactFailed",
        "Ready=False ArtifactFailed",
    )  # fmt: skip
    assert f"computed digest doesn't match provided '{artifact['digest']}'" in condition(failed)["message"]
    assert "lastAppliedRevision" not in failed["status"]
    assert configmaps(admin_api, target) == {}, "nothing of the swapped archive was applied"


def test_split_by_namespace_flux_applies_what_fluxwarden_serves_in_its_namespace(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    control_plane: ControlPlane,
    git_server: GitHttpServer,
    tmp_path: Path,
    start_reconcilers: Callable[..., Reconcilers],
) -> None:
    """No labels: Flux's kustomize-controller watches one namespace (``--watch-all-namespaces=false``,
    RUNTIME_NAMESPACE), fluxwarden's source controller watches that namespace too (``--watch-namespace``)."""
    config, target = tenant_namespaces(admin_api, namespace_factory)
    git_server.create_repo("mixed-by-namespace")
    repo = GitRepo(tmp_path / "work")
    sha = repo.commit({"apps/a.yaml": configmap("app-a", "by-namespace")})
    repo.push(git_server.repo_path("mixed-by-namespace"))
    sources = start_reconcilers(("source",), namespace=config)
    args = ("--watch-all-namespaces=false",)
    with FluxController("kustomize-controller", control_plane.kubeconfig, tmp_path, args, namespace=config) as flux:
        objects = Objects(admin_api, config, (flux,))
        objects.custom.create_namespaced_custom_object(
            GIT_REPOSITORY.group, GIT_REPOSITORY.version, config, GIT_REPOSITORY.plural,
            {"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository", "metadata": {"name": "repo"},
             "spec": {"url": git_server.repo_url("mixed-by-namespace"), "interval": "1h", "ref": {"branch": "main"}}},
        )  # fmt: skip
        objects.custom.create_namespaced_custom_object(
            KUSTOMIZATION.group, KUSTOMIZATION.version, config, KUSTOMIZATION.plural,
            {"apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization", "metadata": {"name": "apps"},
             "spec": {"interval": "1h", "path": "./apps", "prune": True, "targetNamespace": target,
                      "sourceRef": {"kind": "GitRepository", "name": "repo"}}},
        )  # fmt: skip
        artifact = objects.ready(GIT_REPOSITORY, "repo")["status"]["artifact"]
        assert artifact["url"].startswith(sources.artifacts.url)
        done = objects.ready(KUSTOMIZATION, "apps")
    assert done["status"]["lastAppliedRevision"] == f"main@sha1:{sha}"
    assert configmaps(admin_api, target) == {"app-a": {"value": "by-namespace"}}
    writers = {m["manager"] for m in done["metadata"].get("managedFields") or [] if m.get("subresource") == "status"}
    assert writers == {"gotk-kustomize-controller"}, writers


def test_flux_kustomize_controller_applies_a_fluxwarden_oci_artifact(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    registry: OciRegistry,
    reader: RegistryReader,
    tmp_path: Path,
    fluxwarden: Reconcilers,
    flux_kustomize: FluxController,
) -> None:
    """``fluxwarden push artifact`` to a registry, fluxwarden's OCIRepository pulls it, Flux applies it."""
    config, target = tenant_namespaces(admin_api, namespace_factory)
    registry_secrets(admin_api, config, registry)
    tree = write_tree(tmp_path / "tree", {"app/a.yaml": configmap("app-a", "from-oci")})
    pushed = fluxwarden_push(registry, registry.oci_url("mixed/app") + ":main", tree)
    assert pushed.returncode == 0, pushed.stderr
    objects = Objects(admin_api, config, (flux_kustomize,))
    objects.create(
        OCI_REPOSITORY, "app", FLUXWARDEN_SHARD,
        {"url": registry.oci_url("mixed/app"), "interval": "1h", "ref": {"tag": "main"},
         "secretRef": {"name": "login"}, "certSecretRef": {"name": "registry-ca"}},
    )  # fmt: skip
    objects.create(
        KUSTOMIZATION, "app", FLUX_SHARD,
        {"interval": "1h", "retryInterval": "2s", "path": "./app", "prune": True, "targetNamespace": target,
         "sourceRef": {"kind": "OCIRepository", "name": "app"}},
    )  # fmt: skip
    revision = f"main@{reader.digest('mixed/app', 'main')}"
    assert objects.ready(OCI_REPOSITORY, "app")["status"]["artifact"]["revision"] == revision
    done = objects.ready(KUSTOMIZATION, "app")
    assert done["status"]["lastAppliedRevision"] == revision
    assert configmaps(admin_api, target) == {"app-a": {"value": "from-oci"}}
