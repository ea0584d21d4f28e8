"""GitHub and GitLab commit statuses: paths and bodies as their REST API docs give them
(docs.github.com "Create a commit status", docs.gitlab.com "Set the pipeline status of a commit"),
the status context as Flux computes it, and when Flux sends nothing at all."""

from __future__ import annotations

import json
import urllib.parse

from fluxwarden.controllers.notification.event import ObjectRef
from fluxwarden.controllers.notification.providers import Target, github, gitlab, send
from fluxwarden.controllers.notification.providers.metadata import (
    commit_sha,
    default_commit_status,
    parse_revision,
    split_camelcase,
)
from tests.unit.controllers.notification.providers_events import PROVIDER_UID, SHA, as_sent, kustomization_event

SHA256 = "a" * 64
CONTEXT = "kustomization/webapp/0c9c2e41"  # Flux's default for this event and Provider uid


def target(kind: str, address: str) -> Target:
    return Target(type=kind, namespace="flux-system", name="status", uid=PROVIDER_UID, address=address, token="t0k")


def test_default_context_is_flux_s() -> None:
    # Flux's Test_generateDefaultCommitStatus: kind/name/<first uid group>, lower case
    event = kustomization_event(involved_object=ObjectRef("Kustomization", "gitops-system"))
    assert default_commit_status(PROVIDER_UID, event) == "kustomization/gitops-system/0c9c2e41"


def test_revision_forms() -> None:
    assert parse_revision(f"main@sha1:{SHA}") == SHA
    assert parse_revision(f"sha1:{SHA}") == SHA
    assert parse_revision(SHA) == SHA
    assert parse_revision(f"main/{SHA}") == SHA  # Flux's legacy <branch>/<sha>
    assert parse_revision(f"v1.0@sha256:{SHA256}") == SHA256
    assert parse_revision("v1.2.3") is None
    assert parse_revision("main@sha1:xyz") is None


def test_reason_words() -> None:
    assert split_camelcase("ReconciliationSucceeded") == ["Reconciliation", "Succeeded"]
    assert split_camelcase("PDFLoader") == ["PDF", "Loader"]  # Flux's own example
    assert split_camelcase("HealthCheckFailed") == ["Health", "Check", "Failed"]


def test_github_status_on_github_com() -> None:
    t = target("github", "https://github.com/my-gh-org/my-gh-repo")
    event = as_sent(kustomization_event())
    request = github.create(t, event, SHA, CONTEXT)
    assert request.method == "POST"
    assert request.url == f"https://api.github.com/repos/my-gh-org/my-gh-repo/statuses/{SHA}"
    assert request.headers["Authorization"] == "Bearer t0k"
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert json.loads(request.body) == {
        "state": "success",
        "description": "reconciliation succeeded",
        "context": "kustomization/webapp/0c9c2e41",
    }
    listing = github.listing(t, SHA)
    split = urllib.parse.urlsplit(listing.url)
    assert (listing.method, split.path) == ("GET", f"/repos/my-gh-org/my-gh-repo/commits/{SHA}/statuses")
    assert urllib.parse.parse_qs(split.query) == {"per_page": ["50"]}


def test_github_enterprise_failure_and_address_forms() -> None:
    event = as_sent(kustomization_event(severity="error", reason="HealthCheckFailed"))
    for address in (
        "https://ghe.example.com/org/repo.git",
        "git@ghe.example.com:org/repo.git",
        "ssh://git@ghe.example.com/org/repo",
    ):
        request = github.create(target("github", address), event, SHA, CONTEXT)
        assert request.url == f"https://ghe.example.com/api/v3/repos/org/repo/statuses/{SHA}", address
        assert json.loads(request.body)["state"] == "failure"
        assert json.loads(request.body)["description"] == "health check failed"
    on_port = github.create(target("github", "https://127.0.0.1:8443/org/repo"), event, SHA, CONTEXT)
    assert on_port.url == f"https://127.0.0.1:8443/api/v3/repos/org/repo/statuses/{SHA}"


