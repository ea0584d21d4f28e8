"""``fluxwarden fix``: files rewritten with comments kept, output, exit codes, --dry-run and --diff."""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import pytest
import yaml

from fluxwarden.cli.main import main

EXAMPLES = Path(__file__).parents[3] / "examples"

LEGACY = """\
# The nginx release, as written before multi-tenancy.
apiVersion: source.toolkit.fluxcd.io/v1beta2
kind: HelmRepository
metadata:
  name: bitnami
  namespace: flux-system  # where the platform keeps it
spec:
  interval: 10m
  url: "https://charts.bitnami.com/bitnami"
---
# the release itself
apiVersion: helm.toolkit.fluxcd.io/v2beta1
kind: HelmRelease
metadata:
  name: nginx
  namespace: nginx
spec:
  interval: 5m
  # the chart, from bitnami
  chart:
    spec:
      chart: nginx
      valuesFile: values-prod.yaml  # production values
      sourceRef:
        kind: HelmRepository
        name: bitnami
        namespace: flux-system
  values:
    replicaCount: 2  # two is enough
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings,   namespace: nginx}
data:
  key:   'value'    # odd spacing, kept
"""

FIXED = """\
# The nginx release, as written before multi-tenancy.
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: bitnami
  namespace: cluster-config  # where the platform keeps it
spec:
  interval: 10m
  url: "https://charts.bitnami.com/bitnami"
---
# the release itself
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: nginx
  namespace: cluster-config
spec:
  interval: 5m
  targetNamespace: nginx
  # the chart, from bitnami
  chart:
    spec:
      chart: nginx
      valuesFiles:  # production values
      - values-prod.yaml
      sourceRef:
        kind: HelmRepository
        name: bitnami
        namespace: cluster-config
  values:
    replicaCount: 2  # two is enough
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings,   namespace: nginx}
data:
  key:   'value'    # odd spacing, kept
"""

NOTES = [
    "HelmRepository flux-system/bitnami: apiVersion source.toolkit.fluxcd.io/v1beta2 -> source.toolkit.fluxcd.io/v1",
    "HelmRepository flux-system/bitnami: moved to namespace cluster-config (was flux-system)",
    "HelmRelease nginx/nginx: apiVersion helm.toolkit.fluxcd.io/v2beta1 -> helm.toolkit.fluxcd.io/v2",
    "HelmRelease nginx/nginx: moved to namespace cluster-config (was nginx)",
    "HelmRelease nginx/nginx: set spec.targetNamespace to nginx (where the workload was)",
    "HelmRelease nginx/nginx: spec.chart.spec.valuesFile -> spec.chart.spec.valuesFiles[0]",
    "HelmRelease nginx/nginx: set spec.chart.spec.sourceRef.namespace to cluster-config (was flux-system)",
]
NOTE_LINES = [2, 6, 12, 16, 17, 23, 27]

