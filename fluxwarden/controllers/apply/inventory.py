"""Flux's inventory: ``<namespace>_<name>_<group>_<kind>`` ids with versions, and what left it.

Ids are written and read as Flux (cli-utils' ``ObjMetadata``) does: a ``:`` in a name (RBAC names
such as ``system:aggregate-to-edit``) is written ``__``. Namespaces, groups and kinds never hold
``_``, so the namespace is the first field, the kind the last and the group the one before it; the
name is everything in between and may itself hold ``_``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

COLON = "__"  # how Flux writes ':' of a name in an id


@dataclass(frozen=True, order=True)
class Entry:
    namespace: str
    name: str
    group: str
    kind: str
    version: str = ""

    @property
    def id(self) -> str:
        return f"{self.namespace}_{self.name.replace(':', COLON)}_{self.group}_{self.kind}"

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
        """From a ``status.inventory.entries[]`` item; raises ``ValueError`` for a malformed id."""
        text = str(item.get("id", ""))
        namespace, sep, rest = text.partition("_")
        rest, sep_kind, kind = rest.rpartition("_")
        name, sep_group, group = rest.rpartition("_")
        if not (sep and sep_kind and sep_group and name and kind):
            raise ValueError(f"inventory id {text!r} is not <namespace>_<name>_<group>_<kind>")
        return cls(namespace, name.replace(COLON, ":"), group, kind, str(item.get("v", "")))

    def as_status(self) -> dict[str, str]:
        return {"id": self.id, "v": self.version}


def read(status: dict[str, Any]) -> list[Entry]:
    """The inventory's entries; a malformed item (edited by hand) is skipped, never fatal."""
    found = []
    for item in ((status.get("inventory") or {}).get("entries")) or []:
        if isinstance(item, dict):
            with contextlib.suppress(ValueError):
                found.append(Entry.parse(item))
    return found


def write(status: dict[str, Any], entries: list[Entry]) -> None:
    status["inventory"] = {"entries": [e.as_status() for e in sorted(set(entries))]}


def stale(old: list[Entry], new: list[Entry]) -> list[Entry]:
    """Entries of ``old`` that ``new`` no longer lists (compared without the version)."""
    current = {e.id for e in new}
    return sorted({e for e in old if e.id not in current}, reverse=True)
