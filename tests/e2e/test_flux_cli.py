"""The real ``flux`` CLI (v2.9.5, built by tests/flux/controllers.sh) against objects fluxwarden reconciled.

One test per command. Each asserts that flux exits 0, prints no failure (``✗``: some commands log an
error and still exit 0), and shows what fluxwarden wrote: revisions, Ready status and message, the
suspended flag, inventories, events and artifact sizes. Expected values come from the servers (the git
commit, the chart version published, the registry's digest, the Bucket digest recomputed from what was
uploaded), not from fluxwarden. The objects are shared by the module (tests.support.flux_cli_estate).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.helm.api import HELM_RELEASE
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.notification.api import RECEIVER, NotificationOptions
from fluxwarden.controllers.source.api import BUCKET, GIT_REPOSITORY, HELM_CHART, HELM_REPOSITORY, OCI_REPOSITORY
from tests.support import helm_charts
from tests.support.control_plane import ControlPlane
from tests.support.flux_cli_estate import SHARD_VALUE, Estate, build, ready, short
from tests.support.flux_upstream import FluxCli
from tests.support.git_server import GitHttpServer
from tests.support.helm_repo import HelmRepoServer
from tests.support.oci_artifacts import RegistryReader
from tests.support.oci_registry import OciRegistry
from tests.support.s3_server import S3Server
from tests.support.tenants import SHARD, configmap
from tests.support.tls import PrivateCA
from tests.support.wait import until


@pytest.fixture(scope="module")
def controllers(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    options = NotificationOptions(event_host="127.0.0.1", event_port=0, receiver_host="127.0.0.1", receiver_port=0)
    return start_reconcilers(
        ("source", "kustomize", "helm", "notification"), label_selector=f"{SHARD}={SHARD_VALUE}", notification=options
    )


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory, authority: PrivateCA) -> Iterator[HelmRepoServer]:
    with HelmRepoServer(tmp_path_factory.mktemp("cli-charts"), tls=authority.server_context()) as repo:
        repo.add_chart("cms", "1.0.0", {"greeting": "hello"}, templates=helm_charts.configmaps(2))
        yield repo


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture(scope="module")
def estate(
    admin_api: client.ApiClient,
    git_server: GitHttpServer,
    charts: HelmRepoServer,
    authority: PrivateCA,
    s3: S3Server,
    registry: OciRegistry,
    reader: RegistryReader,
    controllers: Reconcilers,
    tmp_path_factory: pytest.TempPathFactory,
) -> Estate:
    work = tmp_path_factory.mktemp("flux-cli")
    found = build(admin_api, git_server, charts.url, authority.ca_pem, s3, registry, reader, work)
    for resource, name in [(GIT_REPOSITORY, "repo"), (HELM_REPOSITORY, "charts"), (BUCKET, "configs"),
                           (OCI_REPOSITORY, "manifests"), (KUSTOMIZATION, "apps"), (KUSTOMIZATION, "releases"),
                           (HELM_RELEASE, "app"), (RECEIVER, "hook")]:  # fmt: skip
        found.wait(resource, name, ready, "Ready", timeout=90)
    return found


@pytest.fixture(scope="module")
def flux(control_plane: ControlPlane) -> FluxCli:
    return FluxCli(control_plane.kubeconfig)


def run(flux: FluxCli, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``flux <args>`` exiting 0 with no failure line (``✗``) on stderr."""
    done = flux.run(*args, "--timeout=90s", timeout=timeout)
    assert "✗" not in done.stderr, f"flux {' '.join(args)} reported a failure:\n{done.stderr}"
    return done


def table(output: str) -> list[list[str]]:
    """The rows of a flux table, header first: tablewriter pads each cell with spaces and ends it with a tab."""
    return [[cell.strip() for cell in line.split("\t")] for line in output.splitlines() if line.strip()]


def rows_by_name(output: str) -> dict[str, dict[str, str]]:
    """Each row keyed by its NAME column, as ``{header: value}``."""
    header, *rows = table(output)
    keys = [h.upper() for h in header]
    return {row[keys.index("NAME")]: dict(zip(keys, row, strict=False)) for row in rows}