BROKEN = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [unclosed\n"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["fix", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def expected_notes(path: Path) -> list[str]:
    return [f"{path}:{line}: {note}" for line, note in zip(NOTE_LINES, NOTES, strict=True)]


def test_fix_rewrites_the_file_keeping_comments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nginx.yaml"
    path.write_text(LEGACY)
    code, out, err = run(capsys, str(tmp_path))
    assert (code, err) == (1, "")
    assert out.splitlines() == expected_notes(path)
    assert path.read_text() == FIXED

    assert run(capsys, str(tmp_path)) == (0, "", ""), "fixing twice is fixing once"
    assert path.read_text() == FIXED
    assert main(["check", str(tmp_path)]) == 0, "check passes after fix"


def test_reference_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(EXAMPLES / "legacy-helmrelease.yaml", tmp_path)
    assert run(capsys, str(tmp_path))[0] == 1
    fixed = (tmp_path / "legacy-helmrelease.yaml").read_text()
    assert list(yaml.safe_load_all(fixed)) == list(
        yaml.safe_load_all((EXAMPLES / "fixed-helmrelease.yaml").read_text())
    )
    assert fixed.startswith("# TENANCY.md's reference example, before the fix")


def test_references_are_followed_across_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, release = LEGACY.split("---\n")[:2]
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "bitnami.yaml").write_text(source)
    (tmp_path / "release.yml").write_text(release)
    code, out, _ = run(capsys, "--no-upgrade", str(tmp_path))
    assert code == 1
    assert [line.partition(": ")[2] for line in out.splitlines()] == [
        "HelmRelease nginx/nginx: moved to namespace cluster-config (was nginx)",
        "HelmRelease nginx/nginx: set spec.targetNamespace to nginx (where the workload was)",
        "HelmRelease nginx/nginx: set spec.chart.spec.sourceRef.namespace to cluster-config (was flux-system)",
        "HelmRepository flux-system/bitnami: moved to namespace cluster-config (was flux-system)",
    ]
    assert (
        "  namespace: cluster-config  # where the platform keeps it\n"
        in (tmp_path / "sources/bitnami.yaml").read_text()
    )
    assert main(["check", str(tmp_path)]) == 0


def test_untouched_files_and_documents_are_not_rewritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(FIXED)
    plain = tmp_path / "plain.yaml"
    plain.write_text("---\n# only Kubernetes objects\napiVersion: v1\nkind: Namespace\nmetadata: {name: nginx}\n...\n")
    os.utime(fixed, ns=(0, 0))
    os.utime(plain, ns=(0, 0))
    assert run(capsys, str(tmp_path)) == (0, "", "")
    assert fixed.stat().st_mtime_ns == 0 and plain.stat().st_mtime_ns == 0


def test_multi_document_file_only_changed_documents_are_redumped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = "apiVersion:   v1\nkind: Secret\nstringData: {a:   1,   b: ~}   # spacing and ~ kept\n"
    release = LEGACY.split("---\n")[1]
    path = tmp_path / "all.yaml"
    path.write_text(f"---\n{odd}---\n{release}---\n{odd}...\n---\n# empty document\n")
    assert run(capsys, str(path))[0] == 1
    text = path.read_text()
    assert text.startswith(f"---\n{odd}---\n# the release itself\napiVersion: helm.toolkit.fluxcd.io/v2\n")
    assert text.endswith(f"---\n{odd}...\n---\n# empty document\n")


def test_broken_file_is_left_as_it_was_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-broken.yaml").write_text(BROKEN)
    (tmp_path / "b-nginx.yaml").write_text(LEGACY)
    code, out, err = run(capsys, str(tmp_path))
    assert code == 2
    assert out.splitlines() == [
        *expected_notes(tmp_path / "b-nginx.yaml"),
        f"{tmp_path}/a-broken.yaml:4: unreadable: invalid YAML: expected ',' or ']', but got '<stream end>'; "
        "fix the file so it parses",
    ]
    assert "nothing written" in err
    assert (tmp_path / "a-broken.yaml").read_text() == BROKEN
    assert (tmp_path / "b-nginx.yaml").read_text() == LEGACY, "a move must see every object, or none is made"


def test_unreadable_file_alone_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(tmp_path / "missing.yaml"))
    assert (code, err) == (2, "")
    assert (
        out == f"{tmp_path}/missing.yaml:1: unreadable: No such file or directory; check the path and its permissions\n"
    )


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nginx.yaml"
    path.write_text(LEGACY)
    code, out, err = run(capsys, "--dry-run", str(path))
    assert (code, err) == (1, "")
    assert out.splitlines() == expected_notes(path)
    assert path.read_text() == LEGACY


def test_diff_prints_a_unified_diff_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nginx.yaml"
    path.write_text(LEGACY)
    code, out, err = run(capsys, "--diff", str(path))
    assert code == 1
    assert out == "".join(difflib.unified_diff(LEGACY.splitlines(True), FIXED.splitlines(True), str(path), str(path)))
    assert err.splitlines() == expected_notes(path), "notes go to stderr: stdout is the patch alone"
    assert path.read_text() == LEGACY


