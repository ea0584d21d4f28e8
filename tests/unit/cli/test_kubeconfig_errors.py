"""A kubeconfig that cannot be used is one line naming the file and the fix, exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CASES = {
    "missing": None,
    "not-a-kubeconfig": "root:x:0:0:root:/root:/bin/bash\n",
    "broken-yaml": "apiVersion: v1\nkind: Config\nclusters: [{\n",
    "empty": "",
}


def run(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env["HOME"] = str(home)
    command = [sys.executable, "-m", "fluxwarden.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", [["get", "ks"], ["delete", "fc", "app"]])
def test_an_unusable_kubeconfig_is_one_line(tmp_path: Path, case: str, command: list[str]) -> None:
    path = tmp_path / "kubeconfig"
    text = CASES[case]
    if text is not None:
        path.write_text(text)
    done = run([*command, "--kubeconfig", str(path)], tmp_path)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"fluxwarden: kubeconfig {path}: ") and line.endswith("(--kubeconfig names the file to use)")


def test_no_kubeconfig_outside_a_cluster_says_how_to_give_one(tmp_path: Path) -> None:
    done = run(["get", "ks"], tmp_path)  # an empty HOME: no ~/.kube/config, and no service account
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("fluxwarden: no kubeconfig (") and line.endswith("pass --kubeconfig or set KUBECONFIG")
