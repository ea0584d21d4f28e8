"""Receivers end to end: a real API server, real git over smart HTTP, the receiver server on loopback.

Every GitRepository and Kustomization here has a 10m interval, so a reconcile within the test can
only come from the Receiver's ``reconcile.fluxcd.io/requestedAt``. Signatures are computed by the
test (tests.support.receivers), not by fluxwarden.
"""

from __future__ import annotations

import datetime
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.notification.api import NotificationOptions
from fluxwarden.controllers.source.api import GIT_REPOSITORY
from tests.support.git_server import GitHttpServer, GitRepo
from tests.support.receivers import (
    Receivers,
    bitbucket_headers,
    condition,
    expected_path,
    github_headers,
    gitlab_headers,
    hmac_headers,
    push_payload,
)
from tests.support.tenants import configmap, make_tenant
from tests.support.wait import until

SHARD = "sharding.fluxcd.io/key"
LABELS = {SHARD: "receivers"}
TOKEN = b"a-long-random-receiver-token"


@pytest.fixture(scope="module")
def controllers(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    options = NotificationOptions(event_host="127.0.0.1", event_port=0, receiver_host="127.0.0.1", receiver_port=0)
    return start_reconcilers(
        ("source", "kustomize", "notification"), label_selector=f"{SHARD}=receivers", notification=options
    )


@pytest.fixture
def hooks(admin_api: client.ApiClient, namespace: str, controllers: Reconcilers) -> Receivers:
    return Receivers.of(controllers, admin_api, namespace, LABELS)


class Source:
    """A git repository on the test server and a GitRepository (interval 10m) that follows it."""

    def __init__(self, hooks: Receivers, server: GitHttpServer, work: Path, name: str = "app") -> None:
        self.hooks, self.server, self.name = hooks, server, name
        self.repo_name = f"repo-{uuid.uuid4().hex[:8]}"
        self.url = server.create_repo(self.repo_name)
        self.repo = GitRepo(work / self.repo_name)

    def push(self, files: dict[str, str] | None = None) -> str:
        sha = self.repo.commit(files or {"README.md": uuid.uuid4().hex})
        self.repo.push(self.server.repo_path(self.repo_name))
        return sha

    def create(
        self, name: str | None = None, labels: dict[str, str] | None = None, namespace: str | None = None
    ) -> str:
        name, namespace = name or self.name, namespace or self.hooks.namespace
        body = {
            "apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository",
            "metadata": {"name": name, "namespace": namespace, "labels": {**LABELS, **(labels or {})}},
            "spec": {"url": self.url, "interval": "10m", "ref": {"branch": "main"}},
        }  # fmt: skip
        self.hooks.custom.create_namespaced_custom_object(
            GIT_REPOSITORY.group, GIT_REPOSITORY.version, namespace, GIT_REPOSITORY.plural, body
        )
        return name

    def revision(self, sha: str, name: str | None = None, timeout: float = 30) -> dict[str, Any]:
        return until(
            lambda: self.hooks.get(name or self.name, GIT_REPOSITORY),
            lambda o: ((o.get("status") or {}).get("artifact") or {}).get("revision") == f"main@sha1:{sha}",
            timeout=timeout, what=f"GitRepository {name or self.name} at {sha}",
        )  # fmt: skip

    def handled(self, stamp: str, name: str | None = None, timeout: float = 30) -> dict[str, Any]:
        return until(
            lambda: self.hooks.get(name or self.name, GIT_REPOSITORY),
            lambda o: (o.get("status") or {}).get("lastHandledReconcileAt") == stamp,
            timeout=timeout, what=f"GitRepository {name or self.name} handled {stamp}",
        )  # fmt: skip


@pytest.fixture
def source(hooks: Receivers, git_server: GitHttpServer, tmp_path: Path) -> Source:
    return Source(hooks, git_server, tmp_path)


GIT_TARGET = [{"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository", "name": "app"}]


def parse_rfc3339(stamp: str) -> datetime.datetime:
    whole, _, fraction = stamp.removesuffix("Z").partition(".")
    assert stamp.endswith("Z") and (not fraction or (fraction.isdigit() and len(fraction) <= 9)), stamp
    return datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)


