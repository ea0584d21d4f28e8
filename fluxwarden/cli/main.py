"""Entry point of the ``fluxwarden`` console script: parse, dispatch, turn errors into exit codes."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fluxwarden import __version__
from fluxwarden.errors import UsageError

# Each top-level command and the fluxwarden.cli module that registers it. Only the module of the command
# asked for is imported: `fluxwarden serve` or `push` would otherwise pay for the controllers' imports
# (the kubernetes client, boto3, Azure's SDK), about one second of CPU per start.
COMMANDS: dict[str, str] = {
    "serve": "serve",
    "review": "review",
    "check": "check",
    "fix": "fix",
    "certs": "certs",
    "manifests": "manifests",
    "install": "install",
    "controllers": "controllers",
    "get": "flux",
    "reconcile": "flux",
    "suspend": "flux",
    "resume": "flux",
    "create": "create_fluxconfig",
    "delete": "delete_fluxconfig",
    "push": "push_artifact",
}


def _command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first word), or None (no command, ``--help``, a typo)."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if first in COMMANDS else None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``'s command; every command when argv is None or names none (so help lists all)."""
    command = _command(argv) if argv is not None else None
    wanted = [COMMANDS[command]] if command else list(dict.fromkeys(COMMANDS.values()))
    parser = argparse.ArgumentParser(
        prog="fluxwarden", description="Flux multi-tenancy: admission webhook, reconciler and offline checks."
    )
    parser.add_argument("--version", action="version", version=f"fluxwarden {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in wanted:
        importlib.import_module(f"fluxwarden.cli.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        code: int = args.func(args)
    except UsageError as exc:
        print(f"fluxwarden: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
