"""The source controller against the real API server and real git, ssh and Helm servers on loopback."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.source.api import GIT_REPOSITORY, HELM_CHART, HELM_REPOSITORY
from tests.support.control_plane import ControlPlane
from tests.support.git_server import GitHttpServer, GitRepo
from tests.support.helm_repo import HelmRepoServer
from tests.support.http_files import StaticFileServer
from tests.support.ssh_server import SshGitServer
from tests.support.tls import PrivateCA
from tests.support.wait import until

SHARD = "sharding.fluxcd.io/key"
USER, PASSWORD = "flux", "s3cret-Pa55word"


@pytest.fixture(scope="module")
def source(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    """The source controller for every object without a shard label."""
    return start_reconcilers(("source",), label_selector=f"!{SHARD}")


@pytest.fixture(scope="module")
def small_source(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    """A second instance with a 4 KiB size limit, for objects in shard ``small``."""
    return start_reconcilers(("source",), label_selector=f"{SHARD}=small", max_source_size=4096)


@pytest.fixture(scope="module")
def private_git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path_factory.mktemp("private-git"), USER, PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGitServer]:
    with SshGitServer(tmp_path_factory.mktemp("ssh-git")) as server:
        yield server


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "work")


class Api:
    """Create, read and annotate Flux objects of one test namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def create(self, res: Resource, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> None:
        body = {"apiVersion": res.api_version, "kind": res.kind, "spec": spec,
                "metadata": {"name": name, "namespace": self.namespace, "labels": labels or {}}}  # fmt: skip
        self.custom.create_namespaced_custom_object(res.group, res.version, self.namespace, res.plural, body)

    def get(self, res: Resource, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            res.group, res.version, self.namespace, res.plural, name
        )
        return obj

    def patch(self, res: Resource, name: str, body: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            res.group, res.version, self.namespace, res.plural, name, body,
            _content_type="application/merge-patch+json",
        )  # fmt: skip

    def request_reconcile(self, res: Resource, name: str) -> str:
        stamp = f"{time.time():.6f}"
        self.patch(res, name, {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}})
        return stamp

    def reconciled(self, res: Resource, name: str, stamp: str, timeout: float = 30) -> dict[str, Any]:
        """Wait until the reconcile requested with ``stamp`` really ran and its status was written."""
        return until(
            lambda: self.get(res, name), lambda o: (o.get("status") or {}).get("lastHandledReconcileAt") == stamp,
            timeout=timeout, what=f"{res.kind} {name} handled requestedAt {stamp}",
        )  # fmt: skip

    def stalled(self, res: Resource, name: str, timeout: float = 30) -> dict[str, Any]:
        return until(
            lambda: self.get(res, name), lambda o: condition(o, "Stalled").get("status") == "True",
            timeout=timeout, what=f"{res.kind} {name} Stalled",
        )  # fmt: skip

    def secret(self, name: str, data: dict[str, bytes]) -> None:
        encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
        self.core.create_namespaced_secret(self.namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=name),
                                                                           data=encoded))  # fmt: skip

    def events(self, name: str) -> list[str]:
        found = self.core.list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={name}")
        return [f"{e.type} {e.reason} {e.message}" for e in found.items]

    def wait_ready(self, res: Resource, name: str, timeout: float = 30) -> dict[str, Any]:
        return until(lambda: self.get(res, name), is_ready, timeout=timeout, what=f"{res.kind} {name} Ready")

    def wait_failed(self, res: Resource, name: str, reason: str, timeout: float = 30) -> dict[str, Any]:
        return until(
            lambda: self.get(res, name), lambda o: ready_reason(o) == reason, timeout=timeout,
            what=f"{res.kind} {name} Ready=False reason {reason}",
        )  # fmt: skip


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


def is_ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    current = status.get("observedGeneration") == obj["metadata"]["generation"]
    return current and condition(obj, "Ready").get("status") == "True"


def ready_reason(obj: dict[str, Any]) -> str | None:
    ready = condition(obj, "Ready")
    return str(ready.get("reason")) if ready.get("status") == "False" else None


@pytest.fixture
def kube(admin_api: client.ApiClient, namespace: str, source: Reconcilers) -> Api:
    return Api(admin_api, namespace)


