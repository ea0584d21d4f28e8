"""Which files of a source tree go into an artifact: Flux's ignore rules, in gitignore syntax.

Owns the default exclusions, the loading of ``.sourceignore`` files and ``spec.ignore``, and the
decision ``ignored(path)``. Called by ``artifact.build_tarball`` (and by the source reconcilers,
which load the rules for a checkout). Pure apart from ``IgnoreRules.load``, which reads the
``.sourceignore`` files of a tree.

Behaviour follows Flux's ``pkg/sourceignore`` as the source-controller uses it:

- the VCS patterns always apply;
- the other defaults (file extensions, CI configs, tool configs) apply only when the user gave no
  pattern at all: any ``.sourceignore`` line or ``spec.ignore`` line replaces them (Flux's docs:
  "``.spec.ignore`` overrides the default exclusion list");
- ``.sourceignore`` files are read from every directory (``.git`` excepted), parents before
  children, each pattern relative to its own directory as in ``.gitignore``;
- ``spec.ignore`` comes last, so its negations (``!pattern``) can re-include anything above.

The last matching pattern wins, and every path is judged on its own full path: a negation can
re-include a file inside an excluded directory (go-git's matcher, which Flux uses, does the same).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pathspec import GitIgnoreSpec

IGNORE_FILE = ".sourceignore"

VCS_PATTERNS: tuple[str, ...] = (".git/", ".gitignore", ".gitmodules", ".gitattributes")
EXTENSION_PATTERNS: tuple[str, ...] = ("*.jpg", "*.jpeg", "*.gif", "*.png", "*.wmv", "*.flv", "*.tar.gz", "*.zip")
CI_PATTERNS: tuple[str, ...] = (
    ".github/",
    ".circleci/",
    ".travis.yml",
    ".gitlab-ci.yml",
    "appveyor.yml",
    ".drone.yml",
    "cloudbuild.yaml",
    "codeship-services.yml",
    "codeship-steps.yml",
)
EXTRA_PATTERNS: tuple[str, ...] = ("**/.goreleaser.yml", "**/.sops.yaml", "**/.flux.yaml")
DEFAULT_PATTERNS: tuple[str, ...] = EXTENSION_PATTERNS + CI_PATTERNS + EXTRA_PATTERNS

_GLOB_SPECIALS = "\\*?["


def pattern_lines(text: str) -> list[str]:
    """The pattern lines of an ignore file: no blank lines, no comments, no carriage returns."""
    lines = []
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if line.strip() and not line.startswith("#"):
            lines.append(line)
    return lines


def scope_pattern(pattern: str, directory: str) -> str:
    """Rewrite ``pattern`` from an ignore file in ``directory`` (posix, relative) to match from the root.

    gitignore rule: a pattern with a slash at its start or middle is anchored to the file's
    directory; one without may match at any depth below it.
    """
    if not directory:
        return pattern
    negated = pattern.startswith("!")
    body = pattern[1:] if negated else pattern
    prefix = "/".join(_escape_glob(part) for part in directory.split("/"))
    anchored = "/" in body.rstrip().rstrip("/")
    scoped = f"{prefix}/{body.removeprefix('/')}" if anchored else f"{prefix}/**/{body}"
    return f"!{scoped}" if negated else scoped


def _escape_glob(name: str) -> str:
    # A directory literally named "a*b" must not turn into a wildcard once it prefixes a pattern.
    return "".join(f"\\{ch}" if ch in _GLOB_SPECIALS else ch for ch in name)


@dataclass(frozen=True)
class IgnoreRules:
    """An ordered list of root-relative gitignore patterns; the last match decides."""

    patterns: tuple[str, ...]
    _spec: GitIgnoreSpec = field(init=False, repr=False, compare=False)
    _has_negations: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_spec", GitIgnoreSpec.from_lines(self.patterns))
        object.__setattr__(self, "_has_negations", any(p.startswith("!") for p in self.patterns))

    @classmethod
    def from_user_patterns(cls, user_patterns: Iterable[str]) -> IgnoreRules:
        """Rules from root-relative user patterns, with Flux's defaults placed in front of them."""
        user = tuple(user_patterns)
        defaults = VCS_PATTERNS if user else VCS_PATTERNS + DEFAULT_PATTERNS
        return cls(defaults + user)

    @classmethod
    def load(cls, root: Path, spec_ignore: str | None = None) -> IgnoreRules:
        """Rules for the tree at ``root``: defaults, every ``.sourceignore``, then ``spec_ignore``."""
        user = [
            scope_pattern(line, directory)
            for directory, text in _sourceignore_files(root)
            for line in pattern_lines(text)
        ]
        if spec_ignore:
            user.extend(pattern_lines(spec_ignore))
        return cls.from_user_patterns(user)

    def ignored(self, rel_path: str, is_dir: bool) -> bool:
        """Whether the root-relative posix path ``rel_path`` is excluded from the artifact."""
        path = rel_path.strip("/")
        if not path:
            return False
        return bool(self._spec.check_file(f"{path}/" if is_dir else path).include)

    def prunable(self, rel_dir: str) -> bool:
        """Whether a walk may skip the directory ``rel_dir`` entirely.

        Only when it is ignored and no negation exists that could re-include something inside.
        """
        return not self._has_negations and self.ignored(rel_dir, is_dir=True)


def _sourceignore_files(root: Path) -> list[tuple[str, str]]:
    """``(directory, text)`` of every regular ``.sourceignore`` under ``root``, parents first, sorted."""
    found: list[tuple[str, str]] = []
    for current, dirnames, filenames in os.walk(root, followlinks=False):
        # Flux does not look inside .git; sorting in place fixes the walk order.
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        if IGNORE_FILE not in filenames:
            continue
        candidate = Path(current, IGNORE_FILE)
        if candidate.is_symlink() or not candidate.is_file():
            continue  # a symlinked ignore file could read text from outside the tree
        rel = Path(current).relative_to(root).as_posix()
        found.append(("" if rel == "." else rel, candidate.read_text(encoding="utf-8", errors="replace")))
    return found