def test_a_github_push_signed_with_sha256_fetches_the_new_commit(hooks: Receivers, source: Source) -> None:
    first = source.push()
    source.create()
    source.revision(first)
    hooks.secret("token", {"token": TOKEN})
    hooks.create("github", "github", GIT_TARGET, events=["ping", "push"])
    receiver = hooks.ready("github")
    path = expected_path(TOKEN, "github", hooks.namespace)
    assert receiver["status"]["webhookPath"] == path
    assert condition(receiver, "Ready")["message"] == f"Receiver initialized for path: {path}"
    assert condition(receiver, "Ready")["reason"] == "Succeeded"

    second = source.push()
    body = push_payload(source.url, second)
    before = time.time()
    answer = hooks.post(path, body, github_headers(TOKEN, body))
    assert answer.status_code == 200, answer.text
    stamp = hooks.requested_at(GIT_REPOSITORY, "app")
    assert stamp is not None and abs(parse_rfc3339(stamp).timestamp() - before) < 30
    repository = source.handled(stamp)
    source.revision(second)
    assert repository["status"]["lastHandledReconcileAt"] == stamp


def test_a_bad_signature_is_400_and_triggers_nothing(hooks: Receivers, source: Source) -> None:
    source.push()
    source.create()
    hooks.secret("token", {"token": TOKEN})
    hooks.create("github", "github", GIT_TARGET, events=["push"])
    path = hooks.ready("github")["status"]["webhookPath"]
    body = push_payload(source.url, "1" * 40)
    good = hooks.post(path, body, github_headers(TOKEN, body))
    assert good.status_code == 200, good.text
    stamp = hooks.requested_at(GIT_REPOSITORY, "app")
    assert stamp is not None
    version = source.handled(stamp)["metadata"]["resourceVersion"]  # its reconcile is done: nothing else writes

    forged = github_headers(b"a-guessed-token", body)
    bad = hooks.post(path, body, forged)
    assert bad.status_code == 400
    assert bad.text.count("\n") == 1 and "X-Hub-Signature-256 does not match" in bad.text
    assert TOKEN.decode() not in bad.text
    tampered = hooks.post(path, body + b" ", github_headers(TOKEN, body))
    assert tampered.status_code == 400
    unsigned = {k: v for k, v in github_headers(TOKEN, body).items() if k != "X-Hub-Signature-256"}
    assert hooks.post(path, body, unsigned).status_code == 400, "the SHA-1 signature alone is not enough"
    not_allowed = hooks.post(path, body, github_headers(TOKEN, body, event="issues"))
    assert not_allowed.status_code == 400 and "spec.events" in not_allowed.text
    assert hooks.requested_at(GIT_REPOSITORY, "app") == stamp
    assert hooks.get("app", GIT_REPOSITORY)["metadata"]["resourceVersion"] == version


def test_a_ping_is_answered_and_triggers_nothing(hooks: Receivers, source: Source) -> None:
    source.push()
    source.create()
    hooks.secret("token", {"token": TOKEN})
    hooks.create("github", "github", GIT_TARGET, events=["push"])
    path = hooks.ready("github")["status"]["webhookPath"]
    body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    ping = hooks.post(path, body, github_headers(TOKEN, body, event="ping"))
    assert ping.status_code == 200 and "nothing to reconcile" in ping.text
    assert hooks.requested_at(GIT_REPOSITORY, "app") is None
    push = push_payload(source.url, "2" * 40)
    assert hooks.post(path, push, github_headers(TOKEN, push)).status_code == 200
    assert hooks.requested_at(GIT_REPOSITORY, "app") is not None, "the same Receiver does trigger on a push"


