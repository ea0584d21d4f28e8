"""Upstream Flux's controllers beside fluxwarden's in a benchmark: which binary, which version, its flags.

The binaries are the ones ``tests/flux/controllers.sh`` builds from the Go modules ``tests/flux/go.mod``
pins (Flux 2.9.5); ``$FLUXWARDEN_FLUX_CONTROLLERS`` names their directory, else the script runs (a cold
build takes minutes). A missing binary stops the benchmark: never a skip. The process itself is a
``bench.controller.Controller``, as fluxwarden's is (``Controller.upstream``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tests.support.flux_upstream import ENV_VAR, LOCKDOWN, SCRIPT, upstream_binary

GO_MOD = SCRIPT.parent / "go.mod"
MODULES = {
    "kustomize-controller": "github.com/fluxcd/kustomize-controller",
    "helm-controller": "github.com/fluxcd/helm-controller",
    "source-controller": "github.com/fluxcd/source-controller",
    "flux": "github.com/fluxcd/flux2/v2",
}


def flux_binary(name: str) -> Path:
    """Flux's ``name``; its directory is put in ``$FLUXWARDEN_FLUX_CONTROLLERS`` so that a ``--code`` copy of
    the benchmark finds it without building again."""
    try:
        binary = upstream_binary(name)
    except RuntimeError as exc:
        raise SystemExit(f"Flux's {name} is needed: {exc}") from exc
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"no executable {binary}; set {ENV_VAR}=$(tests/flux/controllers.sh)")
    os.environ[ENV_VAR] = str(binary.parent)
    return binary


def version(name: str) -> str:
    """The version of ``name`` that tests/flux/go.mod pins (the controllers have no version flag)."""
    for line in GO_MOD.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == MODULES[name]:
            return parts[1]
    raise RuntimeError(f"{MODULES[name]} is not required in {GO_MOD}")


def lockdown_flags(args: argparse.Namespace, *extra: str) -> list[str]:
    """Flux's multi-tenancy lockdown (``--no-cross-namespace-refs``, and with ``--enforce`` the default
    service account), all namespaces, no leader election, ``--concurrent`` as fluxwarden's concurrency;
    then ``extra`` (``--no-remote-bases=true`` for kustomize-controller)."""
    lockdown = LOCKDOWN if args.enforce else tuple(f for f in LOCKDOWN if not f.startswith("--default-service"))
    return [
        "--watch-all-namespaces=true", *lockdown, "--enable-leader-election=false",
        f"--concurrent={args.concurrency}", "--log-encoding=json", *extra,
    ]  # fmt: skip
