"""Flux's inventory: ``<namespace>_<name>_<group>_<kind>`` ids with versions, and what left it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Entry:
    namespace: str
    name: str
    group: str
    kind: str
    version: str = ""

    @property
    def id(self) -> str:
        return f"{self.namespace}_{self.name}_{self.group}_{self.kind}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def display(self) -> str:
        """``ConfigMap/ns/name`` as Flux's change-set events write it."""
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Entry:
        group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
        meta = obj.get("metadata") or {}
        return cls(str(meta.get("namespace") or ""), str(meta.get("name")), group, str(obj.get("kind")), version)

    @classmethod
    def parse(cls, item: dict[str, Any]) -> Entry:
        """From a ``status.inventory.entries[]`` item (Kubernetes names and kinds never hold ``_``)."""
        namespace, name, group, kind = str(item["id"]).split("_", 3)
        return cls(namespace, name, group, kind, str(item.get("v", "")))

    def as_status(self) -> dict[str, str]:
        return {"id": self.id, "v": self.version}


def read(status: dict[str, Any]) -> list[Entry]:
    entries = ((status.get("inventory") or {}).get("entries")) or []
    return [Entry.parse(item) for item in entries if isinstance(item, dict) and str(item.get("id", "")).count("_") >= 3]


def write(status: dict[str, Any], entries: list[Entry]) -> None:
    status["inventory"] = {"entries": [e.as_status() for e in sorted(set(entries))]}


def stale(old: list[Entry], new: list[Entry]) -> list[Entry]:
    """Entries of ``old`` that ``new`` no longer lists (compared without the version)."""
    current = {e.id for e in new}
    return sorted({e for e in old if e.id not in current}, reverse=True)