def test_an_unknown_path_is_404(hooks: Receivers) -> None:
    assert hooks.post("/hook/" + "ab" * 32).status_code == 404
    assert hooks.post("/hook/").status_code == 404
    assert hooks.post("/").status_code == 404


def test_a_suspended_receiver_is_503_until_resumed(hooks: Receivers, source: Source) -> None:
    source.push()
    source.create()
    hooks.secret("token", {"token": TOKEN})
    hooks.create("generic", "generic", GIT_TARGET)
    path = hooks.ready("generic")["status"]["webhookPath"]
    hooks.patch("generic", {"spec": {"suspend": True}})
    hooks.served("generic", lambda o: bool(o.get("spec", {}).get("suspend")), "the server sees the suspension")
    refused = hooks.post(path)
    assert refused.status_code == 503 and "is suspended" in refused.text
    assert hooks.requested_at(GIT_REPOSITORY, "app") is None
    hooks.patch("generic", {"spec": {"suspend": None}})
    hooks.served("generic", lambda o: not o.get("spec", {}).get("suspend"), "the server sees the resumption")
    assert hooks.post(path).status_code == 200
    assert hooks.requested_at(GIT_REPOSITORY, "app") is not None


def test_a_secret_without_token_is_token_not_found_until_it_gets_one(hooks: Receivers, source: Source) -> None:
    hooks.secret("token", {"password": b"not-a-token"})
    hooks.create("github", "github", GIT_TARGET)
    stuck = hooks.condition_is("github", "Ready", "False", "TokenNotFound")
    assert "has no 'token' key" in condition(stuck, "Ready")["message"]
    assert not (stuck.get("status") or {}).get("webhookPath")
    assert hooks.post(expected_path(TOKEN, "github", hooks.namespace)).status_code == 404

    hooks.create("missing", "generic", GIT_TARGET, secret="not-there")
    gone = hooks.condition_is("missing", "Ready", "False", "TokenNotFound")
    assert f"Secret {hooks.namespace}/not-there (spec.secretRef) not found" in condition(gone, "Ready")["message"]
    hooks.secret("not-there", {"token": TOKEN})  # the Secret watch heals it
    assert hooks.ready("missing")["status"]["webhookPath"] == expected_path(TOKEN, "missing", hooks.namespace)


def signed(kind: str) -> Callable[[bytes], dict[str, str]]:
    return {
        "generic": lambda body: {},
        "generic-hmac-sha1": lambda body: hmac_headers(TOKEN, body, "sha1"),
        "generic-hmac-sha256": lambda body: hmac_headers(TOKEN, body, "sha256"),
        "generic-hmac-sha512": lambda body: hmac_headers(TOKEN, body, "sha512"),
        "gitlab": lambda body: gitlab_headers(TOKEN),
        "bitbucket": lambda body: bitbucket_headers(TOKEN, body),
    }[kind]


@pytest.mark.parametrize(
    "kind", ["generic", "generic-hmac-sha1", "generic-hmac-sha256", "generic-hmac-sha512", "gitlab", "bitbucket"]
)
def test_each_type_triggers_the_git_repository(hooks: Receivers, source: Source, kind: str) -> None:
    first = source.push()
    source.create()
    source.revision(first)
    hooks.secret("token", {"token": TOKEN})
    type_ = kind.rsplit("-sha", 1)[0]
    events = {"gitlab": ["Push Hook"], "bitbucket": ["repo:refs_changed"]}.get(type_)
    extra: dict[str, Any] = {"events": events} if events else {}
    hooks.create("hook", type_, GIT_TARGET, **extra)
    path = hooks.ready("hook")["status"]["webhookPath"]
    if type_ != "generic":  # everything but generic checks something: the unsigned request is refused first
        assert hooks.post(path, b'{"x": 1}', {"Content-Type": "application/json"}).status_code == 400
        assert hooks.requested_at(GIT_REPOSITORY, "app") is None
    second = source.push()
    body = push_payload(source.url, second)
    answer = hooks.post(path, body, signed(kind)(body))
    assert answer.status_code == 200, answer.text
    stamp = hooks.requested_at(GIT_REPOSITORY, "app")
    assert stamp is not None
    source.handled(stamp)
    source.revision(second)


