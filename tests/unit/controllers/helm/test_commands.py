"""helm command lines per action, as Flux's helm-controller sets the same options (derived from Flux's
``internal/action`` and helm v4's flag rules, not from the code under test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fluxwarden.controllers.helm import commands
from fluxwarden.controllers.helm.api import HelmReleaseSpec

CHART, VALUES = Path("/w/chart"), Path("/w/values.yaml")


def spec(**fields: Any) -> HelmReleaseSpec:
    chart = {"chart": {"spec": {"chart": "c", "sourceRef": {"kind": "HelmRepository", "name": "r"}}}}
    obj = {"metadata": {"name": "app", "namespace": "cfg"}, "spec": {"interval": "1m", **chart, **fields}}
    return HelmReleaseSpec.of(obj)


def test_install_applies_server_side_forcing_conflicts_and_takes_ownership() -> None:
    args = commands.install(spec(targetNamespace="web"), CHART, VALUES, [], replace=False)
    assert args[:3] == ["install", "web-app", str(CHART)]
    assert args[args.index("--namespace") : args.index("--namespace") + 2] == ["--namespace", "web"]
    assert {"--server-side=true", "--force-conflicts", "--take-ownership", "--wait=watcher"} <= set(args)
    assert "--timeout" in args and args[args.index("--timeout") + 1] == "300s"


def test_install_client_side_when_asked_never_forces_conflicts() -> None:
    args = commands.install(spec(install={"serverSideApply": False}), CHART, VALUES, [], replace=False)
    assert "--server-side=false" in args and "--force-conflicts" not in args


@pytest.mark.parametrize(
    ("mode", "last", "server_side"),
    [(None, "ssa", True), (None, "csa", False), ("auto", "csa", False), ("enabled", "csa", True),
     ("disabled", "ssa", False)],
)  # fmt: skip
def test_upgrade_server_side_follows_the_mode_or_the_last_release(
    mode: str | None, last: str, server_side: bool
) -> None:
    block = {"serverSideApply": mode} if mode else {}
    args = commands.upgrade(spec(upgrade={**block, "force": True}), CHART, VALUES, [], last)
    assert (f"--server-side={str(server_side).lower()}" in args) is True
    # helm v4 refuses --force-replace beside --force-conflicts; Flux replaces only client-side.
    assert ("--force-conflicts" in args) is server_side
    assert ("--force-replace" in args) is (not server_side)


def test_rollback_targets_the_version_and_forces_conflicts_server_side() -> None:
    args = commands.rollback(spec(rollback={"force": True}), 3, "ssa")
    assert args[:3] == ["rollback", "app", "3"]
    assert "--force-conflicts" in args and "--force-replace" not in args


def test_no_values_or_secret_ever_reach_the_command_line() -> None:
    args = commands.upgrade(spec(values={"password": "s3cr3t"}), CHART, VALUES, ["--post-renderer", "x"], "ssa")
    assert not any("s3cr3t" in a for a in args)
    assert str(VALUES) in args


def test_disable_wait_keeps_only_hook_waits_and_test_filters_pass_through() -> None:
    args = commands.install(spec(install={"disableWait": True}), CHART, VALUES, [], replace=True)
    assert "--wait=hookOnly" in args and "--wait-for-jobs" not in args and "--replace" in args
    test = commands.test(spec(test={"enable": True, "filters": [{"name": "a"}, {"name": "b", "exclude": True}]}))
    assert test[test.index("--filter") + 1] == "name=a" and "!name=b" in test
