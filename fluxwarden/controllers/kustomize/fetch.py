"""Fetch a Kustomization's source artifact: the shared artifact client, under the kustomize name.

Called by the kustomize reconciler before ``build.build``. The work (bounded streaming download,
digest check, safe unpack) is ``controllers.artifacts.client``, which the helm controller will share.
"""

from __future__ import annotations

from fluxwarden.controllers.artifacts.client import fetch_artifact
from fluxwarden.controllers.artifacts.errors import FetchError

__all__ = ["FetchError", "fetch_artifact"]
