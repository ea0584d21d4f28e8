"""The Dockerfile's ``tools`` stage, run without Docker (none runs here): its own WORKDIR, COPY, ENV and
RUN lines, in order, with ``/src`` and ``/out`` moved under a temporary directory, against the real Go
toolchain and module cache. The helm and kustomize it builds must be the pinned ones.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.manifests import ROOT


def _stage(name: str) -> list[tuple[str, str]]:
    """``(instruction, arguments)`` of stage ``name``, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    steps, inside = [], False
    for line in lines:
        instruction, _, rest = line.partition(" ")
        if instruction == "FROM":
            inside = rest.split()[-1] == name and " AS " in f" {rest} "
            continue
        if inside:
            steps.append((instruction, rest))
    return steps


def _pinned(module: str, path: str) -> str:
    (version,) = re.findall(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)", (ROOT / path).read_text(), re.M)
    return str(version)


@pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain (tests/cluster/build.sh does too)")
def test_the_tools_stage_builds_the_pinned_helm_and_kustomize(tmp_path: Path) -> None:
    steps = _stage("tools")
    assert steps, "the Dockerfile has a tools stage"
    env = {**os.environ}
    workdir = tmp_path
    for instruction, rest in steps:
        rest = rest.replace("/src", str(tmp_path / "src")).replace("/out", str(tmp_path / "out"))
        if instruction == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
        elif instruction == "WORKDIR":
            workdir = Path(rest)
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            *sources, destination = shlex.split(rest)
            for source in sources:
                target = workdir / destination
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, dirs_exist_ok=True)
                else:
                    shutil.copy(ROOT / source, target)
        elif instruction == "RUN":
            done = subprocess.run(["sh", "-c", rest], cwd=workdir, env=env, capture_output=True, text=True,
                                  timeout=900, check=False)  # fmt: skip
            assert done.returncode == 0, f"RUN {rest}\n{done.stderr}"
        else:
            raise AssertionError(f"the tools stage uses {instruction}, which this test cannot run")

    helm = subprocess.run([str(tmp_path / "out" / "helm"), "version", "--short"], capture_output=True, text=True)
    assert helm.stdout.strip() == _pinned("helm.sh/helm/v4", "tests/helm/go.mod"), helm.stdout
    kustomize = subprocess.run([str(tmp_path / "out" / "kustomize"), "version"], capture_output=True, text=True)
    assert kustomize.stdout.strip() == _pinned("sigs.k8s.io/kustomize/kustomize/v5", "tests/cluster/go.mod")
