"""The console script imports only the modules of the command it runs."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from fluxwarden.cli.main import build_parser


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    [subparsers] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(subparsers.choices)


ALL = _commands(build_parser())


def test_the_full_parser_has_every_command() -> None:
    assert {"serve", "check", "controllers", "get", "reconcile", "delete", "push"} <= ALL


@pytest.mark.parametrize("command", sorted(ALL))
def test_each_commands_own_parser_has_it(command: str) -> None:
    parser = build_parser([command, "--help"])
    assert command in _commands(parser)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([command, "--help"])
    assert exit_.value.code == 0


def test_an_unknown_command_is_refused_with_the_whole_list(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser(["bogus"]).parse_args(["bogus"])
    assert exit_.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["serve", "--help"], ["push", "--help"]])
def test_the_webhook_and_push_do_not_import_the_controllers(argv: list[str]) -> None:
    probe = (
        "import sys\nfrom fluxwarden.cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print('kubernetes' in sys.modules, 'fluxwarden.controllers.app' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.splitlines()[-1] == "False False", result.stdout
