"""The real ``flux`` CLI (v2.9.5, built by tests/flux/controllers.sh) against objects fluxwarden reconciled.

One test per command. Each asserts that flux exits 0, prints no failure (``✗``: some commands log an
error and still exit 0), and shows what fluxwarden wrote: revisions, Ready status and message, the
suspended flag, inventories, events and artifact sizes. Expected values come from the servers (the git
commit, the chart version published, the registry's digest, the Bucket digest recomputed from what was
uploaded), not from fluxwarden. The objects are shared by the module (tests.support.flux_cli_estate).
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from collections.abc import Callable, Iterator
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
from tests.support.flux_cli_estate import REQUESTED_AT, SHARD_VALUE, Estate, build, ready, short
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
) -> Iterator[Estate]:
    work = tmp_path_factory.mktemp("flux-cli")
    found = build(admin_api, git_server, charts.url, authority.ca_pem, s3, registry, reader, work)
    for resource, name in [(GIT_REPOSITORY, "repo"), (HELM_REPOSITORY, "charts"), (BUCKET, "configs"),
                           (OCI_REPOSITORY, "manifests"), (KUSTOMIZATION, "apps"), (KUSTOMIZATION, "releases"),
                           (HELM_RELEASE, "app"), (RECEIVER, "hook")]:  # fmt: skip
        found.wait(resource, name, ready, "Ready", timeout=90)
    yield found
    core = client.CoreV1Api(admin_api)
    for namespace in (found.config, found.target, found.git.other):
        core.delete_namespace(namespace, propagation_policy="Background")


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
    return [[cell.strip() for cell in line.rstrip("\t").split("\t")] for line in output.splitlines() if line.strip()]


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
    """The GitRepository Ready at the branch's commit (asked for, not left to the 1m interval)."""
    head = estate.head()
    estate.request(GIT_REPOSITORY, "repo")
    return estate.wait(GIT_REPOSITORY, "repo", lambda o: ready(o) and o["status"]["artifact"]["revision"]
                       == f"main@sha1:{head}", f"at {head}")  # fmt: skip


def test_get_sources_git(flux: FluxCli, estate: Estate) -> None:
    repo = git_at_head(estate)
    out = run(flux, "get", "sources", "git", "-n", estate.config).stdout
    row = rows_by_name(out)["repo"]
    assert_row(row, short(f"main@sha1:{estate.head()}"), repo)
    assert row["READY"] == "True" and estate.head()[:8] in row["MESSAGE"], row


def test_get_sources_helm(flux: FluxCli, estate: Estate, charts: HelmRepoServer) -> None:
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
    oci = estate.wait(
        OCI_REPOSITORY, "manifests", lambda o: ready(o) and o["status"]["artifact"]["revision"] == expected, "at it"
    )
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


# -- flux reconcile ----------------------------------------------------------------------------------


def handled(obj: dict[str, Any]) -> str:
    """The request flux annotated, which the controller must copy to ``status.lastHandledReconcileAt``."""
    token = obj["metadata"]["annotations"][REQUESTED_AT]
    assert obj["status"]["lastHandledReconcileAt"] == token, "the reconcile flux asked for is the one that ran"
    return str(token)


def test_reconcile_source_git(flux: FluxCli, estate: Estate) -> None:
    sha = estate.git.push({"README.md": uuid.uuid4().hex})
    before = estate.get(GIT_REPOSITORY, "repo")
    assert before["status"]["artifact"]["revision"] != f"main@sha1:{sha}", "interval 1m: not fetched yet"
    done = run(flux, "reconcile", "source", "git", "repo", "-n", estate.config)
    assert f"fetched revision main@sha1:{sha}" in done.stderr, done.stderr
    repo = estate.get(GIT_REPOSITORY, "repo")
    assert repo["status"]["artifact"]["revision"] == f"main@sha1:{sha}"
    assert handled(repo) != (before["status"].get("lastHandledReconcileAt"))


def test_reconcile_kustomization_with_source(flux: FluxCli, estate: Estate) -> None:
    value = uuid.uuid4().hex[:8]
    sha = estate.git.push({"apps/a.yaml": configmap("app-a", value)})
    done = run(flux, "reconcile", "kustomization", "apps", "--with-source", "-n", estate.config)
    assert f"fetched revision main@sha1:{sha}" in done.stderr, done.stderr
    assert f"applied revision main@sha1:{sha}" in done.stderr, done.stderr
    apps = estate.get(KUSTOMIZATION, "apps")
    assert apps["status"]["lastAppliedRevision"] == f"main@sha1:{sha}"
    handled(apps)
    handled(estate.get(GIT_REPOSITORY, "repo"))
    assert estate.git.configmaps(estate.target)["app-a"] == {"value": value}, "the new commit was applied"


