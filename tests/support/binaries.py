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


def cache_dir(env_var: str, script: Path, error: type[Exception] = RuntimeError) -> Path:
    """``$env_var`` when set; otherwise run ``script`` (which builds or fetches into its cache, or finds
    it warm at once) and take the directory it prints last. ``error`` says when the script fails."""
    configured = os.environ.get(env_var)
    if configured:
        return Path(configured)
    # stderr is left alone: a cold build takes minutes and its progress should be visible.
    result = subprocess.run([str(script)], stdout=subprocess.PIPE, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise error(f"{script} failed (exit {result.returncode}) or printed no directory; run it to see why")
    return Path(lines[-1])


@functools.cache
def binary_dir() -> Path:
    """The directory holding every binary in ``REQUIRED``; builds them if the env var is unset."""
    directory = cache_dir(ENV_VAR, BUILD_SCRIPT)
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
