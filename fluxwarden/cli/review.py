"""``fluxwarden review [--mutate] FILE|-``: answer one AdmissionReview as the webhook would.

Prints the response AdmissionReview as JSON. Exit 0 allowed, 1 denied, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fluxwarden.cli.options import add_settings_flags, settings_from
from fluxwarden.webhook.errors import BadReview
from fluxwarden.webhook.review import decide, parse_review


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    source = "standard input" if args.file == "-" else args.file
    try:
        body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"fluxwarden review: cannot read {source}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        decision = decide(parse_review(body), settings, mutating=args.mutate)
    except BadReview as exc:
        print(f"fluxwarden review: {source}: {exc.detail}", file=sys.stderr)
        return 2
    json.dump(decision.to_review(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if decision.allowed else 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("review", help="answer one AdmissionReview (a file, or - for stdin)")
    parser.add_argument("file", metavar="FILE|-")
    parser.add_argument("--mutate", action="store_true", help="answer as the mutating webhook (JSON Patch)")
    add_settings_flags(parser)
    parser.set_defaults(func=run)
