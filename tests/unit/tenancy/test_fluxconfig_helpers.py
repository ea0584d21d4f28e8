"""The FluxConfig helpers the controller imports: URL kinds, the ssh rewrite, durations, scope and namespace."""

from __future__ import annotations

import pytest

from fluxwarden.tenancy import Settings, cluster_scope_allowed, ssh_url, url_kind
from fluxwarden.tenancy.fluxconfig import iso_duration_seconds, scope_of, target_namespace
from tests.support.fluxconfig_admission import changed, fluxconfig, git


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://github.com/org/repo", "https"),
        ("http://gitea.local:3000/org/repo.git", "http"),
        ("ssh://git@github.com/org/repo", "ssh"),
        ("ssh://git@ssh.dev.azure.com/v3/org/project/repo", "ssh"),
        ("git@github.com:org/repo.git", "ssh"),
        ("git@[::1]:org/repo", "ssh"),
        ("git@github.com", None),  # no path: nothing to rewrite to ssh://
        ("git@:org/repo", None),
        ("git@host/with/slash:org/repo", None),
        ("bob@github.com:org/repo", None),  # the Azure CLI takes git@ only
        ("HTTPS://github.com/org/repo", None),  # schemes as written, as the CLI and Flux's CRD pattern
        ("https://", None),
        ("ftp://example.com/repo", None),
        ("oci://ghcr.io/org/repo", None),
        ("", None),
    ],
)
def test_url_kind(url: str, kind: str | None) -> None:
    assert url_kind(url) == kind


@pytest.mark.parametrize(
    ("url", "rewritten"),
    [
        ("git@github.com:org/repo", "ssh://git@github.com/org/repo"),
        ("git@github.com:org/repo.git", "ssh://git@github.com/org/repo.git"),
        ("git@ssh.dev.azure.com:v3/org/project/repo", "ssh://git@ssh.dev.azure.com/v3/org/project/repo"),
        ("git@host:/srv/git/repo", "ssh://git@host/srv/git/repo"),
        ("git@[::1]:org/repo", "ssh://git@[::1]/org/repo"),
        ("ssh://git@github.com/org/repo", "ssh://git@github.com/org/repo"),
        ("https://github.com/org/repo", "https://github.com/org/repo"),
        ("git@github.com", "git@github.com"),
    ],
)
def test_ssh_url_rewrites_only_the_scp_like_form(url: str, rewritten: str) -> None:
    assert ssh_url(url) == rewritten


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("PT10M", 600),
        ("PT1H", 3600),
        ("PT1H30M", 5400),
        ("P1D", 86400),
        ("P1DT2H", 93600),
        ("PT0.5S", 0.5),
        ("PT0S", 0),
        ("P", None),
        ("PT", None),
        ("P1M", None),  # months and years have no fixed length
        ("P1Y", None),
        ("P1W", None),  # the CRD's pattern has no weeks
        ("10m", None),
        ("pt10m", None),
        ("PT10M ", None),
        ("PT١M", None),  # a non-ASCII digit
    ],
)
def test_iso_duration_seconds(value: str, seconds: float | None) -> None:
    assert iso_duration_seconds(value) == seconds


def test_cluster_scope_allowed_reads_the_setting() -> None:
    assert cluster_scope_allowed(Settings(), "cluster-config")
    assert cluster_scope_allowed(Settings(), "flux-system")
    assert not cluster_scope_allowed(Settings(), "team-a")
    assert cluster_scope_allowed(Settings(cluster_scope_namespaces=frozenset({"team-a"})), "team-a")
    assert not cluster_scope_allowed(Settings(cluster_scope_namespaces=frozenset({"team-a"})), "cluster-config")


def test_scope_and_target_namespace_defaults() -> None:
    unset = fluxconfig("team-a", changed(git(), scope=None))
    assert (scope_of(unset), target_namespace(unset)) == ("cluster", "team-a")
    explicit = fluxconfig("team-a", changed(git(), namespace="team-a"))
    assert (scope_of(explicit), target_namespace(explicit, "team-a")) == ("namespace", "team-a")
