"""Where the storage servers of the source tests live: versitygw/registry/htpasswd and Azurite.

``make test`` passes the directories in ``FLUXWARDEN_STORAGE_BIN`` (tests/storage/build.sh, Go) and
``FLUXWARDEN_AZURITE`` (tests/azurite/install.sh, npm); without them the scripts run here (building or
installing once, or finding their warm cache at once), so a bare ``pytest`` works too.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from tests.support.binaries import cache_dir

TESTS_DIR = Path(__file__).resolve().parent.parent
STORAGE_ENV_VAR = "FLUXWARDEN_STORAGE_BIN"
STORAGE_SCRIPT = TESTS_DIR / "storage" / "build.sh"
STORAGE_BINARIES = ("versitygw", "registry", "htpasswd")
AZURITE_ENV_VAR = "FLUXWARDEN_AZURITE"
AZURITE_SCRIPT = TESTS_DIR / "azurite" / "install.sh"


@functools.cache
def storage_bin_dir() -> Path:
    """The directory of versitygw, registry and htpasswd (tests/storage/build.sh)."""
    directory = cache_dir(STORAGE_ENV_VAR, STORAGE_SCRIPT)
    missing = [name for name in STORAGE_BINARIES if not os.access(directory / name, os.X_OK)]
    if missing:
        raise RuntimeError(f"storage servers missing from {directory}: {', '.join(missing)} (see {STORAGE_SCRIPT})")
    return directory


def storage_binary(name: str) -> Path:
    return storage_bin_dir() / name


@functools.cache
def azurite_blob() -> Path:
    """The ``azurite-blob`` launcher of the pinned Azurite (tests/azurite/install.sh)."""
    launcher = cache_dir(AZURITE_ENV_VAR, AZURITE_SCRIPT) / "node_modules" / ".bin" / "azurite-blob"
    if not os.access(launcher, os.X_OK):
        raise RuntimeError(f"{launcher} is missing (see {AZURITE_SCRIPT})")
    return launcher
