"""``gitrepository.resolve`` against a real smart-HTTP git server: each kind of ref names the commit.

The commit a ref resolves to is the revision the reconciler compares with the stored artifact, so
a ref that resolves to anything but the commit it checks out (an annotated tag object) would make
every reconcile clone the repository again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fluxwarden.controllers.source.api import GitRef
from fluxwarden.controllers.source.git import Credentials, Git
from fluxwarden.controllers.source.gitrepository import resolve
from tests.support.git_server import GitHttpServer, GitRepo


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    with GitHttpServer(tmp_path / "repos") as server:
        url = server.create_repo("app")
        work = GitRepo(tmp_path / "work")
        first = work.commit({"a.txt": "1\n"})
        work.tag("v1.0.0")
        second = work.commit({"a.txt": "2\n"})
        work.tag("v1.1.0", message="annotated release")
        head = work.commit({"a.txt": "3\n"})
        work.push(server.repo_path("app"))
        yield url, {"first": first, "second": second, "head": head}


CASES = {
    "branch": (GitRef(branch="main"), "head", "main"),
    "tag": (GitRef(tag="v1.0.0"), "first", "v1.0.0"),
    "annotated-tag": (GitRef(tag="v1.1.0"), "second", "v1.1.0"),
    "semver": (GitRef(semver="~1.1"), "second", "v1.1.0"),
    "name-branch": (GitRef(name="refs/heads/main"), "head", "refs/heads/main"),
    "name-tag": (GitRef(name="refs/tags/v1.0.0"), "first", "refs/tags/v1.0.0"),
    "name-annotated-tag": (GitRef(name="refs/tags/v1.1.0"), "second", "refs/tags/v1.1.0"),
}


@pytest.mark.parametrize(("ref", "commit", "label"), CASES.values(), ids=CASES.keys())
def test_a_ref_resolves_to_the_commit_it_names(
    remote: tuple[str, dict[str, str]], ref: GitRef, commit: str, label: str
) -> None:
    url, commits = remote
    target = resolve(Git(url, Credentials(), timeout=30), ref)
    assert (target.commit, target.label) == (commits[commit], label)
