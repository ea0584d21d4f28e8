"""``fluxwarden controllers run``'s flags: every controller gets the same tenancy settings."""

from __future__ import annotations

import pytest

from fluxwarden.cli.controllers import options_from
from fluxwarden.cli.main import build_parser
from fluxwarden.errors import UsageError


def test_helm_and_kustomize_share_the_tenancy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXWARDEN_APPLIER", "tenant-applier")
    args = build_parser().parse_args(["controllers", "run", "--controllers=source,kustomize,helm", "--no-enforce"])
    options = options_from(args)
    assert options.controllers == ("source", "kustomize", "helm")
    assert options.helm.settings == options.kustomize.settings
    assert options.helm.settings.applier == "tenant-applier" and options.helm.settings.enforce is False


def test_the_help_names_every_controller(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["controllers", "run", "--help"])
    assert "source,kustomize,helm" in capsys.readouterr().out


def test_the_fluxconfig_controller_gets_its_key_algorithm_and_a_lease_of_its_own() -> None:
    args = build_parser().parse_args(
        [
            "controllers",
            "run",
            "--controllers=fluxconfig",
            "--ssh-key-algorithm=ed25519",
            "--lease-name=fluxwarden-fluxconfig",
            "--cluster-scope-namespaces=platform",
        ]
    )
    options = options_from(args)
    assert options.fluxconfig.ssh_key_algorithm == "ed25519"
    assert options.fluxconfig.settings == options.kustomize.settings
    assert options.fluxconfig.settings.cluster_scope_namespaces == frozenset({"platform"})
    assert options.manager.lease_name == "fluxwarden-fluxconfig"
    defaults = options_from(build_parser().parse_args(["controllers", "run"]))
    assert defaults.fluxconfig.ssh_key_algorithm == "rsa" and defaults.manager.lease_name == "fluxwarden-controllers"


def test_an_unknown_key_algorithm_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["controllers", "run", "--ssh-key-algorithm=dsa"])
    assert "invalid choice: 'dsa'" in capsys.readouterr().err
    monkeypatch.setenv("FLUXWARDEN_SSH_KEY_ALGORITHM", "dsa")
    with pytest.raises(UsageError, match="--ssh-key-algorithm 'dsa': choose rsa, ecdsa, ed25519"):
        options_from(build_parser().parse_args(["controllers", "run"]))