def test_reconcile_helmrelease_with_source(flux: FluxCli, estate: Estate, charts: HelmRepoServer) -> None:
    estate.wait(HELM_RELEASE, "app", ready, "Ready")
    version = "1.1.0"
    if not (charts.root / f"cms-{version}.tgz").exists():
        charts.add_chart("cms", version, {"greeting": "again"}, templates=helm_charts.configmaps(2))
    index = hashlib.sha256(charts.index_path.read_bytes()).hexdigest()
    done = run(flux, "reconcile", "helmrelease", "app", "--with-source", "-n", estate.config)
    assert f"fetched revision sha256:{index}" in done.stderr, done.stderr
    assert f"applied revision {version}" in done.stderr, done.stderr
    release = estate.get(HELM_RELEASE, "app")
    handled(release)
    handled(estate.get(HELM_CHART, f"{estate.config}-app"))
    handled(estate.get(HELM_REPOSITORY, "charts"))
    assert release["status"]["history"][0]["chartVersion"] == version
    assert estate.helm.configmaps()[f"{estate.target}-app-0"]["chartVersion"] == version


# -- flux suspend / resume ---------------------------------------------------------------------------


def test_suspend_kustomization(flux: FluxCli, estate: Estate) -> None:
    estate.wait(KUSTOMIZATION, "toggle", ready, "Ready")
    estate.custom.patch_namespaced_custom_object(
        KUSTOMIZATION.group, KUSTOMIZATION.version, estate.config, KUSTOMIZATION.plural, "toggle",
        {"spec": {"suspend": False}}, _content_type="application/merge-patch+json",
    )  # fmt: skip
    done = run(flux, "suspend", "kustomization", "toggle", "-n", estate.config)
    assert "kustomization suspended" in done.stderr, done.stderr
    assert estate.get(KUSTOMIZATION, "toggle")["spec"]["suspend"] is True
    row = rows_by_name(run(flux, "get", "kustomizations", "toggle", "-n", estate.config).stdout)["toggle"]
    assert row["SUSPENDED"] == "True", row
    refused = flux.run("reconcile", "kustomization", "toggle", "-n", estate.config, check=False)
    assert refused.returncode != 0 and "resource is suspended" in refused.stderr, refused.stderr


def test_resume_kustomization(flux: FluxCli, estate: Estate) -> None:
    estate.custom.patch_namespaced_custom_object(
        KUSTOMIZATION.group, KUSTOMIZATION.version, estate.config, KUSTOMIZATION.plural, "toggle",
        {"spec": {"suspend": True}}, _content_type="application/merge-patch+json",
    )  # fmt: skip
    value = uuid.uuid4().hex[:8]
    sha = estate.git.push({"toggle/t.yaml": configmap("toggle", value)})
    token = estate.request(GIT_REPOSITORY, "repo")
    estate.wait(GIT_REPOSITORY, "repo", lambda o: (o.get("status") or {}).get("lastHandledReconcileAt") == token,
                "fetched the new commit")  # fmt: skip
    done = run(flux, "resume", "kustomization", "toggle", "-n", estate.config)
    assert "kustomization resumed" in done.stderr, done.stderr
    assert "Kustomization toggle reconciliation completed" in done.stderr, done.stderr
    assert f"applied revision main@sha1:{sha}" in done.stderr, "resume waited for the reconcile of the new commit"
    toggle = estate.get(KUSTOMIZATION, "toggle")
    assert not toggle["spec"].get("suspend"), "flux's merge patch drops spec.suspend (false is omitempty)"
    assert ready(toggle) and toggle["status"]["lastAppliedRevision"] == f"main@sha1:{sha}"
    assert estate.git.configmaps(estate.target)["toggle"] == {"value": value}


# -- flux tree ---------------------------------------------------------------------------------------


def test_tree_kustomization(flux: FluxCli, estate: Estate) -> None:
    estate.wait(HELM_RELEASE, "app", ready, "Ready")
    config, target = estate.config, estate.target
    apps = [line for line in run(flux, "tree", "kustomization", "apps", "-n", config).stdout.splitlines() if line]
    assert apps[0] == f"Kustomization/{config}/apps", apps
    assert sorted(line[4:] for line in apps[1:]) == [f"ConfigMap/{target}/app-a", f"ConfigMap/{target}/app-b"], apps
    # Through the HelmRelease into its release's manifest (Helm's storage Secret in status.storageNamespace).
    releases = run(flux, "tree", "kustomization", "releases", "-n", config).stdout.splitlines()
    releases = [line for line in releases if line]
    release = f"{target}-app"
    assert releases[:2] == [f"Kustomization/{config}/releases", f"└── HelmRelease/{config}/app"], releases
    shown = sorted(line.split("── ")[1] for line in releases[2:])
    in_cluster = sorted(f"ConfigMap/{target}/{name}" for name in estate.helm.configmaps() if name.startswith(release))
    assert shown == in_cluster == [f"ConfigMap/{target}/{release}-0", f"ConfigMap/{target}/{release}-1"], releases


