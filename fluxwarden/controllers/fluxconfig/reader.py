"""Reads of what a FluxConfig made: from the watches' caches once they have listed, else from the API.

A steady reconcile then asks the API server for nothing but the Secrets it needs. A watch filtered
by our labels cannot see a user's object of the same name, so a miss there is asked of the API (an
apply must never take a user's object over); a miss in an unfiltered watch is an answer.
"""

from __future__ import annotations

import copy
from typing import Any

from fluxwarden.controllers.fluxconfig import children
from fluxwarden.controllers.fluxconfig.api import KINDS
from fluxwarden.controllers.fluxconfig.watches import Watches
from fluxwarden.controllers.runtime.controller import Cache, Context
from fluxwarden.controllers.runtime.spec import mapping


class Reader:
    def __init__(self, ctx: Context, watches: Watches) -> None:
        self.ctx = ctx
        self.watches = watches
        self.by_kind = watches.by_kind()

    def _cache(self, kind: str) -> Cache | None:
        watch = self.by_kind.get(kind)
        return self.ctx.cache(watch) if watch is not None else None

    def get(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The live object of ``body``'s kind and name (a copy), or None. A ServiceAccount comes from a
        metadata-only cache whole; a Secret's data never does."""
        kind, meta = body["kind"], body["metadata"]
        watch = self.by_kind.get(kind)
        cache = self._cache(kind)
        whole = set(body) <= {"apiVersion", "kind", "metadata"}  # a metadata-only cache holds all of it
        if cache is not None and watch is not None and (whole or not watch.metadata_only):
            found = cache.get((str(meta.get("namespace") or ""), str(meta["name"])))
            if found is not None:
                return copy.deepcopy(found)
            if watch.label_selector is None:
                return None
        return children.get(self.ctx.kube, body)

    def exists(self, body: dict[str, Any]) -> bool | None:
        """Whether an object of ours by that name exists (metadata caches answer too); None: not known."""
        cache = self._cache(body["kind"])
        if cache is None:
            return None
        meta = body["metadata"]
        return cache.get((str(meta.get("namespace") or ""), str(meta["name"]))) is not None

    def listed(self, kind: str, namespace: str | None, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Objects of ``kind`` carrying every label of ``labels`` (which include the managed label)."""
        cache = self._cache(kind)
        if cache is None:
            selector = ",".join(f"{k}={v}" for k, v in labels.items())
            return children.listed(self.ctx.kube, kind, namespace, selector)
        found = []
        for item in cache.items():
            meta = mapping(item.get("metadata"))
            have = mapping(meta.get("labels"))
            if (namespace is None or meta.get("namespace") == namespace) and all(
                have.get(k) == v for k, v in labels.items()
            ):
                # A metadata-only item is a PartialObjectMetadata: name it by the kind it stands for.
                res = KINDS[kind]
                found.append(
                    {**copy.deepcopy(item), "apiVersion": res.api_version if res.group else res.version, "kind": kind}
                )
        return found
