"""List and watch any kind as metadata only (``PartialObjectMetadata``), for an :class:`Informer`.

The kustomize controller's live drift watches use it: the API server sends names, labels and
resourceVersions, never data, so a watch of every applied ConfigMap or Secret costs little memory
and never holds Secret values. Kinds are known only at run time, so paths are built from discovery
(core ``/api/v1``, others ``/apis/<group>/<version>``).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from fluxwarden.controllers.runtime.kube import Kube, Resource, translate, watch_event
from fluxwarden.controllers.runtime.restmapper import ApiResource

ACCEPT_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
ACCEPT_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


def collection_path(res: Resource, namespace: str | None) -> str:
    return ApiResource(res.group, res.version, res.kind, res.plural, namespaced=bool(namespace)).path(namespace)


class MetadataKube(Kube):
    """A :class:`Kube` whose ``list`` and ``watch`` return metadata only, for any kind."""

    def list(
        self, res: Resource, namespace: str | None = None, label_selector: str | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        query = {"labelSelector": label_selector} if label_selector else {}
        try:
            answer = self.send("GET", collection_path(res, namespace), query=query, accept=ACCEPT_LIST)
            found = json.loads(answer.read())
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise translate(exc, f"list {res.plural}") from None
        return list(found.get("items") or []), str((found.get("metadata") or {}).get("resourceVersion", ""))

    def watch(
        self,
        res: Resource,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        timeout: int = 300,
    ) -> Generator[tuple[str, dict[str, Any]], None, None]:
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout),
            **({"labelSelector": label_selector} if label_selector else {}),
        }
        try:
            path = collection_path(res, namespace)
            response = self.send("GET", path, query=query, accept=ACCEPT_WATCH, timeout=timeout + 30)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise translate(exc, f"watch {res.plural}") from None
        raw = response.response  # the urllib3 response under the client's wrapper, read as it streams
        try:
            pending = b""
            for chunk in raw.stream(64 * 1024, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield watch_event(res, json.loads(line))
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise translate(exc, f"watch {res.plural}") from None
        finally:
            raw.release_conn()