# -- flux events -------------------------------------------------------------------------------------


def flux_events(estate: Estate) -> list[tuple[str, str, str, str]]:
    """(type, reason, kind/name, message) of the config namespace's Events about Flux objects, from the API."""
    listed = client.CoreV1Api(estate.git.api).list_namespaced_event(estate.config).items
    kinds = {"GitRepository", "HelmRepository", "HelmChart", "Bucket", "OCIRepository", "Kustomization",
             "HelmRelease", "Receiver"}  # fmt: skip
    return [(e.type, e.reason, f"{e.involved_object.kind}/{e.involved_object.name}", e.message or "")
            for e in listed if e.involved_object.kind in kinds]  # fmt: skip


def event_rows(output: str) -> set[tuple[str, str, str, str]]:
    """(type, reason, object, message); a multi-line message goes on in rows whose other cells are empty."""
    header, *rows = table(output)
    assert [h.upper() for h in header] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], header
    events: list[tuple[str, str, str, str]] = []
    for r in rows:
        if not any(r[:4]) and events:
            type_, reason, obj, message = events.pop()
            events.append((type_, reason, obj, f"{message}\n{r[4]}"))
        else:
            events.append((r[1], r[2], r[3], r[4]))
    return set(events)


def test_events(flux: FluxCli, estate: Estate) -> None:
    git_at_head(estate)
    expected = flux_events(estate)
    assert {kind for _, _, kind, _ in expected} >= {"Kustomization/apps", "GitRepository/repo", "HelmRelease/app"}
    shown = event_rows(run(flux, "events", "-n", estate.config).stdout)
    assert set(expected) <= shown, set(expected) - shown
    broken = [e for e in shown if e[2] == "Kustomization/broken"]
    assert any(e[0] == "Warning" and "not-in-git" in e[3] for e in broken), broken

    scoped = event_rows(run(flux, "events", "-n", estate.config, "--for", "Kustomization/apps").stdout)
    assert {o for _, _, o, _ in scoped} == {"Kustomization/apps", "GitRepository/repo"}, scoped
    head = estate.head()
    assert any(o == "GitRepository/repo" and head[:8] in m for _, _, o, m in scoped), scoped
    applied = [e for e in expected if e[2] == "Kustomization/apps" and e[0] == "Normal"]
    assert applied and set(applied) <= scoped, (applied, scoped)

    # A HelmRelease's events come with those of its HelmChart (``<namespace>-<name>``) and HelmRepository.
    chart = f"HelmChart/{estate.config}-app"
    release = event_rows(run(flux, "events", "-n", estate.config, "--for", "HelmRelease/app").stdout)
    assert {o for _, _, o, _ in release} == {"HelmRelease/app", chart, "HelmRepository/charts"}, release
    assert {e for e in expected if e[2] in {"HelmRelease/app", chart}} <= release


# -- flux stats --------------------------------------------------------------------------------------


def size(total: int) -> str:
    """flux's ``formatSize``: ``-`` for none, bytes below 1 KiB, else one decimal and a binary unit."""
    if total == 0:
        return "-"
    if total < 1024:
        return f"{total} B"
    value, unit = float(total), -1
    while value >= 1024 and unit < 5:
        value, unit = value / 1024, unit + 1
    return f"{value:.1f} {'KMGTPE'[unit]}iB"


STATS_KINDS = {"GitRepository": GIT_REPOSITORY, "OCIRepository": OCI_REPOSITORY, "HelmRepository": HELM_REPOSITORY,
               "HelmChart": HELM_CHART, "Bucket": BUCKET, "Kustomization": KUSTOMIZATION,
               "HelmRelease": HELM_RELEASE}  # fmt: skip


def expected_stats(estate: Estate, namespace: str | None) -> dict[str, list[str]]:
    """Running / Failing / Suspended / Storage per kind, counted from the API and the artifacts themselves."""
    found: dict[str, list[str]] = {}
    for kind, res in STATS_KINDS.items():
        if namespace is None:
            items = estate.custom.list_cluster_custom_object(res.group, res.version, res.plural)["items"]
        else:
            items = estate.custom.list_namespaced_custom_object(res.group, res.version, namespace, res.plural)["items"]
        suspended = sum(1 for o in items if (o.get("spec") or {}).get("suspend"))
        failing = sum(1 for o in items if condition(o).get("status") == "False")
        stored = sum(int(((o.get("status") or {}).get("artifact") or {}).get("size") or 0) for o in items)
        found[kind] = [str(len(items) - suspended), str(failing), str(suspended), size(stored)]
    return found


