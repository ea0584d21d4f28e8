"""Session-wide set-up for every test: the real kustomize and helm on PATH.

Pure unit tests must not trigger a Go build, so the binary directory is resolved eagerly only when
``FLUXWARDEN_TEST_BIN`` names it (as ``make test`` does); otherwise the first test that asks for
``test_binaries`` resolves it (building once through tests/cluster/build.sh if need be).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.binaries import ENV_VAR, binary_dir, prepend_to_path


def pytest_configure(config: pytest.Config) -> None:
    configured = os.environ.get(ENV_VAR)
    if configured:
        prepend_to_path(Path(configured))  # checked by binary_dir() when a test needs the binaries


@pytest.fixture(scope="session")
def test_binaries() -> Path:
    """The directory of kube-apiserver, etcd, kustomize and helm, put first on PATH."""
    directory = binary_dir()
    prepend_to_path(directory)
    return directory