def test_a_wildcard_with_match_labels_annotates_only_labelled_objects(hooks: Receivers, source: Source) -> None:
    source.push()
    for name, labels in (("web-a", {"app": "web"}), ("web-b", {"app": "web"}), ("db", {"app": "db"}), ("bare", {})):
        source.create(name, labels)
    hooks.secret("token", {"token": TOKEN})
    selector = [
        {"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository", "name": "*", "matchLabels": {"app": "web"}}
    ]
    hooks.create("by-label", "generic", selector)
    path = hooks.ready("by-label")["status"]["webhookPath"]
    answer = hooks.post(path)
    assert answer.status_code == 200 and "2 object(s)" in answer.text, answer.text
    stamps = {name: hooks.requested_at(GIT_REPOSITORY, name) for name in ("web-a", "web-b", "db", "bare")}
    assert stamps["web-a"] is not None and stamps["web-a"] == stamps["web-b"]
    assert stamps["db"] is None and stamps["bare"] is None


def test_a_resource_in_another_namespace_is_never_touched(
    hooks: Receivers, source: Source, namespace_factory: Callable[[], str]
) -> None:
    other = namespace_factory()
    source.push()
    source.create()
    source.create("theirs", namespace=other)
    hooks.secret("token", {"token": TOKEN})
    hooks.create("hook", "generic", GIT_TARGET)
    path = hooks.ready("hook")["status"]["webhookPath"]
    assert hooks.post(path).status_code == 200
    assert hooks.requested_at(GIT_REPOSITORY, "app") is not None

    theirs = {"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository", "name": "theirs", "namespace": other}
    hooks.patch("hook", {"spec": {"resources": [*GIT_TARGET, theirs]}})
    stalled = hooks.condition_is("hook", "Stalled", "True", "AccessDenied")
    message = condition(stalled, "Ready")["message"]
    assert message.startswith(f"spec.resources[1] names GitRepository {other}/theirs: a Receiver never reaches")
    assert not stalled["status"].get("webhookPath")
    hooks.served("hook", lambda o: not (o.get("status") or {}).get("webhookPath"), "the server sees no path")
    assert hooks.post(path).status_code == 404
    assert hooks.requested_at(GIT_REPOSITORY, "theirs", namespace=other) is None

    hooks.create("direct", "generic", [theirs])
    assert hooks.condition_is("direct", "Stalled", "True", "AccessDenied")
    assert hooks.requested_at(GIT_REPOSITORY, "theirs", namespace=other) is None


def test_a_type_fluxwarden_does_not_serve_stalls_naming_it(hooks: Receivers) -> None:
    hooks.secret("token", {"token": TOKEN})
    hooks.create("harbor", "harbor", GIT_TARGET)
    stalled = hooks.condition_is("harbor", "Stalled", "True", "UnsupportedField")
    assert condition(stalled, "Ready")["message"].startswith("spec.type 'harbor' is not supported by fluxwarden yet")
    hooks.create("filtered", "generic", GIT_TARGET, resourceFilter="true")
    stalled = hooks.condition_is("filtered", "Stalled", "True", "UnsupportedField")
    assert condition(stalled, "Ready")["message"].startswith("spec.resourceFilter is not supported")


