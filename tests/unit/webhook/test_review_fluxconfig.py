"""FluxConfig through the webhook app in process: request.oldObject, the immutable fields and the mutation."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest

from fluxwarden.tenancy import Settings
from fluxwarden.webhook.app import WebhookConfig, create_app
from fluxwarden.webhook.review import parse_review
from tests.support.fluxconfig_admission import changed, fluxconfig, git
from tests.support.reviews import admission_review


def post(route: str, review: dict[str, Any], settings: Settings | None = None) -> httpx.Response:
    app = create_app(WebhookConfig(settings or Settings()))

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="https://webhook") as client:
            return await client.post(route, content=json.dumps(review).encode())

    return asyncio.run(send())


def update_review(old: dict[str, Any], new: dict[str, Any], username: str = "alice") -> dict[str, Any]:
    review = admission_review(new, operation="UPDATE", username=username)
    review["request"]["oldObject"] = old
    return review


def test_a_changed_scope_on_update_is_denied_with_one_line() -> None:
    old = fluxconfig("cluster-config", git())
    review = update_review(old, fluxconfig("cluster-config", changed(git(), scope="cluster")))

    response = post("/validate", review).json()["response"]

    assert response["allowed"] is False
    assert response["status"] == {
        "code": 403,
        "reason": "Forbidden",
        "message": "fluxconfig: FluxConfig cluster-config/apps: spec.scope changed from 'namespace' to 'cluster'; "
        "keep namespace, or delete the FluxConfig and create it anew — spec.scope is immutable",
    }


def test_an_update_that_keeps_scope_and_namespace_is_allowed() -> None:
    old = fluxconfig("cluster-config", git())
    new = fluxconfig("cluster-config", changed(git(), namespace="cluster-config", suspend=True))
    assert post("/validate", update_review(old, new)).json()["response"]["allowed"] is True


def test_an_update_without_old_object_is_judged_on_the_new_object_alone() -> None:
    new = fluxconfig("cluster-config", changed(git(), scope="cluster"))
    review = admission_review(new, operation="UPDATE")
    del review["request"]["oldObject"]
    assert parse_review(json.dumps(review).encode()).old_obj is None
    assert post("/validate", review).json()["response"]["allowed"] is True


def test_old_object_is_not_compared_on_create() -> None:
    review = admission_review(fluxconfig("cluster-config", changed(git(), scope="cluster")))
    review["request"]["oldObject"] = fluxconfig("cluster-config", git())  # no API server sends this; ignored
    assert post("/validate", review).json()["response"]["allowed"] is True


@pytest.mark.parametrize("route", ["/validate", "/mutate"])
@pytest.mark.parametrize("value", ["text", ["a"], 7], ids=["string", "list", "number"])
def test_an_old_object_that_is_not_an_object_gets_400(route: str, value: Any) -> None:
    review = update_review(fluxconfig("cluster-config", git()), fluxconfig("cluster-config", git()))
    review["request"]["oldObject"] = value
    response = post(route, review)
    assert response.status_code == 400
    assert response.json() == {"error": "AdmissionReview field request.oldObject must be a JSON object", "code": 400}


def test_delete_with_only_an_old_object_is_allowed() -> None:
    review = admission_review(fluxconfig("team-a", changed(git(), scope="cluster")), operation="DELETE")
    review["request"]["oldObject"] = review["request"].pop("object")
    assert post("/validate", review).json()["response"] == {"uid": review["request"]["uid"], "allowed": True}


def test_scope_cluster_from_an_exempt_user_in_a_tenant_namespace_is_still_denied() -> None:
    settings = Settings(exempt_users=frozenset({"platform-bot"}))
    review = admission_review(fluxconfig("team-a", changed(git(), scope="cluster")), username="platform-bot")
    response = post("/validate", review, settings).json()["response"]
    assert response["allowed"] is False
    assert response["status"]["message"].startswith("cluster-scope: FluxConfig team-a/apps: spec.scope is cluster ")


def test_mutate_fills_in_spec_namespace_and_says_so() -> None:
    response = post("/mutate", admission_review(fluxconfig("team-a", git()))).json()["response"]
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == [
        {"op": "add", "path": "/spec/namespace", "value": "team-a"}
    ]
    assert response["warnings"] == [
        "fluxconfig: set spec.namespace to team-a (a FluxConfig configures its own namespace)"
    ]
