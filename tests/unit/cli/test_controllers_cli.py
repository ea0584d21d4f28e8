"""``fluxwarden controllers run``'s flags: every controller gets the same tenancy settings."""

from __future__ import annotations

import pytest

from fluxwarden.cli.controllers import options_from
from fluxwarden.cli.main import build_parser


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
