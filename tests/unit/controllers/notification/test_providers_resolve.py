"""``resolve`` of Providers that read no Secret: the checks and their one-line errors (the Secret
cases run against the real API server in tests/e2e/test_notification_provider_secrets.py)."""

from __future__ import annotations

from typing import Any

import pytest

from fluxwarden.controllers.notification.providers import SUPPORTED, ProviderError, resolve, secret_names


class NoSecrets:
    """Stands in for the API client where a Provider names no Secret: reading one is a test failure."""

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes]:
        raise AssertionError(f"resolve read Secret {namespace}/{name} for a Provider that names none")


def provider(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "apps", "name": "team", "uid": "0c9c2e41-d2f9"}, "spec": spec}


def error(**spec: Any) -> str:
    with pytest.raises(ProviderError) as caught:
        resolve(NoSecrets(), provider(**spec))
    text = str(caught.value)
    assert "\n" not in text and text.startswith("Provider apps/team")
    return text


def test_supported_is_the_contract() -> None:
    expected = {"generic", "generic-hmac", "slack", "msteams", "discord", "github", "gitlab", "alertmanager"}
    assert expected == SUPPORTED


def test_spec_fields_and_defaults() -> None:
    target = resolve(
        NoSecrets(),
        provider(type="slack", address="https://hooks.slack.com/services/x", channel="ops", username="flux"),
    )
    assert (target.type, target.namespace, target.name, target.uid) == ("slack", "apps", "team", "0c9c2e41-d2f9")
    assert (target.address, target.channel, target.username) == ("https://hooks.slack.com/services/x", "ops", "flux")
    assert target.timeout == 15.0 and target.ssl is None and target.headers == {} and not target.address_from_secret
    assert resolve(NoSecrets(), provider(type="generic", address="https://x.example/", timeout="1m30s")).timeout == 90.0
    assert resolve(NoSecrets(), provider(type="generic", address="https://x.example/", timeout="500ms")).timeout == 0.5


def test_unsupported_type_lists_the_supported() -> None:
    text = error(type="telegram", address="https://api.telegram.org")
    assert "spec.type 'telegram' is not supported by fluxwarden" in text
    assert "generic-hmac" in text and "alertmanager" in text


def test_commit_status_expr_compiled_at_resolve() -> None:
    # checked before anything that needs a Secret (the success case runs in the e2e test)
    assert "only for commit-status types" in error(type="slack", address="https://h/", commitStatusExpr="'x'")
    text = error(
        type="github", address="https://github.com/o/r", commitStatusExpr="event.message.size() > 3 ? 'a' : 'b'"
    )
    assert text.startswith("Provider apps/team: spec.commitStatusExpr: ")
    assert "run Flux's notification-controller" in text
    assert "undeclared reference to 'kustomization'" in error(
        type="github", address="https://github.com/o/r", commitStatusExpr="kustomization.metadata.name"
    )


def test_missing_or_bad_address() -> None:
    assert "has no address; set spec.address" in error(type="generic")
    assert "is not an http(s) URL" in error(type="generic", address="ftp://x.example/")
    assert "is not a git repository URL" in error(type="gitlab", address="not a url")
    assert "is not a git repository URL" in error(type="github", address="https://github.com/owner-only")
    assert "spec.timeout" in error(type="generic", address="https://x.example/", timeout="soon")


def test_token_required_where_flux_needs_one() -> None:
    assert "type generic-hmac needs a token" in error(type="generic-hmac", address="https://x.example/")
    assert "type github needs a token" in error(type="github", address="https://github.com/o/r")


def test_secret_names_in_order_each_once() -> None:
    both = provider(type="generic", secretRef={"name": "a"}, proxySecretRef={"name": "b"}, certSecretRef={"name": "a"})
    assert secret_names(both) == ("a", "b")
    assert secret_names(provider(type="generic")) == ()


def test_repr_keeps_secrets_out() -> None:
    from fluxwarden.controllers.notification.providers import Target

    target = Target(
        type="generic",
        namespace="a",
        name="b",
        uid="u",
        address="https://h/secret-path",
        token="tok-123",
        password="pw-456",
        headers={"X": "hv-789"},
        proxy="http://u:p@proxy:3128",
    )
    shown = repr(target)
    for value in ("secret-path", "tok-123", "pw-456", "hv-789", "u:p@proxy"):
        assert value not in shown
