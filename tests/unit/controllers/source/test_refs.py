"""What a GitRepository spec may hand to git: transports, ref names and commits (table-driven)."""

from __future__ import annotations

import pytest

from fluxwarden.controllers.runtime.errors import Stalling
from fluxwarden.controllers.source.refs import check_commit, check_ref, check_url

ACCEPTED_URLS = [
    "https://github.com/fluxcd/flux2",
    "http://127.0.0.1:8080/repo.git",
    "ssh://git@github.com/org/repo.git",
    "ssh://git@example.com:2222/org/repo",
    "git@github.com:org/repo.git",
]

REFUSED_URLS = [
    ("ext::sh -c touch% /tmp/pwned", "'ext::' transport"),
    ("ext::ssh -o ProxyCommand=x@y", "'ext::' transport"),
    ("fd::3", "'fd::' transport"),
    ("https::example.com/repo", "'https::' transport"),
    ("file:///etc", "file:// URL"),
    ("FILE:///etc", "file:// URL"),
    ("/srv/git/repo.git", "local path"),
    ("./repo", "local path"),
    ("repo.git", "local path"),
    ("--upload-pack=touch /tmp/x", "starts with '-'"),
    ("-oProxyCommand=x", "starts with '-'"),
    ("ssh://-oProxyCommand=touch /tmp/x/y", "starting with '-'"),
    ("ssh://-user@host/repo", "starting with '-'"),
    ("https:///no-host", "no host"),
    ("https://example.com/a\nb", "control characters"),
    ("ftp://example.com/repo", "not an http(s) or ssh Git URL"),
    ("", "is empty"),
]


@pytest.mark.parametrize("url", ACCEPTED_URLS)
def test_network_urls_are_accepted(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize(("url", "text"), REFUSED_URLS)
def test_local_and_option_like_urls_are_refused(url: str, text: str) -> None:
    with pytest.raises(Stalling) as caught:
        check_url(url)
    assert caught.value.reason == "URLInvalid"
    message = str(caught.value.message)
    assert message.startswith("spec.url") and text in message and "\n" not in message
    assert "http://, https:// or ssh://" in message


@pytest.mark.parametrize(
    ("commit", "expected"),
    [("a" * 40, "a" * 40), ("ABCDEF0123" * 4, "abcdef0123" * 4), ("b" * 64, "b" * 64), (None, None)],
)
def test_full_hex_commits_are_accepted(commit: str | None, expected: str | None) -> None:
    assert check_commit(commit) == expected


@pytest.mark.parametrize("commit", ["abc123", "g" * 40, "--orphan", "a" * 41, "HEAD", "main", "a" * 39 + " "])
def test_other_commits_stall(commit: str) -> None:
    with pytest.raises(Stalling) as caught:
        check_commit(commit)
    assert "spec.ref.commit" in caught.value.message and "40 hexadecimal digits" in caught.value.message


@pytest.mark.parametrize("ref", ["main", "release/1.x", "refs/heads/main", "refs/pull/420/head", "v1.0.0", "feat-a_b"])
def test_valid_refs_pass(ref: str) -> None:
    assert check_ref("spec.ref.branch", ref) == ref


@pytest.mark.parametrize(
    "ref",
    ["-b", "--upload-pack=x", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "a@{1}", "/a", "a/",
     "a.", "a.lock", "a/.b", ".a", "a//b", "@", "a\x01"],
)  # fmt: skip
def test_invalid_refs_stall_naming_the_field(ref: str) -> None:
    with pytest.raises(Stalling) as caught:
        check_ref("spec.ref.tag", ref)
    assert caught.value.reason == "InvalidSpec"
    assert caught.value.message.startswith("spec.ref.tag") and "not a valid Git ref name" in caught.value.message
