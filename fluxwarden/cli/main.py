"""Entry point of the ``fluxwarden`` console script: parse, dispatch, turn errors into exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fluxwarden import __version__
from fluxwarden.cli import (
    certs,
    check,
    controllers,
    create_fluxconfig,
    delete_fluxconfig,
    fix,
    flux,
    install,
    manifests,
    push_artifact,
    review,
    serve,
)
from fluxwarden.cli.options import UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fluxwarden", description="Flux multi-tenancy: admission webhook, reconciler and offline checks."
    )
    parser.add_argument("--version", action="version", version=f"fluxwarden {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (serve, review, check, fix, certs, manifests, install, controllers, flux, create_fluxconfig):
        module.register(commands)
    delete_fluxconfig.register(commands, flux.guarded)
    push_artifact.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
