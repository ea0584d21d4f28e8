"""The webhook under hostile input, behind a real kube-apiserver.

The API server stores objects far deeper than the webhook parses (in fields that preserve unknown
fields, as HelmRelease ``spec.values``). Such an object is refused with the webhook's message, and
the next request is judged. (Shutdown with an idle connection is tested in integration with a
Python client: Go's TLS client answers the server's close_notify at once, so the API server's idle
connection never held the old shutdown; a client that does not answer did, for 20 s.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.test_webhook_admission import (
    HELMRELEASES,
    Admission,
    admission_registry,
    decisions,
    manifests,
    stored_object,
)
from tests.support.kube import Kubectl
from tests.support.reviews import legacy_helmrelease


@pytest.fixture(scope="module")
def admission(
    admin_api: client.ApiClient, flux_crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Admission]:
    with admission_registry(admin_api, tmp_path_factory.mktemp("webhooks"), "e2e-hostile-probe") as registry:
        yield registry


def release_json(namespace: str, name: str, values: str) -> str:
    """An allowed HelmRelease as JSON text, ``spec.values`` replaced by ``values`` (too deep for json.dumps)."""
    release = legacy_helmrelease(namespace, source_namespace=namespace)
    release["metadata"]["name"] = name
    release["spec"]["values"] = "@@values@@"
    return json.dumps(release).replace('"@@values@@"', values)


def create_raw(kubectl: Kubectl, namespace: str, body: str) -> tuple[int, str]:
    path = f"/apis/{HELMRELEASES.group}/{HELMRELEASES.version}/namespaces/{namespace}/{HELMRELEASES.plural}"
    result = kubectl("create", "--raw", path, "-f", "-", input=body, check=False)
    return result.returncode, result.stderr


def stored(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    return stored_object(api, HELMRELEASES, namespace, name)


def test_a_deep_object_is_refused_with_the_webhooks_message_and_the_next_is_judged(
    admission: Admission, kubectl: Kubectl, namespace: str, admin_api: client.ApiClient
) -> None:
    webhook = admission.webhook()
    deep = "[" * 3000 + "]" * 3000  # 6 KB; the API server accepts it
    code, stderr = create_raw(kubectl, namespace, release_json(namespace, "deep", '{"a": ' + deep + "}"))
    assert code != 0
    # The API server does not relay a webhook's 400 body: the message is in the webhook's log.
    assert 'failed calling webhook "mutate.fluxwarden.dev"' in stderr, stderr
    assert "nested deeper" in webhook.log_file.read_text(), "the webhook answered 400 with its message"
    assert stored(admin_api, namespace, "deep") is None

    # Deep, but within what the webhook parses: judged, allowed and stored.
    code, stderr = create_raw(kubectl, namespace, release_json(namespace, "nested", "[" * 500 + "]" * 500))
    assert code == 0, stderr
    nested = stored(admin_api, namespace, "nested")
    assert nested is not None and nested["spec"]["serviceAccountName"] == "flux-applier"

    kubectl("apply", "-f", "-", input=manifests(legacy_helmrelease(namespace, source_namespace=namespace)))
    assert {d["route"] for d in decisions(webhook, "nginx")} >= {"mutate", "validate"}
    assert webhook.failures_logged() == 0, webhook.log_tail()
