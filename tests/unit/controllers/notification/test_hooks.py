"""Each receiver type's check against requests signed here with hashlib/hmac, independently of the code."""

from __future__ import annotations

import hashlib
import hmac
import json
import re

import pytest

from fluxwarden.controllers.notification.hooks import SUPPORTED, Rejected, hook, verify, webhook_path

TOKEN = b"s3cret-token"
BODY = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()


def sign(algorithm: str, body: bytes = BODY, key: bytes = TOKEN) -> str:
    return f"{algorithm}=" + hmac.new(key, body, getattr(hashlib, algorithm)).hexdigest()


def test_the_webhook_path_is_flux_s_sha256_of_token_name_and_namespace() -> None:
    expected = "/hook/" + hashlib.sha256(b"s3cret-token" + b"github-receiver" + b"flux-system").hexdigest()
    assert webhook_path(TOKEN, "github-receiver", "flux-system") == expected
    assert webhook_path(b"other", "github-receiver", "flux-system") != expected


def test_generic_needs_nothing() -> None:
    assert verify("generic", hook({}, b"anything"), TOKEN, ["ignored"]).trigger


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
def test_generic_hmac_accepts_each_algorithm_of_flux(algorithm: str) -> None:
    assert verify("generic-hmac", hook({"X-Signature": sign(algorithm)}, BODY), TOKEN, []).trigger


@pytest.mark.parametrize(
    "header, why",
    [
        ({}, "X-Signature is missing"),
        ({"X-Signature": sign("md5")}, "must be sha1=<hex>"),
        ({"X-Signature": "sha256=zz"}, "not sha256= followed by a hex"),
        ({"X-Signature": sign("sha256", key=b"wrong")}, "does not match"),
        ({"X-Signature": sign("sha256", body=BODY + b" ")}, "does not match"),
        ({"X-Signature": sign("sha256")[:-2]}, "does not match"),  # truncated: compare_digest sees lengths differ
    ],
)
def test_generic_hmac_rejects(header: dict[str, str], why: str) -> None:
    with pytest.raises(Rejected, match=why):
        verify("generic-hmac", hook(header, BODY), TOKEN, [])


def github(event: str = "push", signature: str | None = None, content_type: str = "application/json") -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-Hub-Signature-256": sign("sha256") if signature is None else signature,
        "Content-Type": content_type,
    }


def test_github_push_signed_with_sha256_triggers_when_events_allow_it() -> None:
    verdict = verify("github", hook(github(), BODY), TOKEN, ["ping", "Push"])  # case-insensitive, as Flux
    assert (verdict.event, verdict.trigger) == ("push", True)
    assert verify("github", hook(github(content_type="application/json; charset=utf-8"), BODY), TOKEN, []).trigger


def test_github_headers_are_case_insensitive() -> None:
    lower = {k.lower(): v for k, v in github().items()}
    assert verify("github", hook(lower.items(), BODY), TOKEN, ["push"]).trigger


def test_github_ping_is_answered_without_a_trigger_even_when_events_exclude_it() -> None:
    verdict = verify("github", hook(github("ping"), BODY), TOKEN, ["push"])
    assert (verdict.event, verdict.trigger) == ("ping", False)


def test_github_ping_still_needs_a_valid_signature() -> None:
    with pytest.raises(Rejected, match="does not match"):
        verify("github", hook(github("ping", sign("sha256", key=b"x")), BODY), TOKEN, [])


SHA1_ONLY = {"X-GitHub-Event": "push", "X-Hub-Signature": sign("sha1"), "Content-Type": "application/json"}


@pytest.mark.parametrize(
    "headers, why",
    [
        (github("issues"), "names 'issues', which is not in the Receiver's spec.events"),
        (github(signature=sign("sha256", key=b"guess")), "X-Hub-Signature-256 does not match"),
        (github(signature=sign("sha1")), "X-Hub-Signature-256 must be sha256=<hex>"),  # no downgrade
        (SHA1_ONLY, "X-Hub-Signature-256 is missing"),
        (github(content_type="text/plain"), "Content-Type is 'text/plain'"),
        ({**github(), "Content-Type": ""}, "Content-Type is missing"),
    ],
)
def test_github_rejects(headers: dict[str, str], why: str) -> None:
    with pytest.raises(Rejected, match=why):
        verify("github", hook(headers, BODY), TOKEN, ["push"])


