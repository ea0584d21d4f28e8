"""``fluxwarden check PATH...``: the tenancy rules over a repository's YAML, offline.

Every finding is reported as ``file:line: rule: message`` (or JSON), at the line of the field it is
about. Exit codes: 0 clean (warnings allowed), 1 a denial was found, 2 some input was unreadable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from fluxwarden.cli.options import add_settings_flags, settings_from
from fluxwarden.tenancy import Settings, evaluate, remote_bases
from fluxwarden.tenancy.findings import one_line
from fluxwarden.tenancy.kustomization import KUSTOMIZATION_FILES

YAML_SUFFIXES = (".yaml", ".yml")
SKIP_DIRS = frozenset({".git", "node_modules", ".venv"})


@dataclass(frozen=True)
class Report:
    """One line of ``check`` output."""

    file: str
    line: int
    rule: str
    severity: str
    message: str

    def __str__(self) -> str:
        return one_line(f"{self.file}:{self.line}: {self.rule}: {self.message}", 1024)


def yaml_files(paths: list[Path]) -> Iterator[Path]:
    """The YAML files under ``paths`` in a stable order; a file named on the command line is kept."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not SKIP_DIRS.intersection(child.parts) and _is_yaml(child):
                    yield child
        else:
            yield path


def _is_yaml(path: Path) -> bool:
    return path.suffix in YAML_SUFFIXES or path.name in KUSTOMIZATION_FILES


def _line_of(node: yaml.Node, pointer: str) -> int:
    """The 1-based line of the field at JSON Pointer ``pointer`` (its key), or of the nearest parent."""
    line = node.start_mark.line
    for step in [s.replace("~1", "/").replace("~0", "~") for s in pointer.split("/")[1:]]:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if getattr(k, "value", None) == step), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line, pair[1]
        elif isinstance(node, yaml.SequenceNode) and step.isdigit() and int(step) < len(node.value):
            node = node.value[int(step)]
            line = node.start_mark.line
        else:
            break
    return line + 1


def documents(text: str) -> Iterator[tuple[yaml.Node, Any]]:
    """Each document's node (for line numbers) and its value; raises ``yaml.YAMLError``."""
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                yield node, loader.construct_document(node)
    finally:
        loader.dispose()


def check_text(name: str, text: str, settings: Settings) -> list[Report]:
    """Findings of one file's text; raises ``yaml.YAMLError`` for text that is not YAML."""
    reports = []
    if Path(name).name in KUSTOMIZATION_FILES and settings.enforce and settings.block_remote_bases:
        for base in remote_bases(text):
            reports.append(Report(name, base.line, "remote-base", "deny", base.explanation))
    for node, obj in documents(text):
        if not isinstance(obj, dict):
            continue
        for finding in evaluate(obj, settings):
            reports.append(
                Report(name, _line_of(node, finding.pointer), finding.rule, finding.severity, finding.explanation)
            )
    return reports


def unreadable(name: str, exc: Exception) -> Report:
    if isinstance(exc, OSError):
        return Report(name, 1, "unreadable", "error", f"{exc.strerror or exc}; check the path and its permissions")
    if isinstance(exc, UnicodeDecodeError):
        return Report(name, 1, "unreadable", "error", "not UTF-8 text; save the file as UTF-8")
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or exc.__class__.__name__
    line = mark.line + 1 if mark is not None else 1
    return Report(name, line, "unreadable", "error", f"invalid YAML: {problem}; fix the file so it parses")


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    reports: list[Report] = []
    for path in yaml_files([Path(p) for p in args.paths]):
        try:
            text = path.read_text(encoding="utf-8")
            reports.extend(check_text(str(path), text, settings))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            reports.append(unreadable(str(path), exc))
    if args.output == "json":
        json.dump([asdict(r) for r in reports], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for report in reports:
            print(report)
    if any(r.severity == "error" for r in reports):
        return 2
    return 1 if any(r.severity == "deny" for r in reports) else 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("check", help="check YAML files and directories against the tenancy rules")
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument("--output", "-o", choices=("text", "json"), default="text")
    add_settings_flags(parser)
    parser.set_defaults(func=run)
