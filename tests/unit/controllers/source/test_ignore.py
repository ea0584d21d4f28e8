"""Ignore rules: Flux's defaults, .sourceignore files in any directory, spec.ignore last."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxwarden.controllers.source.ignore import (
    DEFAULT_PATTERNS,
    VCS_PATTERNS,
    IgnoreRules,
    pattern_lines,
    scope_pattern,
)


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


DEFAULTS = IgnoreRules.from_user_patterns([])


@pytest.mark.parametrize(
    ("path", "is_dir", "ignored"),
    [
        (".git", True, True),
        (".git/config", False, True),
        ("sub/.git/HEAD", False, True),
        (".git", False, False),  # a submodule's .git *file* is not the .git/ directory
        (".gitignore", False, True),
        ("deploy/.gitmodules", False, True),
        (".gitattributes", False, True),
        ("logo.png", False, True),
        ("docs/img/a.JPG", False, False),  # gitignore patterns are case-sensitive
        ("docs/img/a.jpeg", False, True),
        ("release.tar.gz", False, True),
        ("bundle.zip", False, True),
        ("movie.flv", False, True),
        (".github/workflows/ci.yaml", False, True),
        (".circleci/config.yml", False, True),
        (".travis.yml", False, True),
        ("sub/.gitlab-ci.yml", False, True),
        ("appveyor.yml", False, True),
        (".drone.yml", False, True),
        ("cloudbuild.yaml", False, True),
        ("codeship-services.yml", False, True),
        ("codeship-steps.yml", False, True),
        (".goreleaser.yml", False, True),
        ("apps/.sops.yaml", False, True),
        ("a/b/.flux.yaml", False, True),
        ("deploy/app.yaml", False, False),
        ("deploy", True, False),
        ("kustomization.yaml", False, False),
        (".sourceignore", False, False),
    ],
)
def test_default_exclusions(path: str, is_dir: bool, ignored: bool) -> None:
    assert DEFAULTS.ignored(path, is_dir) is ignored


def test_default_lists_match_flux_sourceignore() -> None:
    # fluxcd/pkg sourceignore: ExcludeVCS, ExcludeExt, ExcludeCI, ExcludeExtra
    assert ",".join(VCS_PATTERNS) == ".git/,.gitignore,.gitmodules,.gitattributes"
    assert ",".join(DEFAULT_PATTERNS) == ",".join(
        [
            "*.jpg,*.jpeg,*.gif,*.png,*.wmv,*.flv,*.tar.gz,*.zip",
            ".github/,.circleci/,.travis.yml,.gitlab-ci.yml,appveyor.yml,.drone.yml,cloudbuild.yaml,"
            "codeship-services.yml,codeship-steps.yml",
            "**/.goreleaser.yml,**/.sops.yaml,**/.flux.yaml",
        ]
    )


def test_user_patterns_replace_the_defaults_but_not_vcs() -> None:
    rules = IgnoreRules.from_user_patterns(["*.md"])
    assert rules.ignored("README.md", False)
    assert rules.ignored(".git/config", False)
    assert not rules.ignored("logo.png", False)  # Flux: user patterns override the default list
    assert not rules.ignored(".github/workflows/ci.yaml", False)


@pytest.mark.parametrize(
    ("pattern", "directory", "scoped"),
    [
        ("*.md", "", "*.md"),
        ("*.md", "docs", "docs/**/*.md"),
        ("/build", "docs", "docs/build"),
        ("tmp/", "docs", "docs/**/tmp/"),
        ("a/b", "docs/x", "docs/x/a/b"),
        ("**/c", "docs", "docs/**/c"),
        ("!keep.md", "docs", "!docs/**/keep.md"),
        ("!/keep.md", "docs", "!docs/keep.md"),
        ("*.md", "we*ird[1]", "we\\*ird\\[1]/**/*.md"),
    ],
)
def test_scope_pattern(pattern: str, directory: str, scoped: str) -> None:
    assert scope_pattern(pattern, directory) == scoped


def test_pattern_lines_skip_comments_blanks_and_carriage_returns() -> None:
    assert pattern_lines("# comment\r\n\r\n*.md\r\n  \n!x\n\\#literal\n") == ["*.md", "!x", "\\#literal"]


def test_sourceignore_in_subdirectory_is_relative_to_it(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "apps/.sourceignore": "*.txt\n/local.yaml\n",
            "apps/a/notes.txt": "",
            "apps/local.yaml": "",
            "apps/a/local.yaml": "",
            "other/notes.txt": "",
            "local.yaml": "",
        },
    )
    rules = IgnoreRules.load(tmp_path, None)
    assert rules.ignored("apps/a/notes.txt", False)
    assert rules.ignored("apps/local.yaml", False)
    assert not rules.ignored("apps/a/local.yaml", False)  # anchored to apps/
    assert not rules.ignored("other/notes.txt", False)  # outside apps/
    assert not rules.ignored("local.yaml", False)


def test_child_sourceignore_overrides_parent(tmp_path: Path) -> None:
    tree(tmp_path, {".sourceignore": "*.txt\n", "keep/.sourceignore": "!important.txt\n"})
    rules = IgnoreRules.load(tmp_path, None)
    assert rules.ignored("keep/other.txt", False)
    assert not rules.ignored("keep/important.txt", False)
    assert rules.ignored("important.txt", False)


def test_sourceignore_inside_git_dir_is_not_read(tmp_path: Path) -> None:
    tree(tmp_path, {".git/.sourceignore": "*.yaml\n"})
    assert not IgnoreRules.load(tmp_path, None).ignored("app.yaml", False)


def test_spec_ignore_is_applied_last_and_can_negate(tmp_path: Path) -> None:
    tree(tmp_path, {".sourceignore": "*.yaml\n"})
    rules = IgnoreRules.load(tmp_path, "!deploy/*.yaml\n")
    assert rules.ignored("app.yaml", False)
    assert not rules.ignored("deploy/app.yaml", False)


def test_spec_ignore_flux_documented_example(tmp_path: Path) -> None:
    spec = "# exclude all\n/*\n# include deploy dir\n!/deploy\n# exclude extensions from deploy dir\n/deploy/**/*.md\n"
    rules = IgnoreRules.load(tmp_path, spec)
    assert rules.ignored("src/main.go", False)
    assert rules.ignored("README.md", False)
    assert not rules.ignored("deploy/app/deployment.yaml", False)
    assert rules.ignored("deploy/app/README.md", False)


def test_spec_ignore_can_reinclude_a_vcs_default(tmp_path: Path) -> None:
    assert not IgnoreRules.load(tmp_path, "!.gitignore").ignored(".gitignore", False)


def test_empty_spec_ignore_keeps_the_defaults(tmp_path: Path) -> None:
    assert IgnoreRules.load(tmp_path, "").ignored("logo.png", False)


def test_prunable_only_without_negations() -> None:
    assert DEFAULTS.prunable(".git")
    assert not DEFAULTS.prunable("deploy")
    assert not IgnoreRules.from_user_patterns(["/*", "!/deploy"]).prunable(".git")