def fetch_artifact(obj: dict[str, Any]) -> tuple[bytes, dict[str, bytes]]:
    """Download the artifact over HTTP as a consumer would, check its digest, return bytes and files."""
    artifact = obj["status"]["artifact"]
    data = httpx.get(artifact["url"], timeout=10).raise_for_status().content
    assert artifact["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert artifact["size"] == len(data)
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            assert (member.uid, member.gid, member.mtime, member.uname) == (0, 0, 0, "")
            extracted = archive.extractfile(member)
            assert extracted is not None
            files[member.name] = extracted.read()
    return data, files


def publish(
    server: GitHttpServer | SshGitServer, repo: GitRepo, prefix: str, files: dict[str, str | bytes]
) -> tuple[str, str, str]:
    """A new repository on ``server`` holding one commit of ``files``: its name, URL and commit."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    url = server.create_repo(name)
    sha = repo.commit(files)
    repo.push(server.repo_path(name))
    return name, url, sha


def git_spec(url: str, **ref: str) -> dict[str, Any]:
    return {"url": url, "interval": "1m", "ref": ref or {"branch": "main"}}


# -- refs and revisions ---------------------------------------------------------------------------


def test_branch_is_fetched_archived_and_served(git_server: GitHttpServer, repo: GitRepo, kube: Api) -> None:
    url = git_server.create_repo(f"apps-{uuid.uuid4().hex[:6]}")
    sha = repo.commit({"deploy/app.yaml": "kind: ConfigMap\n", "README.md": "hi\n", "logo.png": "binary"})
    repo.push(git_server.repo_path(url.rsplit("/", 1)[1].removesuffix(".git")))
    kube.create(GIT_REPOSITORY, "apps", git_spec(url))
    obj = kube.wait_ready(GIT_REPOSITORY, "apps")

    artifact = obj["status"]["artifact"]
    assert artifact["revision"] == f"main@sha1:{sha}"
    assert artifact["path"] == f"gitrepository/{kube.namespace}/apps/{sha}.tar.gz"
    assert condition(obj, "Ready")["message"] == f"stored artifact for revision 'main@sha1:{sha}'"
    assert condition(obj, "ArtifactInStorage")["status"] == "True"
    assert obj["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
    _, files = fetch_artifact(obj)
    assert set(files) == {"deploy/app.yaml", "README.md"}, "default exclusions drop images"
    assert any("stored artifact for revision" in e for e in kube.events("apps"))


def test_new_commit_and_requested_at_give_a_new_revision(git_server: GitHttpServer, repo: GitRepo, kube: Api) -> None:
    name, url, _ = publish(git_server, repo, "moving", {"a.yaml": "a: 1\n"})
    kube.create(GIT_REPOSITORY, "moving", git_spec(url))
    first = kube.wait_ready(GIT_REPOSITORY, "moving")["status"]["artifact"]

    second_sha = repo.commit({"a.yaml": "a: 2\n"})
    repo.push(git_server.repo_path(name))
    stamp = kube.request_reconcile(GIT_REPOSITORY, "moving")
    obj = until(
        lambda: kube.get(GIT_REPOSITORY, "moving"),
        lambda o: o["status"].get("lastHandledReconcileAt") == stamp and is_ready(o),
        what="requestedAt handled",
    )
    assert obj["status"]["artifact"]["revision"] == f"main@sha1:{second_sha}"
    assert obj["status"]["artifact"]["digest"] != first["digest"]
    assert not condition(obj, "ArtifactOutdated")


def test_tag_semver_commit_and_name_refs(git_server: GitHttpServer, repo: GitRepo, kube: Api) -> None:
    name = f"refs-{uuid.uuid4().hex[:6]}"
    url = git_server.create_repo(name)
    v1 = repo.commit({"v.txt": "1.0.0\n"})
    repo.tag("v1.0.0")
    v11 = repo.commit({"v.txt": "1.1.0\n"})
    repo.tag("v1.1.0", message="annotated release")
    repo.commit({"v.txt": "2.0.0\n"})
    repo.tag("v2.0.0")
    feature = repo.branch("feature")
    repo.commit({"v.txt": "head\n"})
    repo.push(git_server.repo_path(name))

    cases = {
        "tag": ({"tag": "v1.0.0"}, f"v1.0.0@sha1:{v1}"),
        "annotated": ({"tag": "v1.1.0"}, f"v1.1.0@sha1:{v11}"),
        "semver": ({"semver": ">=1.0.0 <2.0.0"}, f"v1.1.0@sha1:{v11}"),
        "commit": ({"commit": v1}, f"sha1:{v1}"),
        "commit-on-branch": ({"branch": "main", "commit": v11}, f"main@sha1:{v11}"),
        "name": ({"name": "refs/heads/feature"}, f"refs/heads/feature@sha1:{feature}"),
        "precedence": ({"branch": "main", "tag": "v2.0.0", "semver": "~1.0", "commit": v11}, f"main@sha1:{v11}"),
    }
    for case, (ref, _) in cases.items():
        kube.create(GIT_REPOSITORY, case, git_spec(url, **ref))
    for case, (_, revision) in cases.items():
        obj = kube.wait_ready(GIT_REPOSITORY, case)
        assert obj["status"]["artifact"]["revision"] == revision, case
    _, files = fetch_artifact(kube.get(GIT_REPOSITORY, "commit"))
    assert files["v.txt"] == b"1.0.0\n"


def test_same_content_same_digest_and_ignore_rules_change_it(
    git_server: GitHttpServer, repo: GitRepo, kube: Api
) -> None:
    _, url, _ = publish(
        git_server,
        repo,
        "ignore",
        {"apps/a.yaml": "a\n", "apps/secret.env": "x\n", "docs/readme.md": "d\n", ".sourceignore": "docs/\n"},
    )
    kube.create(GIT_REPOSITORY, "one", git_spec(url))
    kube.create(GIT_REPOSITORY, "two", git_spec(url))
    kube.create(GIT_REPOSITORY, "ignoring", {**git_spec(url), "ignore": "*.env\n"})
    one, two, ignoring = (kube.wait_ready(GIT_REPOSITORY, n) for n in ("one", "two", "ignoring"))

    assert one["status"]["artifact"]["digest"] == two["status"]["artifact"]["digest"]
    assert ignoring["status"]["artifact"]["digest"] != one["status"]["artifact"]["digest"]
    assert set(fetch_artifact(one)[1]) == {"apps/a.yaml", "apps/secret.env", ".sourceignore"}
    assert set(fetch_artifact(ignoring)[1]) == {"apps/a.yaml", ".sourceignore"}


def test_unchanged_source_makes_no_new_artifact_and_no_status_churn(
    git_server: GitHttpServer, repo: GitRepo, kube: Api
) -> None:
    name, url, _ = publish(git_server, repo, "quiet", {"a.yaml": "a\n"})
    kube.create(GIT_REPOSITORY, "quiet", {**git_spec(url), "interval": "1s"})
    before = kube.wait_ready(GIT_REPOSITORY, "quiet")
    seen = len(git_server.sent)
    # Each reconcile starts with an ls-remote; the fourth starts after the third has written (or not).
    until(
        lambda: [path for path, _ in git_server.sent[seen:] if path.startswith(f"/{name}.git/info/refs")],
        lambda contacts: len(contacts) >= 4,
        what="three more reconciles at a 1s interval",
    )
    after = kube.get(GIT_REPOSITORY, "quiet")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["status"] == before["status"]


# -- authentication -------------------------------------------------------------------------------


def test_https_basic_auth_and_wrong_credentials(private_git: GitHttpServer, repo: GitRepo, kube: Api) -> None:
    name, url, sha = publish(private_git, repo, "private", {"a.yaml": "a\n"})
    kube.secret("good", {"username": USER.encode(), "password": PASSWORD.encode()})
    kube.secret("bad", {"username": USER.encode(), "password": b"wrong-Pa55word"})
    kube.create(GIT_REPOSITORY, "good", {**git_spec(url), "secretRef": {"name": "good"}})
    kube.create(GIT_REPOSITORY, "bad", {**git_spec(url), "secretRef": {"name": "bad"}})
    kube.create(GIT_REPOSITORY, "anonymous", git_spec(url))
    kube.create(GIT_REPOSITORY, "no-secret", {**git_spec(url), "secretRef": {"name": "absent"}})

    assert kube.wait_ready(GIT_REPOSITORY, "good")["status"]["artifact"]["revision"] == f"main@sha1:{sha}"
    bad = kube.wait_failed(GIT_REPOSITORY, "bad", "AuthenticationFailed")
    assert condition(bad, "FetchFailed")["reason"] == "AuthenticationFailed"
    kube.wait_failed(GIT_REPOSITORY, "anonymous", "AuthenticationFailed")
    missing = kube.wait_failed(GIT_REPOSITORY, "no-secret", "AuthenticationFailed")
    assert f"secret '{kube.namespace}/absent' not found" in condition(missing, "Ready")["message"]
    for name in ("good", "bad", "anonymous"):
        text = str(kube.get(GIT_REPOSITORY, name)) + " ".join(kube.events(name))
        assert "wrong-Pa55word" not in text and PASSWORD not in text
        assert base64.b64encode(f"{USER}:wrong-Pa55word".encode()).decode() not in text


def test_ssh_with_identity_and_known_hosts(ssh_server: SshGitServer, repo: GitRepo, kube: Api) -> None:
    _, url, sha = publish(ssh_server, repo, "over-ssh", {"a.yaml": "a\n"})
    kube.secret("ssh", {"identity": ssh_server.client_private_key, "known_hosts": ssh_server.known_hosts.encode()})
    other_key = "AAAAC3NzaC1lZDI1NTE5AAAAIBcTXkfL2G9E3mCAmQ3hxV2XeF3c3L3j8b4y1z5tCMjN"  # not the server's
    stranger = f"[127.0.0.1]:{ssh_server.port} ssh-ed25519 {other_key}\n"
    kube.secret("unknown-host", {"identity": ssh_server.client_private_key, "known_hosts": stranger.encode()})
    kube.create(GIT_REPOSITORY, "ssh", {**git_spec(url), "secretRef": {"name": "ssh"}})
    kube.create(GIT_REPOSITORY, "unknown-host", {**git_spec(url), "secretRef": {"name": "unknown-host"}})

    assert kube.wait_ready(GIT_REPOSITORY, "ssh")["status"]["artifact"]["revision"] == f"main@sha1:{sha}"
    refused = kube.wait_failed(GIT_REPOSITORY, "unknown-host", "GitOperationFailed")
    assert "host key verification failed" in condition(refused, "Ready")["message"]
    assert "PRIVATE KEY" not in str(refused) + " ".join(kube.events("unknown-host"))


# -- bad input ------------------------------------------------------------------------------------


def test_bad_inputs_fail_with_one_line_reasons_and_do_not_affect_others(
    git_server: GitHttpServer, repo: GitRepo, kube: Api
) -> None:
    name = f"bad-{uuid.uuid4().hex[:6]}"
    url = git_server.create_repo(name)
    repo.commit({"a.yaml": "a\n"})
    repo.tag("v1.0.0")
    repo.push(git_server.repo_path(name))
    cases = {
        "wrong-url": (git_spec(f"{git_server.url}/does-not-exist.git"), "GitOperationFailed", "not found"),
        "unreachable": (git_spec("http://127.0.0.1:1/x.git"), "GitOperationFailed", "127.0.0.1"),
        "no-branch": (git_spec(url, branch="nope"), "GitOperationFailed", "branch 'nope' not found"),
        "no-tag": (git_spec(url, tag="v9"), "GitOperationFailed", "tag 'v9' not found"),
        "no-semver": (git_spec(url, semver=">=5.0.0"), "GitOperationFailed", "no tag matches semver range"),
        "bad-semver": (git_spec(url, semver="not a range"), "InvalidSpec", "spec.ref.semver"),
        "bad-url": (git_spec("https://"), "URLInvalid", "spec.url"),  # Flux's CRD admits it (its pattern: ^https://)
        "no-commit": (git_spec(url, commit="0" * 40), "GitOperationFailed", "not found"),
    }
    # Flux's CRD refuses a URL outside ^(http|https|ssh):// before the controller sees it (URLInvalid: unit).
    with pytest.raises(client.ApiException) as refused:
        kube.create(GIT_REPOSITORY, "bad-url", git_spec("ftp://example/x"))
    assert refused.value.status == 422 and "spec.url" in str(refused.value.body)
    for case, (spec, _, _) in cases.items():
        kube.create(GIT_REPOSITORY, case, spec)
    kube.create(GIT_REPOSITORY, "fine", git_spec(url))
    for case, (_, reason, text) in cases.items():
        obj = kube.wait_failed(GIT_REPOSITORY, case, reason)
        message = condition(obj, "Ready")["message"]
        assert text in message and "\n" not in message, (case, message)
    assert kube.wait_ready(GIT_REPOSITORY, "fine")
    assert condition(kube.get(GIT_REPOSITORY, "bad-semver"), "Stalled")["status"] == "True"
    assert condition(kube.get(GIT_REPOSITORY, "no-branch"), "Reconciling")["status"] == "True"


def test_oversize_repository_and_escaping_symlink_are_refused(
    git_server: GitHttpServer, repo: GitRepo, kube: Api, small_source: Reconcilers, tmp_path: Path
) -> None:
    _, url, _ = publish(git_server, repo, "big", {"big.yaml": "x" * 10_000})
    kube.create(GIT_REPOSITORY, "big", git_spec(url), labels={SHARD: "small"})
    big = kube.wait_failed(GIT_REPOSITORY, "big", "GitOperationFailed")
    assert "larger than the 4096 byte limit" in condition(big, "Ready")["message"]

    link_name = f"link-{uuid.uuid4().hex[:6]}"
    link_url = git_server.create_repo(link_name)
    links = GitRepo(tmp_path / "links")
    links.commit({"a.yaml": "a\n"})
    (links.path / "passwd").symlink_to("/etc/passwd")
    links.commit()
    links.push(git_server.repo_path(link_name))
    kube.create(GIT_REPOSITORY, "escape", git_spec(link_url))
    escape = kube.wait_failed(GIT_REPOSITORY, "escape", "ArchiveOperationFailed")
    assert "passwd" in condition(escape, "Ready")["message"]


# -- lifecycle ------------------------------------------------------------------------------------


def test_suspend_and_resume(git_server: GitHttpServer, repo: GitRepo, kube: Api, source: Reconcilers) -> None:
    name, url, _ = publish(git_server, repo, "suspend", {"a.yaml": "1\n"})
    kube.create(GIT_REPOSITORY, "paused", git_spec(url))
    kube.wait_ready(GIT_REPOSITORY, "paused")
    kube.patch(GIT_REPOSITORY, "paused", {"spec": {"suspend": True}})
    labels = {"kind": "GitRepository", "name": "paused", "namespace": kube.namespace}
    until(
        lambda: source.manager.metrics.registry.get_sample_value("gotk_suspend_status", labels),
        lambda value: value == 1,
        what="the controller saw the suspension",
    )
    seen = len(git_server.sent)
    newer = repo.commit({"a.yaml": "2\n"})
    repo.push(git_server.repo_path(name))
    kube.request_reconcile(GIT_REPOSITORY, "paused")
    time.sleep(1.5)  # a suspended object records nothing to wait for; it must not even contact the server
    assert not [path for path, _ in git_server.sent[seen:] if path.startswith(f"/{name}.git/")]
    assert newer not in kube.get(GIT_REPOSITORY, "paused")["status"]["artifact"]["revision"]
    kube.patch(GIT_REPOSITORY, "paused", {"spec": {"suspend": False}})
    until(
        lambda: kube.get(GIT_REPOSITORY, "paused"),
        lambda o: o["status"]["artifact"]["revision"] == f"main@sha1:{newer}",
        what="resumed reconcile",
    )


def test_deletion_removes_the_artifacts_and_the_finalizer(
    git_server: GitHttpServer, repo: GitRepo, kube: Api, source: Reconcilers
) -> None:
    _, url, _ = publish(git_server, repo, "gone", {"a.yaml": "a\n"})
    kube.create(GIT_REPOSITORY, "gone", git_spec(url))
    path = kube.wait_ready(GIT_REPOSITORY, "gone")["status"]["artifact"]["path"]
    assert source.storage.exists(path)
    kube.custom.delete_namespaced_custom_object(
        GIT_REPOSITORY.group, GIT_REPOSITORY.version, kube.namespace, GIT_REPOSITORY.plural, "gone"
    )

    def deleted() -> bool:
        try:
            kube.get(GIT_REPOSITORY, "gone")
            return False
        except client.ApiException as exc:
            return bool(exc.status == 404)

    until(deleted, bool, what="GitRepository deleted")
    assert not source.storage.exists(path)


def test_watch_survives_an_api_server_restart(
    git_server: GitHttpServer, repo: GitRepo, kube: Api, control_plane: ControlPlane
) -> None:
    name, url, _ = publish(git_server, repo, "restart", {"a.yaml": "a\n"})
    kube.create(GIT_REPOSITORY, "before", git_spec(url))
    kube.wait_ready(GIT_REPOSITORY, "before")

    control_plane.restart_apiserver()
    newer = repo.commit({"a.yaml": "b\n"})
    repo.push(git_server.repo_path(name))
    until(lambda: _try(lambda: kube.create(GIT_REPOSITORY, "after", git_spec(url))), bool, what="create after restart")
    kube.request_reconcile(GIT_REPOSITORY, "before")
    for obj_name in ("before", "after"):
        obj = until(
            lambda n=obj_name: kube.get(GIT_REPOSITORY, n),  # type: ignore[misc]
            lambda o: (o.get("status") or {}).get("artifact", {}).get("revision") == f"main@sha1:{newer}",
            timeout=60,
            what=f"{obj_name} reconciled after the restart",
        )
        assert is_ready(obj)


def _try(action: Callable[[], None]) -> bool:
    try:
        action()
        return True
    except Exception:
        return False


# -- Helm -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HelmRepoServer]:
    with HelmRepoServer(tmp_path_factory.mktemp("charts"), USER, PASSWORD) as server:
        server.add_chart("podinfo", "6.0.0", {"replicaCount": 1})
        server.add_chart("podinfo", "6.1.0", {"replicaCount": 2, "image": {"tag": "6.1.0"}})
        server.add_chart("podinfo", "7.0.0", {"replicaCount": 3})
        yield server


def test_helm_repository_and_chart_from_it(helm_repo: HelmRepoServer, kube: Api) -> None:
    kube.secret("helm-auth", {"username": USER.encode(), "password": PASSWORD.encode()})
    kube.create(
        HELM_REPOSITORY, "podinfo", {"url": helm_repo.url, "interval": "1m", "secretRef": {"name": "helm-auth"}}
    )
    kube.create(HELM_REPOSITORY, "no-auth", {"url": helm_repo.url, "interval": "1m"})
    repo = kube.wait_ready(HELM_REPOSITORY, "podinfo")
    index = helm_repo.index_path.read_bytes()
    assert repo["status"]["artifact"]["revision"] == "sha256:" + hashlib.sha256(index).hexdigest()
    assert kube.wait_failed(HELM_REPOSITORY, "no-auth", "AuthenticationFailed")

    chart_spec = {"chart": "podinfo", "version": "6.x", "interval": "1m",
                  "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}}  # fmt: skip
    kube.create(HELM_CHART, "podinfo", chart_spec)
    kube.create(HELM_CHART, "missing", {**chart_spec, "version": ">=9"})
    chart = kube.wait_ready(HELM_CHART, "podinfo")
    assert chart["status"]["artifact"]["revision"] == "6.1.0"
    data = httpx.get(chart["status"]["artifact"]["url"], timeout=10).raise_for_status().content
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        values = yaml.safe_load(archive.extractfile("podinfo/values.yaml").read())  # type: ignore[union-attr]
    assert values["replicaCount"] == 2
    missing = kube.wait_failed(HELM_CHART, "missing", "ChartPullError")
    assert "no 'podinfo' chart with version matching '>=9'" in condition(missing, "Ready")["message"]


def test_corrupt_index_is_reported(helm_repo: HelmRepoServer, kube: Api, tmp_path: Path) -> None:
    with HelmRepoServer(tmp_path / "broken") as broken:
        broken.add_chart("x", "1.0.0")
        broken.index_path.write_text("apiVersion: v1\nentries: [not, a, map\n")
        kube.create(HELM_REPOSITORY, "broken", {"url": broken.url, "interval": "1m"})
        obj = kube.wait_failed(HELM_REPOSITORY, "broken", "IndexationFailed")
    assert "index.yaml is not valid YAML" in condition(obj, "Ready")["message"]


def test_chart_from_git_with_values_files(git_server: GitHttpServer, repo: GitRepo, kube: Api) -> None:
    name = f"charts-{uuid.uuid4().hex[:6]}"
    url = git_server.create_repo(name)
    repo.commit({
        "charts/app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 1.2.3\n",
        "charts/app/values.yaml": "replicas: 1\nimage:\n  tag: a\n  pull: Always\n",
        "charts/app/values-prod.yaml": "replicas: 5\nimage:\n  tag: b\n",
        "charts/app/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
    })  # fmt: skip
    repo.push(git_server.repo_path(name))
    kube.create(GIT_REPOSITORY, "charts", git_spec(url))
    kube.create(HELM_CHART, "app", {
        "chart": "charts/app", "interval": "1m", "sourceRef": {"kind": "GitRepository", "name": "charts"},
        "valuesFiles": ["charts/app/values.yaml", "charts/app/values-prod.yaml"],
    })  # fmt: skip
    chart = kube.wait_ready(HELM_CHART, "app", timeout=60)
    assert chart["status"]["artifact"]["revision"] == "1.2.3"
    data = httpx.get(chart["status"]["artifact"]["url"], timeout=10).raise_for_status().content
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        values = yaml.safe_load(archive.extractfile("app/values.yaml").read())  # type: ignore[union-attr]
    assert values == {"replicas": 5, "image": {"tag": "b", "pull": "Always"}}


def test_timeout_bounds_a_server_that_never_answers(kube: Api) -> None:
    with socket.socket() as silent:  # accepts connections (kernel backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        kube.create(GIT_REPOSITORY, "silent", {**git_spec(f"http://127.0.0.1:{port}/repo.git"), "timeout": "2s"})
        obj = kube.wait_failed(GIT_REPOSITORY, "silent", "GitOperationFailed", timeout=30)
    assert "timeout after 2s" in condition(obj, "Ready")["message"]


# -- bounds: sizes, transports, refs --------------------------------------------------------------


def test_oversize_repository_is_stopped_while_it_downloads(
    git_server: GitHttpServer, repo: GitRepo, kube: Api, small_source: Reconcilers
) -> None:
    """Incompressible content: the pack is as big as the files, so only an early stop keeps the bytes down."""
    size = 24 << 20
    _, url, _ = publish(git_server, repo, "huge", {"blob.bin": os.urandom(size)})
    before = len(git_server.sent)
    started = time.monotonic()
    kube.create(GIT_REPOSITORY, "huge", git_spec(url), labels={SHARD: "small"})
    huge = kube.wait_failed(GIT_REPOSITORY, "huge", "GitOperationFailed")
    elapsed = time.monotonic() - started
    message = condition(huge, "Ready")["message"]
    assert "larger than the 4096 byte limit: download stopped at" in message, message
    fetches = [sent for path, sent in git_server.sent[before:] if path.endswith("/git-upload-pack")]
    assert fetches, git_server.sent[before:]
    # the server wrote at most a fraction of the pack before the client hung up (socket buffers included)
    assert max(fetches) < size // 2, (fetches, size)
    assert elapsed < 20, elapsed
    assert "artifact" not in huge["status"]


def test_spec_values_git_could_misread_are_refused(git_server: GitHttpServer, repo: GitRepo, kube: Api) -> None:
    """Options, local transports and malformed refs stall with a one-line message naming the field.

    Flux's own CRDs refuse some URLs on admission already (their pattern is http, https or ssh); for
    those, a 422 from the API server is the refusal. Either way nothing reaches git.
    """
    _, url, _ = publish(git_server, repo, "guarded", {"a.yaml": "a\n"})
    marker = Path("/tmp") / f"fluxwarden-pwned-{uuid.uuid4().hex[:8]}"
    cases = {
        "ext": (git_spec(f"ext::sh -c touch% {marker}"), "spec.url", "'ext::' transport"),
        "fd": (git_spec("fd::3"), "spec.url", "'fd::' transport"),
        "file": (git_spec("file:///etc"), "spec.url", "file:// URL"),
        "path": (git_spec("/srv/git/repo.git"), "spec.url", "local path"),
        "option-url": (git_spec(f"--upload-pack=touch {marker}"), "spec.url", "starts with '-'"),
        "ssh-option": (git_spec(f"ssh://-oProxyCommand=touch {marker}/x"), "spec.url", "starting with '-'"),
        "option-branch": (git_spec(url, branch=f"--upload-pack=touch {marker}"), "spec.ref.branch", "starts with '-'"),
        "bad-name": (git_spec(url, name="refs/heads/a..b"), "spec.ref.name", "not a valid Git ref name"),
        "short-commit": (git_spec(url, commit="abc123"), "spec.ref.commit", "is not a commit SHA"),
        "option-commit": (git_spec(url, commit="--orphan"), "spec.ref.commit", "is not a commit SHA"),
    }
    admitted = []
    for case, (spec, field, _) in cases.items():
        try:
            kube.create(GIT_REPOSITORY, case, spec)
            admitted.append(case)
        except client.ApiException as exc:
            assert exc.status == 422 and field.removeprefix("spec.") in str(exc.body), (case, exc.body)
    assert {"ssh-option", "option-branch", "bad-name", "short-commit", "option-commit"} <= set(admitted)
    for case in admitted:
        _, field, text = cases[case]
        obj = kube.stalled(GIT_REPOSITORY, case)
        message = condition(obj, "Ready")["message"]
        assert message.startswith(field) and text in message and "\n" not in message, (case, message)
        assert ready_reason(obj) in ("URLInvalid", "InvalidSpec"), case
    assert not marker.exists()
    full = repo.rev_parse("HEAD")
    kube.create(GIT_REPOSITORY, "full-commit", git_spec(url, commit=full.upper()))
    assert kube.wait_ready(GIT_REPOSITORY, "full-commit")["status"]["artifact"]["revision"] == f"sha1:{full}"


# -- HTTPS with a private CA, bearer tokens ------------------------------------------------------


def test_git_over_https_with_a_private_ca_and_bearer_token(
    authority: PrivateCA, repo: GitRepo, kube: Api, tmp_path: Path
) -> None:
    token = "t0ken-" + uuid.uuid4().hex
    tls = authority.server_context(client_certs=True)
    with (
        GitHttpServer(tmp_path / "basic", USER, PASSWORD, tls=tls) as basic,
        GitHttpServer(tmp_path / "bearer", token=token, tls=tls) as bearer,
    ):
        _, basic_url, sha = publish(basic, repo, "tls", {"a.yaml": "a\n"})
        bearer_url = bearer.create_repo("tls")
        repo.push(bearer.repo_path("tls"))  # the same commit on both servers
        assert basic_url.startswith("https://")
        ca = authority.ca_pem
        user = {"username": USER.encode(), "password": PASSWORD.encode()}
        kube.secret("ca", {**user, "ca.crt": ca})
        kube.secret("legacy-ca", {**user, "caFile": ca})
        kube.secret("no-ca", user)
        client_pair = {"tls.crt": authority.client.cert_pem, "tls.key": authority.client.key_pem}
        kube.secret("token", {"bearerToken": token.encode(), "ca.crt": ca, **client_pair})
        kube.secret("bad-token", {"bearerToken": b"wrong-token", "ca.crt": ca})
        for name, url, secret in [
            ("ca", basic_url, "ca"), ("legacy-ca", basic_url, "legacy-ca"), ("untrusted", basic_url, "no-ca"),
            ("token", bearer_url, "token"), ("bad-token", bearer_url, "bad-token"),
        ]:  # fmt: skip
            kube.create(GIT_REPOSITORY, name, {**git_spec(url), "secretRef": {"name": secret}})

        for name in ("ca", "legacy-ca", "token"):
            assert kube.wait_ready(GIT_REPOSITORY, name)["status"]["artifact"]["revision"] == f"main@sha1:{sha}"
        untrusted = kube.wait_failed(GIT_REPOSITORY, "untrusted", "GitOperationFailed")
        message = condition(untrusted, "Ready")["message"]
        assert f"TLS certificate of https://127.0.0.1:{basic.port} is not trusted" in message, message
        assert "ca.crt" in message and "spec.secretRef" in message and "\n" not in message
        assert condition(untrusted, "FetchFailed")["status"] == "True"
        assert kube.wait_failed(GIT_REPOSITORY, "bad-token", "AuthenticationFailed")
        token_requests = [r for r in bearer.requests if r.user == "token"]
        assert token_requests and all(r.client_cert == authority.name for r in token_requests)
        for name in ("token", "bad-token"):
            text = str(kube.get(GIT_REPOSITORY, name)) + " ".join(kube.events(name))
            assert token not in text and "wrong-token" not in text


def test_helm_credentials_go_only_to_the_repository_host_unless_passed(
    authority: PrivateCA, kube: Api, tmp_path: Path
) -> None:
    """Basic auth and the client certificate reach the repository, not a chart host elsewhere (Helm's rule)."""
    tls = authority.server_context(client_certs=True)
    with (
        HelmRepoServer(tmp_path / "charts", USER, PASSWORD, tls=tls) as helm,
        StaticFileServer(tmp_path / "charts", tls=tls) as cdn,  # same files, another port: another origin
    ):
        helm.charts_url = cdn.url
        helm.add_chart("podinfo", "6.1.0", {"replicaCount": 2})
        assert helm.chart_url("podinfo", "6.1.0").startswith(cdn.url)
        kube.secret("auth", {"username": USER.encode(), "password": PASSWORD.encode()})
        kube.secret("tls", {"ca.crt": authority.ca_pem, "tls.crt": authority.client.cert_pem,
                            "tls.key": authority.client.key_pem})  # fmt: skip
        repo_spec = {"url": helm.url, "interval": "1m", "secretRef": {"name": "auth"}, "certSecretRef": {"name": "tls"}}
        kube.create(HELM_REPOSITORY, "scoped", repo_spec)
        kube.create(HELM_REPOSITORY, "untrusted", {"url": helm.url, "interval": "1m", "secretRef": {"name": "auth"}})
        kube.wait_ready(HELM_REPOSITORY, "scoped")
        index_requests = [r for r in helm.requests if r.path == "/index.yaml" and r.user == USER]
        assert index_requests and all(r.client_cert == authority.name for r in index_requests)
        # before certSecretRef, Flux read the CA from secretRef's caFile: still honoured
        kube.secret("legacy", {"username": USER.encode(), "password": PASSWORD.encode(), "caFile": authority.ca_pem})
        kube.create(HELM_REPOSITORY, "legacy", {"url": helm.url, "interval": "1m", "secretRef": {"name": "legacy"}})
        kube.wait_ready(HELM_REPOSITORY, "legacy")

        chart_spec = {"chart": "podinfo", "version": "6.x", "interval": "1m",
                      "sourceRef": {"kind": "HelmRepository", "name": "scoped"}}  # fmt: skip
        kube.create(HELM_CHART, "scoped", chart_spec)
        assert kube.wait_ready(HELM_CHART, "scoped")["status"]["artifact"]["revision"] == "6.1.0"
        pulls = [r for r in cdn.requests if r.path == "/podinfo-6.1.0.tgz"]
        assert pulls, "the chart came from the other host"
        assert all("authorization" not in r.headers and r.client_cert is None for r in pulls), pulls

        kube.create(HELM_REPOSITORY, "passing", {**repo_spec, "passCredentials": True})
        kube.wait_ready(HELM_REPOSITORY, "passing")
        kube.create(HELM_CHART, "passing", {**chart_spec, "sourceRef": {"kind": "HelmRepository", "name": "passing"}})
        kube.wait_ready(HELM_CHART, "passing")
        passed = [r for r in cdn.requests[len(pulls) :] if r.path == "/podinfo-6.1.0.tgz"]
        assert passed and all(r.client_cert == authority.name for r in passed), passed
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        assert all(r.headers.get("authorization") == expected for r in passed)

        untrusted = kube.wait_failed(HELM_REPOSITORY, "untrusted", "IndexationFailed")
        message = condition(untrusted, "Ready")["message"]
        assert f"TLS certificate of https://127.0.0.1:{helm.port} is not trusted" in message, message
        assert "ca.crt" in message and "spec.certSecretRef" in message


def test_unchanged_chart_is_not_downloaded_again(kube: Api, tmp_path: Path) -> None:
    with HelmRepoServer(tmp_path / "charts") as helm:
        helm.add_chart("app", "1.0.0")
        kube.create(HELM_REPOSITORY, "charts", {"url": helm.url, "interval": "1m"})
        kube.wait_ready(HELM_REPOSITORY, "charts")
        chart_spec = {"chart": "app", "version": "1.x", "interval": "1m",
                      "sourceRef": {"kind": "HelmRepository", "name": "charts"}}  # fmt: skip
        kube.create(HELM_CHART, "app", chart_spec)
        first = kube.wait_ready(HELM_CHART, "app")
        assert first["status"]["artifact"]["revision"] == "1.0.0"
        assert helm.chart_downloads("app", "1.0.0") == 1

        # a requested reconcile under the same spec and index: no download, the same artifact
        again = kube.reconciled(HELM_CHART, "app", kube.request_reconcile(HELM_CHART, "app"))
        assert helm.chart_downloads("app", "1.0.0") == 1
        assert again["status"]["artifact"] == first["status"]["artifact"]

        # a new index revision that does not change the chosen version: still no download
        helm.add_chart("other", "0.1.0")
        repository = kube.reconciled(HELM_REPOSITORY, "charts", kube.request_reconcile(HELM_REPOSITORY, "charts"))
        new_revision = repository["status"]["artifact"]["revision"]
        assert new_revision != first["status"]["observedSourceArtifactRevision"]
        chart = kube.reconciled(HELM_CHART, "app", kube.request_reconcile(HELM_CHART, "app"))
        assert chart["status"]["observedSourceArtifactRevision"] == new_revision
        assert helm.chart_downloads("app", "1.0.0") == 1
        assert chart["status"]["artifact"] == first["status"]["artifact"]

        # a new matching version is pulled: the counter can move
        helm.add_chart("app", "1.1.0")
        kube.reconciled(HELM_REPOSITORY, "charts", kube.request_reconcile(HELM_REPOSITORY, "charts"))
        until(lambda: kube.get(HELM_CHART, "app"), lambda o: o["status"]["artifact"]["revision"] == "1.1.0",
              what="chart 1.1.0 pulled")  # fmt: skip
        assert helm.chart_downloads("app", "1.1.0") == 1

        # the same version re-published with other bytes (a new digest in the index) is pulled again
        helm.add_chart("app", "1.1.0", {"republished": True})
        kube.reconciled(HELM_REPOSITORY, "charts", kube.request_reconcile(HELM_REPOSITORY, "charts"))
        until(lambda: helm.chart_downloads("app", "1.1.0"), lambda n: n == 2, what="re-published 1.1.0 pulled")