def test_github_duplicate_is_the_newest_of_the_context() -> None:
    wanted = {"state": "success", "description": "reconciliation succeeded", "context": "kustomization/webapp/0c9c2e41"}
    same = [wanted | {"id": 2}, wanted | {"state": "failure", "id": 1}]
    assert github.duplicate(json.dumps(same).encode(), wanted)
    newer_differs = [wanted | {"state": "failure"}, wanted]
    assert not github.duplicate(json.dumps(newer_differs).encode(), wanted)
    other_context = [wanted | {"context": "kustomization/other/0c9c2e41"}]
    assert not github.duplicate(json.dumps(other_context).encode(), wanted)
    assert not github.duplicate(b"not json", wanted)


def test_gitlab_status_path_body_and_token_header() -> None:
    t = target("gitlab", "https://gitlab.com/group/sub/project.git")
    event = as_sent(kustomization_event(severity="error"))
    request = gitlab.create(t, event, SHA, CONTEXT)
    assert request.url == f"https://gitlab.com/api/v4/projects/group%2Fsub%2Fproject/statuses/{SHA}"
    assert request.headers["PRIVATE-TOKEN"] == "t0k"
    assert "Authorization" not in request.headers
    assert json.loads(request.body) == {
        "state": "failed",
        "name": "kustomization/webapp/0c9c2e41",
        "description": "reconciliation succeeded",
    }
    listing = gitlab.listing(t, SHA, CONTEXT)
    split = urllib.parse.urlsplit(listing.url)
    assert split.path == f"/api/v4/projects/group%2Fsub%2Fproject/repository/commits/{SHA}/statuses"
    assert urllib.parse.parse_qs(split.query) == {"name": ["kustomization/webapp/0c9c2e41"]}
    by_id = gitlab.create(target("gitlab", "https://gitlab.com/1234"), event, SHA, CONTEXT)
    assert by_id.url == f"https://gitlab.com/api/v4/projects/1234/statuses/{SHA}"


def test_gitlab_duplicate_needs_sha_name_status_and_description() -> None:
    wanted = {"state": "success", "name": "kustomization/webapp/0c9c2e41", "description": "reconciliation succeeded"}
    listed = [{"sha": SHA, "status": "success", "name": wanted["name"], "description": wanted["description"]}]
    assert gitlab.duplicate(json.dumps(listed).encode(), wanted, SHA)
    assert not gitlab.duplicate(json.dumps(listed).encode(), wanted | {"state": "failed"}, SHA)
    assert not gitlab.duplicate(json.dumps(listed).encode(), wanted, "b" * 40)


def test_commit_status_skips_as_flux() -> None:
    t = target("github", "https://github.com/org/repo")
    assert not send.skipped(t, kustomization_event())
    assert send.skipped(t, kustomization_event(reason="Progressing"))
    assert send.skipped(t, kustomization_event(metadata={}))  # no revision, no commit
    assert send.skipped(t, kustomization_event(metadata={"kustomize.toolkit.fluxcd.io/revision": "v1.2.3"}))
    commit_only = kustomization_event(metadata={"event.toolkit.fluxcd.io/commit": SHA.upper()})
    assert not send.skipped(t, commit_only) and commit_sha(commit_only) == SHA


def test_commit_status_updates_go_to_commit_status_providers_only() -> None:
    update = kustomization_event(
        metadata={
            "kustomize.toolkit.fluxcd.io/revision": f"main@sha1:{SHA}",
            "kustomize.toolkit.fluxcd.io/commit_status": "update",
        }
    )
    assert send.skipped(target("slack", "https://hooks.example.com/x"), update)
    assert not send.skipped(target("generic", "https://hooks.example.com/x"), kustomization_event())
    assert not send.skipped(target("gitlab", "https://gitlab.com/g/p"), update)
