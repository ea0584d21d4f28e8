"""``fluxwarden check``: output, line numbers, exit codes, over files that mix good, bad and broken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fluxwarden.cli.main import main

EXAMPLES = Path(__file__).parents[3] / "examples"

KUSTOMIZATION_CROSS = """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: team-a
spec:
  interval: 10m
  sourceRef:
    kind: GitRepository
    name: platform
    namespace: flux-system
"""

GOOD = """\
# a comment, then two documents
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: apps, namespace: team-a}
spec: {url: https://example.com/apps.git, interval: 1m}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: plain, namespace: team-a}
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["check", *args])
    return code, capsys.readouterr().out


def test_clean_files_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    assert run(capsys, str(tmp_path)) == (0, "")


def test_finding_is_reported_at_the_line_of_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ks.yaml").write_text("---\n" + GOOD + "---\n" + KUSTOMIZATION_CROSS)
    code, out = run(capsys, str(tmp_path))
    line = GOOD.count("\n") + 2 + KUSTOMIZATION_CROSS.splitlines().index("  sourceRef:") + 1
    assert code == 1
    assert out.splitlines() == [
        f"{tmp_path}/ks.yaml:{line}: cross-namespace-ref: Kustomization team-a/apps: spec.sourceRef points to "
        "GitRepository flux-system/platform; move the source into namespace team-a (or run 'fluxwarden fix') — "
        "cross-namespace references are blocked"
    ]


def test_reference_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, str(EXAMPLES / "legacy-helmrelease.yaml"))
    assert code == 1 and "HelmRepository flux-system/bitnami" in out
    assert run(capsys, str(EXAMPLES / "fixed-helmrelease.yaml")) == (0, "")
    assert run(capsys, "--no-enforce", str(EXAMPLES / "legacy-helmrelease.yaml")) == (0, "")


def test_directory_mixing_valid_invalid_and_broken_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-good.yaml").write_text(GOOD)
    (tmp_path / "b-bad.yml").write_text(KUSTOMIZATION_CROSS)
    (tmp_path / "c-broken.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [unclosed\n")
    nested = tmp_path / "apps" / "base"
    nested.mkdir(parents=True)
    (nested / "kustomization.yaml").write_text("resources:\n- ../../b-bad.yml\n- https://example.com/remote.yaml\n")
    (nested / "old.yaml").write_text(
        KUSTOMIZATION_CROSS.replace("/v1\n", "/v1beta2\n", 1).replace("team-a", "flux-system")
    )
    (tmp_path / "notes.txt").write_text("not yaml: [")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.yaml").write_text("broken: [")

    code, out = run(capsys, str(tmp_path))
    lines = out.splitlines()
    assert code == 2, "unreadable input wins over findings"
    assert [line.split(": ")[1] for line in lines] == [
        "remote-base", "deprecated-api", "cross-namespace-ref", "unreadable",
    ]  # fmt: skip
    assert lines[0].startswith(f"{nested}/kustomization.yaml:3: remote-base:")
    assert lines[3].startswith(f"{tmp_path}/c-broken.yaml:4: unreadable: invalid YAML")

    code, out = run(capsys, "--output", "json", str(tmp_path))
    reports = json.loads(out)
    assert code == 2
    assert {r["rule"]: r["severity"] for r in reports} == {
        "deprecated-api": "warn", "remote-base": "deny", "cross-namespace-ref": "deny", "unreadable": "error",
    }  # fmt: skip


def test_warnings_alone_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "old.yaml").write_text(
        KUSTOMIZATION_CROSS.replace("/v1\n", "/v1beta2\n", 1).replace("team-a", "flux-system")
    )
    code, out = run(capsys, str(tmp_path))
    assert code == 0 and "deprecated-api" in out


def test_missing_path_and_non_utf8_are_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    code, out = run(capsys, str(tmp_path / "missing.yaml"), str(tmp_path / "latin1.yaml"))
    assert code == 2
    assert "missing.yaml:1: unreadable: No such file or directory" in out
    assert "latin1.yaml:1: unreadable: not UTF-8 text" in out


def test_settings_from_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ks.yaml").write_text(KUSTOMIZATION_CROSS)
    monkeypatch.setenv("FLUXWARDEN_ENFORCE", "false")
    assert run(capsys, str(tmp_path))[0] == 0
    monkeypatch.setenv("FLUXWARDEN_ENFORCE", "maybe")
    assert main(["check", str(tmp_path)]) == 2
    assert "FLUXWARDEN_ENFORCE='maybe' is not a boolean" in capsys.readouterr().err
    monkeypatch.setenv("FLUXWARDEN_ENFORCE", "true")
    monkeypatch.setenv("FLUXWARDEN_EXEMPT_NAMESPACES", "team-a")
    assert run(capsys, str(tmp_path))[0] == 0
