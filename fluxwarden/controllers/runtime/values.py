"""helm's values merge, shared by the HelmChart (``valuesFiles``) and HelmRelease (``valuesFrom``) reconcilers."""

from __future__ import annotations

from typing import Any


def merge_values(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """helm's ``MergeMaps``: maps merge key by key, anything else in ``overlay`` replaces; the inputs stay."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged
