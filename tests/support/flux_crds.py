"""Where the CRDs of the pinned upstream Flux release live (tests/flux/crds.sh caches them).

``make test`` passes the directory in ``FLUXWARDEN_FLUX_CRDS``; without it, ``tests/flux/crds.sh`` fetches
them (or finds its warm cache at once) and prints the directory, so a bare ``pytest`` works too. A
missing or empty directory is an error, never a skip: e2e tests on the wrong CRDs prove nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.binaries import cache_dir

ENV_VAR = "FLUXWARDEN_FLUX_CRDS"
FLUX_DIR = Path(__file__).resolve().parent.parent / "flux"
SCRIPT = FLUX_DIR / "crds.sh"
# `flux install` labels every CRD it ships with these (tests/flux/crds.sh adds them the same way).
SELECTOR = "app.kubernetes.io/part-of=flux,app.kubernetes.io/instance=flux-system"


class FluxCRDsMissing(RuntimeError):
    """The upstream CRD directory is not there; the message says how to make it."""


@functools.cache
def flux_crd_dir() -> Path:
    """The directory of the upstream Flux CRD YAMLs (one CRD a file) and its ``versions.txt``."""
    directory = cache_dir(ENV_VAR, SCRIPT, FluxCRDsMissing)
    if not sorted(directory.glob("*.yaml")) or not (directory / "versions.txt").is_file():
        raise FluxCRDsMissing(
            f"no upstream Flux CRDs in {directory} ({ENV_VAR}): set it to the directory {SCRIPT} prints"
        )
    return directory


def flux_version(directory: Path) -> str:
    """The Flux release the CRDs come from, e.g. ``v2.9.5`` (the ``flux`` line of versions.txt)."""
    for line in (directory / "versions.txt").read_text().splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "flux":
            return fields[1]
    raise FluxCRDsMissing(f"{directory / 'versions.txt'} names no Flux release")


FIELD_MANAGER = "flux-install"  # the manager `flux install` applies its CRDs with


def install(kubectl: Callable[..., Any]) -> list[str]:
    """Server-side apply the upstream CRDs with ``kubectl`` and wait until Established; their names."""
    directory = flux_crd_dir()
    kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", str(directory))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", SELECTOR)
    names: list[str] = kubectl("get", "crd", "-l", SELECTOR, "-o", "name").stdout.split()
    expected = len(sorted(directory.glob("*.yaml")))
    if len(names) != expected:
        raise FluxCRDsMissing(f"{len(names)} CRDs labelled {SELECTOR} after applying the {expected} in {directory}")
    return names