def test_github_signed_garbage_declared_as_json_is_malformed() -> None:
    garbage = b"{not json"
    headers = {**github(), "X-Hub-Signature-256": sign("sha256", body=garbage)}
    with pytest.raises(Rejected, match="not JSON"):
        verify("github", hook(headers, garbage), TOKEN, [])


def test_github_form_encoded_is_signed_over_the_raw_body() -> None:
    form = b"payload=%7B%22ref%22%3A%22main%22%7D"
    headers = {**github(content_type="application/x-www-form-urlencoded"), "X-Hub-Signature-256": sign("sha256", form)}
    assert verify("github", hook(headers, form), TOKEN, []).trigger


def test_gitlab_token_and_event() -> None:
    headers = {"X-Gitlab-Token": TOKEN.decode(), "X-Gitlab-Event": "Push Hook"}
    assert verify("gitlab", hook(headers, BODY), TOKEN, ["Push Hook", "Tag Push Hook"]).event == "Push Hook"
    assert verify("gitlab", hook(headers, BODY), TOKEN, []).trigger


@pytest.mark.parametrize(
    "headers, why",
    [
        ({"X-Gitlab-Event": "Push Hook"}, "X-Gitlab-Token is missing"),
        ({"X-Gitlab-Token": "s3cret-tokeN", "X-Gitlab-Event": "Push Hook"}, "does not match"),
        ({"X-Gitlab-Token": TOKEN.decode(), "X-Gitlab-Event": "Issue Hook"}, "'Issue Hook', which is not in"),
        ({"X-Gitlab-Token": TOKEN.decode()}, "names no event"),
    ],
)
def test_gitlab_rejects(headers: dict[str, str], why: str) -> None:
    with pytest.raises(Rejected, match=why):
        verify("gitlab", hook(headers, BODY), TOKEN, ["Push Hook"])


def bitbucket(event: str = "repo:refs_changed", signature: str | None = None) -> dict[str, str]:
    return {
        "X-Event-Key": event,
        "X-Hub-Signature": sign("sha256") if signature is None else signature,
        "Content-Type": "application/json; charset=utf-8",
    }


def test_bitbucket_server_signature_and_event_key() -> None:
    verdict = verify("bitbucket", hook(bitbucket(), BODY), TOKEN, ["repo:refs_changed"])
    assert (verdict.event, verdict.trigger) == ("repo:refs_changed", True)
    assert not verify("bitbucket", hook(bitbucket("diagnostics:ping"), BODY), TOKEN, ["repo:refs_changed"]).trigger


@pytest.mark.parametrize(
    "headers, why",
    [
        (bitbucket("pr:opened"), "'pr:opened', which is not in"),
        (bitbucket(signature=sign("sha256", key=b"nope")), "X-Hub-Signature does not match"),
        (bitbucket(signature=sign("sha1")), "X-Hub-Signature must be sha256=<hex>"),
        ({k: v for k, v in bitbucket().items() if k != "X-Hub-Signature"}, "X-Hub-Signature is missing"),
    ],
)
def test_bitbucket_rejects(headers: dict[str, str], why: str) -> None:
    with pytest.raises(Rejected, match=why):
        verify("bitbucket", hook(headers, BODY), TOKEN, ["repo:refs_changed"])


def test_reasons_never_quote_the_token_or_the_signature() -> None:
    bad = sign("sha256", key=b"wrong")
    cases = [
        ("github", github(signature=bad)),
        ("generic-hmac", {"X-Signature": bad}),
        ("gitlab", {"X-Gitlab-Token": "s3cret-tokem"}),
        ("bitbucket", bitbucket(signature=bad)),
    ]
    for type_, headers in cases:
        with pytest.raises(Rejected) as caught:
            verify(type_, hook(headers, BODY), TOKEN, [])
        message = str(caught.value)
        assert TOKEN.decode() not in message and bad.split("=")[1] not in message and "tokem" not in message


def test_types_flux_has_but_fluxwarden_does_not_are_rejected_by_name() -> None:
    assert set(SUPPORTED) == {"generic", "generic-hmac", "github", "gitlab", "bitbucket"}
    with pytest.raises(Rejected, match=re.escape("spec.type 'harbor' is not served")):
        verify("harbor", hook({"Authorization": TOKEN.decode()}, BODY), TOKEN, [])
