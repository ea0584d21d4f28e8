"""What the migration tests read off the cluster, and the documented hand-over steps.

A hand-over between upstream Flux and fluxwarden is three writes to the Flux object: suspend it (the
old owner stops changing anything), move it to the new owner's shard (``sharding.fluxcd.io/key``),
resume it. The readers below are independent of fluxwarden's code: they read what the API server
has (uids, resourceVersions, ``managedFields``) and the ids Flux writes in ``status.inventory``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client

from tests.support.tenants import SHARD

Patch = Callable[[dict[str, Any]], None]


def hand_over(patch: Patch, shard: str) -> None:
    """Suspend, move to ``shard``, resume: each a separate write, as a person would do them."""
    patch({"spec": {"suspend": True}})
    patch({"metadata": {"labels": {SHARD: shard}}})
    patch({"spec": {"suspend": False}})


def config_maps(core: client.CoreV1Api, namespace: str) -> dict[str, client.V1ConfigMap]:
    return {c.metadata.name: c for c in core.list_namespaced_config_map(namespace).items}


def uids(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    """ConfigMap name -> uid: a re-created object gets a new uid."""
    return {name: str(c.metadata.uid) for name, c in config_maps(core, namespace).items()}


def versions(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    """ConfigMap name -> resourceVersion: any write moves it."""
    return {name: str(c.metadata.resource_version) for name, c in config_maps(core, namespace).items()}


def managers(obj: client.V1ConfigMap) -> set[tuple[str, str]]:
    """(manager, operation) of every ``managedFields`` entry: who owns a field of the object."""
    return {(str(m.manager), str(m.operation)) for m in obj.metadata.managed_fields or []}


def inventory(obj: dict[str, Any]) -> set[tuple[str, str]]:
    """``status.inventory.entries`` as (id, v) pairs, in the order-free form both writers agree on."""
    entries = ((obj.get("status") or {}).get("inventory") or {}).get("entries") or []
    return {(str(e["id"]), str(e["v"])) for e in entries}


def config_map_id(namespace: str, name: str) -> tuple[str, str]:
    """A ConfigMap's inventory entry as Flux writes it: ``<ns>_<name>_<group>_<kind>``, core group empty."""
    return (f"{namespace}_{name}__ConfigMap", "v1")
