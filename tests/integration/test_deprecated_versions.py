"""Deprecated Flux API versions, judged by the real webhook server at the review level.

Flux 2.9's CRDs (the e2e suite's) serve only the current version of each kind, so an API server never sends
a deprecated one: clusters on older Flux releases, or on manifests/crds, still do. The e2e test that
applied a v1beta2 Kustomization through kubectl lives on here, for every deprecated version of every kind.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import pytest

from fluxwarden.tenancy.kinds import KINDS, FluxKind
from tests.support.reviews import admission_review
from tests.support.webhook import WebhookProcess

DEPRECATED = [pytest.param(k, v, id=f"{k.kind}.{v}") for k in KINDS for v in k.versions if k.is_deprecated(v)]
APPLIER = "flux-applier"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One webhook process in its default (deny) mode for every case of this module."""
    workdir: Path = tmp_path_factory.mktemp("deprecated")
    webhook = WebhookProcess(workdir / "certs", workdir / "serve.log").start()
    try:
        with webhook.client() as http:
            yield http
    finally:
        webhook.stop()


def review(client: httpx.Client, route: str, obj: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(route, content=json.dumps(admission_review(obj)), headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    response = answer.json()["response"]
    assert isinstance(response, dict)
    return response


def test_every_kind_has_a_deprecated_version_covered() -> None:
    covered = {p.values[0].kind for p in DEPRECATED}  # type: ignore[union-attr]
    assert covered == {k.kind for k in KINDS if len(k.versions) > 1}
    assert len(covered) >= 12


@pytest.mark.parametrize(("flux_kind", "version"), DEPRECATED)
def test_a_deprecated_version_is_admitted_with_a_warning(
    client: httpx.Client, flux_kind: FluxKind, version: str
) -> None:
    obj = {
        "apiVersion": f"{flux_kind.group}/{version}",
        "kind": flux_kind.kind,
        "metadata": {"name": "legacy", "namespace": "team-a"},
        "spec": {"interval": "10m"},
    }

    validated = review(client, "/validate", obj)
    mutated = review(client, "/mutate", obj)

    assert validated["allowed"] is True
    assert validated["warnings"] == [
        f"deprecated-api: {flux_kind.group}/{version} {flux_kind.kind} is deprecated; "
        f"use {flux_kind.current_version} (run 'fluxwarden fix')"
    ]
    assert mutated["allowed"] is True
    if flux_kind.applies_as_service_account:
        # The v1beta2 Kustomization of the old e2e test: stored as the applier, like a current one.
        patched = jsonpatch.apply_patch(obj, json.loads(base64.b64decode(mutated["patch"])))
        assert patched["spec"]["serviceAccountName"] == APPLIER
        assert patched["apiVersion"] == obj["apiVersion"]  # the webhook warns; it never converts
    else:
        assert "patch" not in mutated
