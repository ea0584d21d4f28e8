"""URLs a source spec refuses. Flux's CRDs already refuse them at the API server (a url pattern), so the e2e
suite, which runs on those CRDs, cannot reach this check: it guards clusters on manifests/crds."""

from __future__ import annotations

from typing import Any

import pytest

from fluxwarden.controllers.runtime.errors import Stalling
from fluxwarden.controllers.source.api import GitRepositorySpec, HelmRepositorySpec


def obj(kind: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "team-a"},
        "spec": {"interval": "1m", "url": url},
    }


@pytest.mark.parametrize("url", ["ftp://example/x", "file:///etc", "", "example.com/repo.git"])
def test_a_git_url_that_is_not_http_or_ssh_stalls(url: str) -> None:
    with pytest.raises(Stalling) as stalled:
        GitRepositorySpec.of(obj("GitRepository", url))
    assert stalled.value.reason == "URLInvalid"
    assert (f"spec.url '{url}'" if url else "spec.url is empty") in str(stalled.value)


@pytest.mark.parametrize("url", ["https://example.com/repo.git", "ssh://git@example.com/repo", "git@example.com:r"])
def test_http_https_ssh_and_scp_style_git_urls_pass(url: str) -> None:
    assert GitRepositorySpec.of(obj("GitRepository", url)).url == url


@pytest.mark.parametrize("url", ["oci://ghcr.io/charts", "ssh://example.com/charts", ""])
def test_a_helm_repository_url_that_is_not_http_stalls(url: str) -> None:
    with pytest.raises(Stalling) as stalled:
        HelmRepositorySpec.of(obj("HelmRepository", url))
    assert stalled.value.reason == "URLInvalid"


def test_a_helm_repository_url_gets_one_trailing_slash() -> None:
    assert HelmRepositorySpec.of(obj("HelmRepository", "https://charts.example.com/x")).url.endswith("/x/")