def test_bad_bodies_get_one_line(hooks: Receivers, source: Source) -> None:
    source.push()
    source.create()
    hooks.secret("token", {"token": TOKEN})
    hooks.create("github", "github", GIT_TARGET)
    path = hooks.ready("github")["status"]["webhookPath"]
    garbage = b"{this is not json"
    malformed = hooks.post(path, garbage, github_headers(TOKEN, garbage))
    assert malformed.status_code == 400 and malformed.text.count("\n") == 1 and "not JSON" in malformed.text
    huge = b'{"pad": "' + b"x" * (3 << 20) + b'"}'
    too_large = hooks.post(path, huge, github_headers(TOKEN, huge))
    assert too_large.status_code == 413 and too_large.text.count("\n") == 1
    assert hooks.requested_at(GIT_REPOSITORY, "app") is None
    small = push_payload(source.url, "3" * 40)
    assert hooks.post(path, small, github_headers(TOKEN, small)).status_code == 200
    assert hooks.requested_at(GIT_REPOSITORY, "app") is not None, "the same Receiver takes a good request"


def test_a_missing_target_is_500_and_the_others_are_still_annotated(hooks: Receivers, source: Source) -> None:
    source.push()
    source.create()
    hooks.secret("token", {"token": TOKEN})
    missing = {"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository", "name": "not-there"}
    hooks.create("hook", "generic", [missing, *GIT_TARGET])
    path = hooks.ready("hook")["status"]["webhookPath"]
    answer = hooks.post(path)
    assert answer.status_code == 500 and "spec.resources[0] (GitRepository" in answer.text, answer.text
    assert hooks.requested_at(GIT_REPOSITORY, "app") is not None


def test_push_to_deployed_latency_through_a_github_receiver(
    admin_api: client.ApiClient,
    namespace_factory: Callable[[], str],
    git_server: GitHttpServer,
    tmp_path: Path,
    controllers: Reconcilers,
) -> None:
    """Commit, call the Receiver as GitHub would, time until the Kustomization applied the commit.

    GitRepository and Kustomization both have a 10m interval: only the Receiver explains a fast apply.
    """
    tenant = make_tenant(admin_api, namespace_factory, git_server, tmp_path, shard="receivers")
    hooks = Receivers.of(controllers, admin_api, tenant.config, LABELS)
    first = tenant.push({"app/settings.yaml": configmap("settings", "0")})
    repository = {
        "apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository",
        "metadata": {"name": "repo", "namespace": tenant.config, "labels": LABELS},
        "spec": {"url": git_server.repo_url(tenant.repo_name), "interval": "10m", "ref": {"branch": "main"}},
    }  # fmt: skip
    tenant.custom.create_namespaced_custom_object(
        GIT_REPOSITORY.group, GIT_REPOSITORY.version, tenant.config, GIT_REPOSITORY.plural, repository
    )
    tenant.kustomization("apps", interval="10m", path="./app", targetNamespace=tenant.target)
    tenant.ready("apps", first)
    hooks.secret("token", {"token": TOKEN})
    hooks.create("github", "github", [{"kind": "GitRepository", "name": "repo"}], events=["push"])
    path = hooks.ready("github")["status"]["webhookPath"]

    figures = []
    for run in range(1, 4):
        sha = tenant.push({"app/settings.yaml": configmap("settings", str(run))})
        started = time.monotonic()
        body = push_payload(git_server.repo_url(tenant.repo_name), sha)
        answer = hooks.post(path, body, github_headers(TOKEN, body))
        assert answer.status_code == 200, answer.text
        revision = f"main@sha1:{sha}"

        def deployed(obj: dict[str, Any], revision: str = revision) -> bool:
            return (obj.get("status") or {}).get("lastAppliedRevision") == revision

        applied = until(
            lambda: tenant.get("apps", KUSTOMIZATION), deployed, timeout=60, interval=0.02, what=f"apps at {sha}"
        )
        figures.append(time.monotonic() - started)
        assert applied["status"]["lastAppliedRevision"] == f"main@sha1:{sha}"
        assert tenant.configmaps(tenant.target)["settings"] == {"value": str(run)}
    median = statistics.median(figures)
    print(f"\npush to deployed through a GitHub Receiver: median {median:.2f}s of {[round(f, 2) for f in figures]}")
    assert median < 30, f"push to deployed took {median:.1f}s (interval 10m): the Receiver did not speed it up"
