"""Where the real test binaries (kube-apiserver, etcd, kustomize, helm) live.

``make test`` passes the directory in ``FLUXWARDEN_TEST_BIN``; without it, ``tests/cluster/build.sh``
builds them (or finds its warm cache at once) and prints the directory, so a bare ``pytest`` works too.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

ENV_VAR = "FLUXWARDEN_TEST_BIN"
CLUSTER_DIR = Path(__file__).resolve().parent.parent / "cluster"
BUILD_SCRIPT = CLUSTER_DIR / "build.sh"
REQUIRED = ("kube-apiserver", "kubectl", "etcd", "kustomize", "helm")


@functools.cache
def binary_dir() -> Path:
    """The directory holding every binary in ``REQUIRED``; builds them if the env var is unset."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        directory = Path(configured)
    else:
        # stderr is left alone: a cold build takes minutes and its progress should be visible.
        result = subprocess.run([str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=True)
        lines = result.stdout.strip().splitlines()
        if not lines:
            raise RuntimeError(f"{BUILD_SCRIPT} printed no directory")
        directory = Path(lines[-1])
    missing = [name for name in REQUIRED if not os.access(directory / name, os.X_OK)]
    if missing:
        raise RuntimeError(f"test binaries missing from {directory}: {', '.join(missing)} (see {BUILD_SCRIPT})")
    return directory


def prepend_to_path(directory: Path) -> None:
    """Put ``directory`` first on PATH (once), so subprocesses find our kustomize and helm."""
    entries = os.environ.get("PATH", "").split(os.pathsep)
    if str(directory) not in entries:
        os.environ["PATH"] = os.pathsep.join([str(directory), *entries])


def kubernetes_version() -> str:
    """The ``k8s.io/kubernetes`` version pinned in tests/cluster/go.mod, e.g. ``v1.34.4``."""
    for line in (CLUSTER_DIR / "go.mod").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "k8s.io/kubernetes" and fields[1].startswith("v"):
            return fields[1]
    raise RuntimeError(f"k8s.io/kubernetes is not required in {CLUSTER_DIR / 'go.mod'}")