def test_dry_run_and_diff_exclude_each_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["fix", "--dry-run", "--diff", str(tmp_path)])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_no_upgrade_and_no_move(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nginx.yaml"
    path.write_text(LEGACY)
    code, out, _ = run(capsys, "--dry-run", "--no-move", str(path))
    assert code == 1 and "namespace" not in out and "apiVersion" in out
    code, out, _ = run(capsys, "--dry-run", "--no-upgrade", str(path))
    assert code == 1 and "apiVersion" not in out and "valuesFile" not in out and "moved" in out
    assert run(capsys, "--no-upgrade", "--no-move", str(path)) == (0, "", "")
    assert path.read_text() == LEGACY


def test_another_config_namespace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nginx.yaml"
    path.write_text(LEGACY)
    assert run(capsys, "--config-namespace", "tenant-a", str(path))[0] == 1
    assert path.read_text() == FIXED.replace("cluster-config", "tenant-a")


def test_flux_v1_is_reported_not_rewritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.yaml"
    text = "apiVersion: helm.fluxcd.io/v1\nkind: HelmRelease\nmetadata: {name: web, namespace: web}\n"
    path.write_text(text)
    code, out, _ = run(capsys, str(path))
    assert code == 0, "nothing fix can do: check refuses it"
    assert out.startswith(f"{path}:1: HelmRelease web/web: apiVersion helm.fluxcd.io/v1 is Flux v1")
    assert out.rstrip().endswith("(not rewritten by fix)")
    assert path.read_text() == text


def test_name_clash_is_reported_and_left(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "repos.yaml"
    repo = "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: apps\n  namespace: {}\n"
    text = repo.format("team-a") + "---\n" + repo.format("team-b")
    path.write_text(text)
    code, out, _ = run(capsys, str(path))
    assert code == 1
    assert out.splitlines() == [
        f"{path}:3: GitRepository team-a/apps: not moved: GitRepository apps exists in namespaces team-a, team-b; "
        "rename one so that both fit in cluster-config, then fix again",
        f"{path}:9: GitRepository team-b/apps: not moved: GitRepository apps exists in namespaces team-a, team-b; "
        "rename one so that both fit in cluster-config, then fix again",
    ]
    assert path.read_text() == text


def test_line_ends_and_missing_final_newline_are_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "crlf.yaml"
    source = LEGACY.split("---\n")[0].rstrip("\n")
    path.write_bytes(source.replace("\n", "\r\n").encode())
    assert run(capsys, str(path))[0] == 1
    expected = FIXED.split("---\n")[0].rstrip("\n").replace("\n", "\r\n")
    assert path.read_bytes().decode() == expected


def test_indentation_of_the_file_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ks.yaml"
    path.write_text(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1beta2\n"
        "kind: Kustomization\n"
        "metadata:\n"
        "    name: apps\n"
        "    namespace: cluster-config\n"
        "spec:\n"
        "    interval: 10m\n"
        "    validation: client  # gone in v1\n"
        "    # how the apps are patched\n"
        "    patchesStrategicMerge:\n"
        "      - apiVersion: apps/v1\n"
        "        kind: Deployment\n"
        "        metadata: {name: web}\n"
        "    prune: true\n"
    )
    assert run(capsys, str(path))[0] == 1
    assert path.read_text() == (
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\n"
        "kind: Kustomization\n"
        "metadata:\n"
        "    name: apps\n"
        "    namespace: cluster-config\n"
        "spec:\n"
        "    interval: 10m\n"
        "    # how the apps are patched\n"
        "    patches:\n"
        "      - patch: |\n"
        "            apiVersion: apps/v1\n"
        "            kind: Deployment\n"
        "            metadata:\n"
        "              name: web\n"
        "    prune: true\n"
    )
