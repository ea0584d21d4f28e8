"""--cluster-scope-namespaces / FLUXWARDEN_CLUSTER_SCOPE_NAMESPACES, read with the other tenancy settings."""

from __future__ import annotations

import argparse

import pytest

from fluxwarden.cli.options import add_settings_flags, settings_from
from fluxwarden.tenancy import Settings


def parse(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    add_settings_flags(parser)
    return settings_from(parser.parse_args(argv))


def test_default_is_azure_s_configuration_namespace_and_the_extension_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUXWARDEN_CLUSTER_SCOPE_NAMESPACES", raising=False)
    assert parse().cluster_scope_namespaces == frozenset({"cluster-config", "flux-system"})
    assert Settings().cluster_scope_namespaces == frozenset({"cluster-config", "flux-system"})


def test_flag_is_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUXWARDEN_CLUSTER_SCOPE_NAMESPACES", raising=False)
    assert parse("--cluster-scope-namespaces", " platform, gitops ,").cluster_scope_namespaces == frozenset(
        {"platform", "gitops"}
    )
    assert parse("--cluster-scope-namespaces", "").cluster_scope_namespaces == frozenset()


def test_environment_and_flag_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXWARDEN_CLUSTER_SCOPE_NAMESPACES", "from-env")
    assert parse().cluster_scope_namespaces == frozenset({"from-env"})
    assert parse("--cluster-scope-namespaces", "from-flag").cluster_scope_namespaces == frozenset({"from-flag"})


def test_help_names_the_variable_and_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "500")  # argparse wraps at hyphens
    parser = argparse.ArgumentParser()
    add_settings_flags(parser)
    text = " ".join(parser.format_help().split())
    assert "--cluster-scope-namespaces" in text
    assert "[FLUXWARDEN_CLUSTER_SCOPE_NAMESPACES, cluster-config,flux-system]" in text
