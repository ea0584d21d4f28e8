"""``fluxwarden fix PATH...``: rewrite a repository's Flux objects so that they pass the tenancy rules.

The fixes themselves live in ``tenancy``: :func:`~fluxwarden.tenancy.upgrade` rewrites deprecated API
versions, :func:`~fluxwarden.tenancy.legacy_fix` moves every Flux object into the configuration
namespace (over all files at once: references cross files). This module maps the fixed objects back
onto the files. Documents are loaded with ruamel.yaml round-trip and each difference is applied to
the loaded structure as a minimal edit (set, rename or delete a key), so comments, key order and
quoting survive; a document that nothing changed in is written back byte for byte, a file that
nothing changed in is not written at all.

Output: ``file:line: note`` per change. Exit codes: 0 nothing to fix, 1 changes made (or, with
``--dry-run``/``--diff``, to make), 2 some input was unreadable or could not be rewritten faithfully;
then no file is written at all, since the move must see every object (references cross files).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from fluxwarden.cli.check import Report, unreadable, yaml_files
from fluxwarden.cli.roundtrip import SourceFile, apply_map, line_of, plain, read_source, render, rendered_faithfully
from fluxwarden.tenancy import DEFAULT_CONFIG_NAMESPACE, Change, Settings, legacy_fix, upgrade
from fluxwarden.tenancy.rules import flux_v1, object_namespace


@dataclass(frozen=True)
class Note:
    """One line of ``fix`` output."""

    file: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}"


# ---- the fix over every file


@dataclass(frozen=True)
class Options:
    config_namespace: str = DEFAULT_CONFIG_NAMESPACE
    upgrade: bool = True
    move: bool = True


def fix_sources(sources: list[SourceFile], options: Options) -> tuple[list[Note], bool]:
    """Apply the fixes to the loaded documents (marking them changed); the notes, and whether any applies.

    Flux v1 objects are reported but not rewritten (and do not count): ``check`` refuses them.
    """
    places = [(source, doc) for source in sources for doc in source.documents if isinstance(doc.data, CommentedMap)]
    originals = [plain(doc.data) for _, doc in places]
    upgrades = [upgrade(obj) if options.upgrade else None for obj in originals]
    objects = [u.obj if u else obj for u, obj in zip(upgrades, originals, strict=True)]
    moves = legacy_fix(objects, options.config_namespace) if options.move else None
    notes = []
    for index, (source, doc) in enumerate(places):
        done = upgrades[index]
        changes: list[Change] = list(done.changes) if done else []
        changes += moves.changes[index] if moves else ()
        for change in changes:
            notes.append(Note(str(source.path), doc.start + line_of(doc.data, change.steps) + 1, str(change)))
        for finding in flux_v1(originals[index], object_namespace(originals[index]), Settings()):
            line = doc.start + line_of(doc.data, ("apiVersion",)) + 1
            notes.append(Note(str(source.path), line, f"{finding.explanation} (not rewritten by fix)"))
        if changes:
            fixed = moves.objects[index] if moves else objects[index]
            apply_map(doc.data, fixed)
            doc.changed = True
            source.faithful = source.faithful and plain(doc.data) == fixed  # the edits must make the fix
    skipped = moves.skipped if moves else ()
    for item in skipped:
        source, doc = places[item.index]
        notes.append(Note(str(source.path), doc.start + line_of(doc.data, ("metadata",)) + 1, str(item)))
    order = {str(source.path): index for index, source in enumerate(sources)}
    notes.sort(key=lambda note: (order[note.file], note.line))  # stable: a field's notes keep their order
    return notes, bool(skipped) or any(doc.changed for _, doc in places)


def _diff(source: SourceFile, text: str) -> str:
    """A unified diff as diff(1) writes it (the file's own line ends kept), for patch(1) and git apply."""
    name = str(source.path)
    old, new = (t.replace("\n", source.newline).splitlines(True) for t in (source.text, text))
    lines = difflib.unified_diff(old, new, name, name)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def run(args: argparse.Namespace) -> int:
    options = Options(args.config_namespace, upgrade=not args.no_upgrade, move=not args.no_move)
    out = sys.stderr if args.diff else sys.stdout  # with --diff, stdout is the patch alone
    errors: list[Report] = []
    sources = []
    for path in yaml_files([Path(p) for p in args.paths]):
        try:
            sources.append(read_source(path))
        except (OSError, UnicodeDecodeError, YAMLError) as exc:
            errors.append(unreadable(str(path), exc))
    notes, to_fix = fix_sources(sources, options)
    for note in notes:
        print(note, file=out)
    rendered = []
    for source in sources:
        if any(doc.changed for doc in source.documents):
            text = render(source)
            if source.faithful and rendered_faithfully(source, text):
                rendered.append((source, text))
            else:
                message = "cannot rewrite this file without changing other content; apply the notes above by hand"
                errors.append(Report(str(source.path), 1, "fix-failed", "error", message))
    if args.diff:
        sys.stdout.write("".join(_diff(source, text) for source, text in rendered))
    # The move must see every object of the repository (references cross files): with one file
    # unreadable or not rewritable, writing the others could point references at nothing.
    elif not args.dry_run and not errors:
        for source, text in rendered:
            source.path.write_text(text.replace("\n", source.newline), encoding="utf-8", newline="")
    for error in errors:
        print(error, file=out)
    if errors and rendered and not (args.dry_run or args.diff):
        print("fluxwarden fix: nothing written; mend the files above (or leave them out of PATH)", file=sys.stderr)
    if errors:
        return 2
    return 1 if to_fix else 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "fix", help="rewrite YAML files: deprecated Flux APIs upgraded, Flux objects moved into the config namespace"
    )
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument(
        "--config-namespace",
        default=DEFAULT_CONFIG_NAMESPACE,
        help=f"the namespace every Flux object moves into (default {DEFAULT_CONFIG_NAMESPACE})",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print what would change, write nothing")
    mode.add_argument("--diff", action="store_true", help="print a unified diff (notes go to stderr), write nothing")
    parser.add_argument("--no-upgrade", action="store_true", help="leave deprecated API versions alone")
    parser.add_argument("--no-move", action="store_true", help="leave namespaces and references alone")
    parser.set_defaults(func=run)
