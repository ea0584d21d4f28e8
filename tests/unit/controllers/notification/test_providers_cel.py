"""The CEL subset of ``spec.commitStatusExpr``: Flux's own cases (internal/server/provider_commit_status_test.go)
and what fluxwarden refuses rather than guess."""

from __future__ import annotations

import pytest

from fluxwarden.controllers.notification.providers.cel import CelError, check, compile_expression

UID = "0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a"
VARIABLES = {
    "event": {
        "involvedObject": {"kind": "Kustomization", "name": "gitops-system"},
        "metadata": {"environment": "production"},
    },
    "provider": {"metadata": {"uid": UID}},
    "alert": {"metadata": {"name": "test-alert"}},
}


def evaluate(text: str) -> str:
    expression = compile_expression(text)
    check(expression)
    return expression.evaluate(VARIABLES)


def test_flux_s_cases() -> None:
    joined = (
        "event.involvedObject.kind + '/' + event.involvedObject.name + '/' + event.metadata.environment"
        " + '/' + provider.metadata.uid + '/' + alert.metadata.name"
    )
    assert evaluate(joined) == f"Kustomization/gitops-system/production/{UID}/test-alert"
    assert evaluate(f"({joined}).lowerAscii()") == f"kustomization/gitops-system/production/{UID}/test-alert"
    with pytest.raises(CelError, match="undeclared reference to 'notification'"):
        evaluate("event.involvedObject.kind + '/' + notification.metadata.name")
    with pytest.raises(CelError, match="undeclared reference to 'kustomization'"):
        evaluate("kustomization.metadata.name + '/' + provider.metadata.uid")


def test_index_methods_and_literals() -> None:
    assert evaluate("event.metadata['environment'].upperAscii()") == "PRODUCTION"
    assert evaluate('"a\\"b" + \'-\' + event.involvedObject.name.replace("-", "_")') == 'a"b-gitops_system'
    assert evaluate("'  x '.trim()") == "x"


def test_missing_keys_and_non_strings_fail_at_evaluation() -> None:
    with pytest.raises(CelError, match="no such key: clusterName"):
        evaluate("event.metadata.clusterName")
    with pytest.raises(CelError, match="not a string"):
        evaluate("event.metadata")


@pytest.mark.parametrize(
    "text",
    ["event.message.size()", "event.a == 'b'", "has(event.a)", "event.a ? 'x' : 'y'", "1 + 2", "event.a.matches('x')"],
)
def test_beyond_the_subset_is_refused(text: str) -> None:
    with pytest.raises(CelError):
        evaluate(text)
