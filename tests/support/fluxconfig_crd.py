"""fluxwarden's own FluxConfig CRD (manifests/crds/fluxconfig.yaml), installed for real.

Flux's CRDs come from upstream (tests/support/flux_crds.py); FluxConfig is fluxwarden's, so the e2e
suite installs the shipped file itself, as the install does: a server-side apply, then Established.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "manifests" / "crds" / "fluxconfig.yaml"
NAME = "fluxconfigs.clusterconfig.azure.com"
FIELD_MANAGER = "fluxwarden-install"  # what `kubectl apply --server-side -k manifests` would record


def install(kubectl: Callable[..., Any]) -> str:
    """Server-side apply the shipped FluxConfig CRD and wait until it is Established; its name."""
    kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", str(CRD_FILE))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{NAME}")
    return NAME