def test_stats(flux: FluxCli, estate: Estate) -> None:
    for name in ("repo", "configs"):
        obj = estate.get(GIT_REPOSITORY if name == "repo" else BUCKET, name)
        data = httpx.get(obj["status"]["artifact"]["url"], timeout=30).content
        assert len(data) == obj["status"]["artifact"]["size"], "status.artifact.size is the served tarball's"
        assert "sha256:" + hashlib.sha256(data).hexdigest() == obj["status"]["artifact"]["digest"]
    ours = expected_stats(estate, estate.config)
    assert ours["Kustomization"][:3] == [str(4), "1", "1"], "apps, releases, toggle, broken running; broken failing"
    shown = {row[0]: row[1:] for row in table(run(flux, "stats", "-n", estate.config).stdout)[1:]}
    assert {k: shown[k] for k in ours} == ours, shown

    def both() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        everywhere = {row[0]: row[1:] for row in table(run(flux, "stats", "-A").stdout)[1:]}
        return {k: everywhere[k] for k in ours}, expected_stats(estate, None)

    # Other modules' objects may change between the two reads: equal in one round is the claim.
    until(both, lambda pair: pair[0] == pair[1], timeout=30, what="flux stats -A to match the API's counts")


# -- flux trace / diff -------------------------------------------------------------------------------


def test_trace(flux: FluxCli, estate: Estate) -> None:
    """trace follows the owner labels fluxwarden set on the object to the Kustomization and its source."""
    apps = estate.wait(KUSTOMIZATION, "apps", ready, "Ready")
    out = run(flux, "trace", "-n", estate.target, "configmap", "app-b").stdout
    fields = [tuple(part.strip() for part in line.split(":", 1)) for line in out.splitlines() if ":" in line]
    assert ("Status", "Managed by Flux") in fields, out
    assert ("Kustomization", "apps") in fields and ("GitRepository", "repo") in fields, out
    assert ("Revision", apps["status"]["lastAppliedRevision"]) in fields, out
    assert ("Message", condition(apps)["message"]) in fields, out
    assert ("URL", estate.git.server.repo_url(estate.git.repo_name)) in fields, out


def test_diff_kustomization(flux: FluxCli, estate: Estate) -> None:
    """diff dry-runs the local checkout against what fluxwarden applied: nothing, then the drift made here."""
    git_at_head(estate)
    head = estate.head()
    estate.wait(
        KUSTOMIZATION, "apps", lambda o: ready(o) and o["status"]["lastAppliedRevision"].endswith(head), "at HEAD"
    )
    path = str(estate.git.repo.path / "apps")
    same = run(flux, "diff", "kustomization", "apps", "-n", estate.config, "--path", path)
    assert same.stdout.strip() == "", same.stdout
    core = client.CoreV1Api(estate.git.api)
    core.patch_namespaced_config_map("app-b", estate.target, {"data": {"value": "drifted"}})
    try:
        drift = flux.run("diff", "kustomization", "apps", "-n", estate.config, "--path", path, check=False)
        assert drift.returncode == 1, drift
        assert f"ConfigMap/{estate.target}/app-b drifted" in drift.stdout, drift.stdout
        assert "drifted" in drift.stdout.split("app-b drifted", 1)[1], drift.stdout
        assert "app-a" not in drift.stdout, "only the drifted object"
    finally:
        core.patch_namespaced_config_map("app-b", estate.target, {"data": {"value": "1"}})


# -- what cannot work --------------------------------------------------------------------------------


def test_check_finds_every_crd_and_only_misses_fluxs_own_deployments(flux: FluxCli, estate: Estate) -> None:
    """``flux check`` looks for Flux's Deployments in flux-system: that check fails, every CRD check passes."""
    pre = run(flux, "check", "--pre")
    assert "prerequisites checks passed" in pre.stderr, pre.stderr
    done = flux.run("check", check=False)
    failures = [line for line in done.stderr.splitlines() if line.startswith("✗")]
    missing = "✗ no controllers found in the 'flux-system' namespace with the label selector"
    assert done.returncode == 1 and len(failures) == 2, done.stderr
    assert failures[0].startswith(missing) and failures[1] == "✗ check failed", done.stderr
    crds = ["kustomizations.kustomize", "helmreleases.helm", "gitrepositories.source", "receivers.notification"]
    for crd in (f"{name}.toolkit.fluxcd.io" for name in crds):
        assert f"✔ {crd}/" in done.stderr, done.stderr
