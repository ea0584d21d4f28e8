"""The real webhook server over real HTTPS on loopback: round trips, bad input, metrics, logs."""

from __future__ import annotations

import base64
import copy
import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx
import jsonpatch
import pytest

from tests.support.reviews import admission_review, legacy_helmrelease
from tests.support.webhook import WebhookProcess


def post(client: httpx.Client, route: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(route, content=content, headers={"Content-Type": "application/json"})


def test_validate_denies_the_reference_legacy_helmrelease(webhook: WebhookProcess) -> None:
    review = admission_review(legacy_helmrelease(), uid="uid-1")
    with webhook.client() as client:
        answer = post(client, "/validate", review).json()
    response = answer["response"]
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert response["uid"] == "uid-1" and response["allowed"] is False
    assert response["status"]["code"] == 403 and response["status"]["reason"] == "Forbidden"
    assert "HelmRelease nginx/nginx" in response["status"]["message"]
    assert "HelmRepository flux-system/bitnami" in response["status"]["message"]


def test_validate_allows_the_fixed_form_and_warns_on_deprecated_versions(webhook: WebhookProcess) -> None:
    fixed = legacy_helmrelease(namespace="cluster-config", source_namespace="cluster-config")
    fixed["spec"]["targetNamespace"] = "nginx"
    old = copy.deepcopy(fixed)
    old["apiVersion"] = "helm.toolkit.fluxcd.io/v2beta1"
    with webhook.client() as client:
        allowed = post(client, "/validate", admission_review(fixed)).json()["response"]
        warned = post(client, "/validate", admission_review(old)).json()["response"]
    assert allowed["allowed"] is True and "warnings" not in allowed
    assert warned["allowed"] is True
    assert warned["warnings"] == [
        "deprecated-api: helm.toolkit.fluxcd.io/v2beta1 HelmRelease is deprecated; use v2 (run 'fluxwarden fix')"
    ]


def test_mutate_returns_a_patch_that_sets_the_applier(webhook: WebhookProcess) -> None:
    release = legacy_helmrelease(namespace="cluster-config", source_namespace="cluster-config")
    with webhook.client() as client:
        response = post(client, "/mutate", admission_review(release, uid="m-1")).json()["response"]
    assert response["uid"] == "m-1" and response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    patched = jsonpatch.apply_patch(release, json.loads(base64.b64decode(response["patch"])))
    assert patched["spec"]["serviceAccountName"] == "flux-applier"
    assert patched["metadata"] == release["metadata"]
    assert any("flux-applier" in w for w in response["warnings"])


def test_fix_mode_patch_rewrites_the_cross_namespace_reference(start_webhook: Callable[..., WebhookProcess]) -> None:
    server = start_webhook("--mode", "fix")
    release = legacy_helmrelease()
    with server.client() as client:
        response = post(client, "/mutate", admission_review(release)).json()["response"]
    patched = jsonpatch.apply_patch(release, json.loads(base64.b64decode(response["patch"])))
    assert patched["spec"]["chart"]["spec"]["sourceRef"]["namespace"] == "nginx"
    assert patched["metadata"]["namespace"] == "nginx"
    with server.client() as client:
        assert post(client, "/validate", admission_review(patched)).json()["response"]["allowed"] is True


def test_opt_out_admits_the_legacy_manifest(start_webhook: Callable[..., WebhookProcess]) -> None:
    server = start_webhook("--no-enforce")
    with server.client() as client:
        assert post(client, "/validate", admission_review(legacy_helmrelease())).json()["response"]["allowed"]
        assert "patch" not in post(client, "/mutate", admission_review(legacy_helmrelease())).json()["response"]


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_delete_and_connect_are_allowed(webhook: WebhookProcess, operation: str) -> None:
    review = admission_review(legacy_helmrelease(), operation=operation)
    review["request"]["oldObject"] = review["request"].pop("object")
    with webhook.client() as client:
        assert post(client, "/validate", review).json()["response"]["allowed"] is True


def test_update_is_judged_on_the_new_object(webhook: WebhookProcess) -> None:
    review = admission_review(legacy_helmrelease(), operation="UPDATE")
    review["request"]["oldObject"] = legacy_helmrelease(source_namespace="nginx")
    with webhook.client() as client:
        assert post(client, "/validate", review).json()["response"]["allowed"] is False


def test_unknown_kind_is_allowed_untouched(webhook: WebhookProcess) -> None:
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "a"},
        "spec": {"sourceRef": {"namespace": "elsewhere"}},
    }
    with webhook.client() as client:
        for route in ("/validate", "/mutate"):
            response = post(client, route, admission_review(widget)).json()["response"]
            assert response == {"uid": response["uid"], "allowed": True}


