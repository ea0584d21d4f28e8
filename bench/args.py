"""The arguments every cluster benchmark shares, as one argparse parent: a run's bounds and code, the
controller's knobs, and the numbers of objects. Each benchmark adds its own on top (``parents=[...]``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def common(counts: str | None = None, what: str = "objects") -> argparse.ArgumentParser:
    """``--deadline``, ``--code``, ``--idle``, ``--settle``, ``--concurrency``, ``--enforce``; with ``counts``
    (its default, e.g. ``"100,1000"``), ``--counts`` too, which ``parse`` turns into ``args.count_list``."""
    parser = argparse.ArgumentParser(add_help=False)
    if counts is not None:
        parser.add_argument("--counts", default=counts, help=f"numbers of {what}, one run each (default {counts})")
    parser.add_argument("--deadline", type=float, default=3600.0, help="abort the whole run after this many s")
    parser.add_argument(
        "--code",
        default="worktree",
        help="worktree: fluxwarden as it is in this tree (default); copy: a copy of the tree taken at the start, "
        "so others' edits during the run do not reach the controllers started later; or a git revision",
    )
    parser.add_argument("--idle", type=float, default=15.0, help="seconds of idle controller CPU measured first")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after a phase before the next")
    parser.add_argument("--concurrency", type=int, default=4, help="controller workers (CLI default 4)")
    switch(
        parser,
        "--enforce",
        True,
        "tenancy enforced, applies impersonate flux-applier (default); --no-enforce applies as the controller",
    )
    return parser


def switch(parser: argparse.ArgumentParser, name: str, default: bool, help: str) -> None:
    """``--name`` / ``--no-name``, on by ``default`` or not."""
    parser.add_argument(name, action=argparse.BooleanOptionalAction, default=default, help=help)


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, and ``args.count_list``: the sorted distinct positive N of ``--counts``."""
    args = parser.parse_args(argv)
    if getattr(args, "counts", None) is not None:
        found = sorted({int(c) for c in args.counts.split(",") if c.strip()})
        if not found or found[0] < 1:
            parser.error("--counts needs positive integers")
        args.count_list = found
    return args