def condition(obj: dict[str, Any], type_: str = "Ready") -> dict[str, Any]:
    return next((dict(c) for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def assert_row(row: dict[str, str], revision: str, obj: dict[str, Any], suspended: str = "False") -> None:
    ready = condition(obj)
    assert row["REVISION"] == revision, row
    assert row["SUSPENDED"] == suspended, row
    assert row["READY"] == ready["status"], row
    assert row["MESSAGE"] == short(ready["message"]), row


# -- flux get ----------------------------------------------------------------------------------------


def git_at_head(estate: Estate) -> dict[str, Any]:
    head = estate.head()
    return estate.wait(GIT_REPOSITORY, "repo", lambda o: ready(o) and o["status"]["artifact"]["revision"]
                       == f"main@sha1:{head}", f"at {head}")  # fmt: skip


def test_get_sources_git(flux: FluxCli, estate: Estate) -> None:
    repo = git_at_head(estate)
    out = run(flux, "get", "sources", "git", "-n", estate.config).stdout
    row = rows_by_name(out)["repo"]
    assert_row(row, short(f"main@sha1:{estate.head()}"), repo)
    assert row["READY"] == "True" and estate.head()[:8] in row["MESSAGE"], row


def test_get_sources_helm(flux: FluxCli, estate: Estate, charts: HelmRepoServer) -> None:
    import hashlib

    index = hashlib.sha256(charts.index_path.read_bytes()).hexdigest()
    repo = estate.wait(HELM_REPOSITORY, "charts", lambda o: ready(o) and o["status"]["artifact"]["revision"]
                       == f"sha256:{index}", "at the served index")  # fmt: skip
    row = rows_by_name(run(flux, "get", "sources", "helm", "-n", estate.config).stdout)["charts"]
    assert_row(row, f"sha256:{index[:8]}", repo)


def test_get_sources_chart(flux: FluxCli, estate: Estate) -> None:
    name = f"{estate.config}-app"
    chart = estate.wait(HELM_CHART, name, ready, "Ready")
    version = chart["status"]["artifact"]["revision"]
    assert version in {"1.0.0", "1.1.0"}, "a chart version the test published"
    row = rows_by_name(run(flux, "get", "sources", "chart", "-n", estate.config).stdout)[name]
    assert_row(row, version, chart)
    assert version in row["MESSAGE"], row


def test_get_sources_bucket(flux: FluxCli, estate: Estate) -> None:
    expected = estate.bucket_revision()
    bucket = estate.wait(BUCKET, "configs", lambda o: ready(o) and o["status"]["artifact"]["revision"] == expected,
                         "at the uploaded digest")  # fmt: skip
    row = rows_by_name(run(flux, "get", "sources", "bucket", "-n", estate.config).stdout)["configs"]
    assert_row(row, short(expected), bucket)


def test_get_sources_oci(flux: FluxCli, estate: Estate) -> None:
    expected = estate.oci_revision()
    oci = estate.wait(OCI_REPOSITORY, "manifests",
                      lambda o: ready(o) and o["status"]["artifact"]["revision"] == expected, "at the pushed digest")  # fmt: skip
    row = rows_by_name(run(flux, "get", "sources", "oci", "-n", estate.config).stdout)["manifests"]
    assert_row(row, short(expected), oci)


def test_get_kustomizations(flux: FluxCli, estate: Estate) -> None:
    git_at_head(estate)
    head = estate.head()
    apps = estate.wait(KUSTOMIZATION, "apps", lambda o: ready(o) and o["status"]["lastAppliedRevision"].endswith(head),
                       f"at {head}")  # fmt: skip
    broken = estate.wait(KUSTOMIZATION, "broken", lambda o: condition(o).get("status") == "False", "Ready=False")
    rows = rows_by_name(run(flux, "get", "kustomizations", "-n", estate.config).stdout)
    assert_row(rows["apps"], short(f"main@sha1:{head}"), apps)
    assert rows["apps"]["MESSAGE"] == f"Applied revision: main@sha1:{head[:8]}", rows["apps"]
    assert rows["broken"]["READY"] == "False" and "not-in-git" in rows["broken"]["MESSAGE"], rows["broken"]
    assert_row(rows["broken"], rows["broken"]["REVISION"], broken)
    assert rows["paused"]["SUSPENDED"] == "True", rows["paused"]
    assert rows["paused"]["MESSAGE"] == "waiting to be reconciled", "never reconciled: no status"


def test_get_helmreleases(flux: FluxCli, estate: Estate) -> None:
    release = estate.wait(HELM_RELEASE, "app", ready, "Ready")
    version = release["status"]["history"][0]["chartVersion"]
    chart = estate.get(HELM_CHART, f"{estate.config}-app")
    assert version == chart["status"]["artifact"]["revision"], "the chart version the source controller fetched"
    out = run(flux, "get", "helmreleases", "-n", estate.config, "--show-source").stdout
    row = rows_by_name(out)["app"]
    assert_row(row, version, release)
    assert row["SOURCE"] == f"HelmRepository/{estate.config}/charts", row
    cms = estate.helm.configmaps()
    assert cms[f"{estate.target}-app-0"]["chartVersion"] == version, "the release in the cluster is that version"


def test_get_all_across_namespaces(flux: FluxCli, estate: Estate) -> None:
    git_at_head(estate)
    out = run(flux, "get", "all", "-A").stdout
    ours = [line for line in out.splitlines() if line.startswith(estate.config)]
    names = {line.split("\t")[1].strip() for line in ours}
    assert names >= {
        "gitrepository/repo", "helmrepository/charts", f"helmchart/{estate.config}-app", "bucket/configs",
        "ocirepository/manifests", "kustomization/apps", "kustomization/releases", "kustomization/broken",
        "kustomization/paused", "helmrelease/app", "receiver/hook",
    }, out  # fmt: skip
    line = next(line for line in ours if "gitrepository/repo" in line)
    assert short(f"main@sha1:{estate.head()}") in line and "True" in line, line
    receiver = estate.get(RECEIVER, "hook")
    line = next(line for line in ours if "receiver/hook" in line)
    assert condition(receiver)["message"] in line and "True" in line, line