def _without(review: dict[str, Any], *path: str) -> dict[str, Any]:
    review = copy.deepcopy(review)
    target = review
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return review


def _with(review: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    review = copy.deepcopy(review)
    target = review
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return review


GOOD = admission_review(legacy_helmrelease())
BAD_INPUT = [
    pytest.param(b"{not json", "not JSON", id="not-json"),
    pytest.param(b"\xff\xfe\x00", "not JSON", id="not-utf8"),
    pytest.param(b"", "empty", id="empty"),
    pytest.param(b"[1, 2]", "must be a JSON object", id="array"),
    pytest.param(_with(GOOD, "admission.k8s.io/v1beta1", "apiVersion"), "admission.k8s.io/v1", id="old-api-version"),
    pytest.param(_with(GOOD, "ConfigMap", "kind"), "kind AdmissionReview", id="wrong-kind"),
    pytest.param(_without(GOOD, "request"), "request must be a JSON object", id="no-request"),
    pytest.param(_without(GOOD, "request", "uid"), "request.uid", id="no-uid"),
    pytest.param(_with(GOOD, 42, "request", "uid"), "request.uid", id="uid-number"),
    pytest.param(_without(GOOD, "request", "object"), "request.object", id="no-object"),
    pytest.param(_with(GOOD, "text", "request", "object"), "request.object", id="object-string"),
    pytest.param(_with(GOOD, "PATCH", "request", "operation"), "request.operation", id="bad-operation"),
    pytest.param(_with(GOOD, ["x"], "request", "namespace"), "request.namespace", id="namespace-list"),
    pytest.param(_with(GOOD, "admins", "request", "userInfo", "groups"), "userInfo.groups", id="groups-string"),
]


@pytest.mark.parametrize(("body", "expected"), BAD_INPUT)
@pytest.mark.parametrize("route", ["/validate", "/mutate"])
def test_bad_input_gets_400_with_a_message(webhook: WebhookProcess, route: str, body: Any, expected: str) -> None:
    with webhook.client() as client:
        response = post(client, route, body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert expected in error and "\n" not in error
        assert post(client, route, GOOD).status_code == 200, "the server keeps serving after bad input"


def test_huge_body_gets_413_by_declared_and_by_streamed_size(webhook: WebhookProcess) -> None:
    huge = admission_review(legacy_helmrelease())
    huge["request"]["object"]["spec"]["values"] = {"blob": "x" * (3 * 1024 * 1024 + 10)}
    body = json.dumps(huge).encode()
    with webhook.client() as client:
        declared = post(client, "/validate", body)
        streamed = client.post("/validate", content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]))
    assert declared.status_code == 413 and "3145728 bytes" in declared.json()["error"]
    assert streamed.status_code == 413


def test_a_body_just_under_the_limit_is_judged(webhook: WebhookProcess) -> None:
    big = admission_review(legacy_helmrelease())
    big["request"]["object"]["spec"]["values"] = {"blob": "x" * (3 * 1024 * 1024 - 2048)}
    with webhook.client() as client:
        assert post(client, "/validate", big).json()["response"]["allowed"] is False


def test_slow_body_times_out_with_408(webhook: WebhookProcess) -> None:
    context = webhook.ssl_context()
    with (
        socket.create_connection(("127.0.0.1", webhook.port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"apiVersion"'
        )
        tls.settimeout(10)
        started = time.monotonic()
        answer = tls.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert time.monotonic() - started < 5


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_below_1_2_is_refused(webhook: WebhookProcess) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(webhook.ca_file)
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", webhook.port)) as raw, pytest.raises(ssl.SSLError):
        old.wrap_socket(raw, server_hostname="127.0.0.1")
    modern = webhook.ssl_context()
    with (
        socket.create_connection(("127.0.0.1", webhook.port)) as raw,
        modern.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def _tls12_cipher(webhook: WebhookProcess, ciphers: str | None = None) -> str:
    """The suite a TLS 1.2 client offering ``ciphers`` (default: Python's) ends up with."""
    context = webhook.ssl_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        context.set_ciphers(ciphers)
    with (
        socket.create_connection(("127.0.0.1", webhook.port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None and tls.version() == "TLSv1.2"
        return cipher[0]


def test_tls_1_2_serves_forward_secret_aead_suites_only(webhook: WebhookProcess) -> None:
    assert _tls12_cipher(webhook).startswith("ECDHE-") and "GCM" in _tls12_cipher(webhook)
    assert _tls12_cipher(webhook, "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-CHACHA20-POLY1305").endswith("POLY1305")
    # CBC suites (uvicorn before 0.48 offered only those over TLS 1.2, SHA-1 ones) and static RSA are refused.
    for weak in ("ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA256",
                 "AES128-GCM-SHA256:AES256-GCM-SHA384"):  # fmt: skip
        with pytest.raises(ssl.SSLError):
            _tls12_cipher(webhook, weak)


def test_health_readiness_and_wrong_methods(webhook: WebhookProcess) -> None:
    with webhook.client() as client:
        assert client.get("/healthz").text == "ok"
        assert client.get("/readyz").text == "ok"
        assert client.get("/validate").status_code == 405
        assert client.post("/nowhere", content=b"{}").status_code == 404


def test_metrics_count_decisions_by_route_kind_operation_and_outcome(webhook: WebhookProcess) -> None:
    with webhook.client() as client:
        post(client, "/validate", admission_review(legacy_helmrelease()))
        post(client, "/mutate", admission_review(legacy_helmrelease()))
        post(client, "/validate", b"nope")
    metrics = httpx.get(webhook.metrics_url, timeout=5).text
    assert (
        'fluxwarden_admission_requests_total{allowed="false",kind="HelmRelease",operation="CREATE",'
        'route="validate"} 1.0'
    ) in metrics
    assert (
        'fluxwarden_admission_duration_seconds_count{allowed="true",kind="HelmRelease",operation="CREATE",'
        'route="mutate"} 1.0'
    ) in metrics
    assert (
        'fluxwarden_admission_requests_total{allowed="error",kind="unknown",operation="unknown",route="validate"} 1.0'
        in metrics
    )


def test_one_json_log_line_per_decision_and_no_secret_data(webhook: WebhookProcess) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "team-a"},
        "data": {"password": base64.b64encode(b"hunter2-very-secret").decode()},
        "stringData": {"token": "plain-text-token-42"},
    }
    with webhook.client() as client:
        post(client, "/validate", admission_review(secret, uid="secret-uid"))
        post(client, "/validate", admission_review(legacy_helmrelease(), uid="hr-uid"))
    time.sleep(0.2)
    log = webhook.log_file.read_text()
    assert "hunter2" not in log and "aHVudGVyMi" not in log and "plain-text-token-42" not in log
    decisions = [json.loads(line) for line in log.splitlines() if line.startswith("{") and '"admission"' in line]
    by_uid = {d["uid"]: d for d in decisions}
    assert by_uid["secret-uid"]["allowed"] is True and by_uid["secret-uid"]["kind"] == "Secret"
    assert by_uid["hr-uid"]["allowed"] is False and by_uid["hr-uid"]["rules"] == ["cross-namespace-ref"]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _raw(review: dict[str, Any], path: tuple[str, ...], raw: str) -> bytes:
    """``review`` as JSON with the value at ``path`` replaced by ``raw`` text (json.dumps cannot nest that deep)."""
    hole = "@@hole@@"
    return json.dumps(_with(review, hole, *path)).replace(f'"{hole}"', raw).encode()


OBJECT = ("request", "object")
SAME_NAMESPACE = admission_review(legacy_helmrelease(source_namespace="nginx"))  # allowed as it is
HOSTILE_INPUT = [
    # 7 KB is enough: json.loads recurses once per level and gave a RecursionError (500, dropped).
    pytest.param(_raw(GOOD, (*OBJECT, "spec", "values"), _nested(3500)), 400, "nested deeper", id="deep-7kb"),
    pytest.param(_raw(GOOD, (*OBJECT, "kind"), _nested(50_000)), 400, "nested deeper", id="deep-kind-100kb"),
    pytest.param(_raw(GOOD, (*OBJECT,), '{"a":' * 5000 + "1" + "}" * 5000), 400, "nested deeper", id="deep-object"),
    # Parsed, but nested enough that printing it would recurse: the rules quote it by type.
    pytest.param(
        _raw(SAME_NAMESPACE, (*OBJECT, "spec", "serviceAccountName"), _nested(800)),
        200,
        "spec.serviceAccountName is '<list>'",
        id="deep-service-account",
    ),
    pytest.param(
        _raw(GOOD, (*OBJECT, "spec", "chart", "spec", "sourceRef", "namespace"), _nested(800)),
        200,
        "HelmRepository <list>/bitnami",
        id="deep-ref-namespace",
    ),
    pytest.param(_raw(GOOD, ("apiVersion",), _nested(800)), 400, "apiVersion='<list>'", id="deep-api-version"),
    pytest.param(_raw(GOOD, ("request", "uid"), "9" * 5000), 400, "not usable JSON", id="int-5000-digits"),
    pytest.param(_with(GOOD, ["CREATE"], "request", "operation"), 400, "request.operation", id="operation-list"),
    pytest.param(_with(GOOD, {"op": 1}, "request", "operation"), 400, "request.operation", id="operation-object"),
    pytest.param(_with(GOOD, [GOOD["request"]], "request"), 400, "request must be a JSON object", id="request-list"),
    pytest.param(_with(GOOD, 7, *OBJECT, "metadata"), 200, "HelmRelease nginx/<unnamed>", id="metadata-number"),
    pytest.param(_with(GOOD, ["a"], *OBJECT, "spec"), 200, "", id="spec-list"),
    pytest.param(_with(GOOD, {"k": "v"}, *OBJECT, "kind"), 200, "", id="kind-object"),
    pytest.param(_with(GOOD, ["x", 1], "request", "userInfo", "username"), 200, "", id="username-list"),
    pytest.param(_with(GOOD, "x" * 2_000_000, *OBJECT, "metadata", "name"), 200, "", id="name-2mb"),
    pytest.param(_raw(GOOD, ("request", "uid"), '"\\ud800"'), 200, "", id="uid-lone-surrogate"),
]


@pytest.mark.parametrize(("body", "status", "expected"), HOSTILE_INPUT)
def test_hostile_input_is_answered_and_the_connection_stays_usable(
    webhook: WebhookProcess, body: Any, status: int, expected: str
) -> None:
    body = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection = http.client.HTTPSConnection("127.0.0.1", webhook.port, context=webhook.ssl_context(), timeout=10)
    try:
        connection.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        payload = json.loads(answer.read())
        sock = connection.sock
        assert answer.status == status, payload
        assert answer.getheader("connection") != "close"
        if status == 400:
            assert expected in payload["error"] and "\n" not in payload["error"]
        else:
            assert expected in json.dumps(payload["response"])
            assert len(json.dumps(payload["response"])) < 1000  # a 2 MB name is not echoed
        connection.request("POST", "/validate", body=json.dumps(GOOD).encode())
        second = connection.getresponse()
        assert second.status == 200 and json.loads(second.read())["response"]["allowed"] is False
        assert sock is not None and connection.sock is sock, "the same keep-alive connection served the next review"
    finally:
        connection.close()
    assert webhook.failures_logged() == 0, webhook.log_tail()


def test_random_kinds_do_not_grow_the_metrics(webhook: WebhookProcess) -> None:
    with webhook.client() as client:
        for index in range(20):
            post(client, "/validate", admission_review({"apiVersion": "x/v1", "kind": f"K{index}", "metadata": {}}))
    metrics = httpx.get(webhook.metrics_url, timeout=5).text
    assert 'kind="other"' in metrics and 'kind="K1"' not in metrics
