"""helm's release records, read and written directly: the Secrets ``sh.helm.release.v1.<name>.v<N>``.

Every reconcile reads them (as the tenant), so an unchanged release needs no helm process, and a
hand ``helm rollback`` or ``helm uninstall`` is seen at once. Writes are the two things the helm CLI
has no command for: unlocking a release stuck in ``pending-*`` and moving records between namespaces.
The record format is helm's own (``base64(gzip(json))`` in ``data.release``), the same in helm 3 and 4.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

from fluxwarden.controllers.runtime.kube import Conflict, Forbidden, Kube, KubeError, NotFound

SECRETS = "/api/v1/namespaces/{namespace}/secrets"
PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
MAX_RECORD = 64 * 1024 * 1024  # helm's own limit for a decompressed release is far below this


class StorageError(Exception):
    """A record could not be read or written; the message names it. ``forbidden``: RBAC said no."""

    def __init__(self, message: str, forbidden: bool = False) -> None:
        super().__init__(message)
        self.forbidden = forbidden


def _decode(secret: dict[str, Any]) -> dict[str, Any]:
    name = secret["metadata"]["name"]
    try:
        outer = base64.b64decode((secret.get("data") or {})["release"])
        data = base64.b64decode(outer)
        if data[:3] == b"\x1f\x8b\x08":
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
                data = unzipped.read(MAX_RECORD + 1)
        if len(data) > MAX_RECORD:
            raise ValueError("record too large")
        record = json.loads(data)
    except (KeyError, ValueError, OSError, EOFError) as exc:
        raise StorageError(f"release record Secret '{name}' is not a helm release: {exc}") from None
    if not isinstance(record, dict):
        raise StorageError(f"release record Secret '{name}' is not a helm release")
    return record


def _encode(record: dict[str, Any]) -> str:
    packed = gzip.compress(json.dumps(record, separators=(",", ":")).encode(), compresslevel=9)
    return base64.b64encode(base64.b64encode(packed)).decode()


@dataclass(frozen=True)
class Release:
    """One stored revision of a release, as helm wrote it."""

    record: dict[str, Any]
    secret: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.record.get("name") or "")

    @property
    def namespace(self) -> str:
        return str(self.record.get("namespace") or "")

    @property
    def version(self) -> int:
        return int(self.record.get("version") or 0)

    @property
    def info(self) -> dict[str, Any]:
        info = self.record.get("info")
        return info if isinstance(info, dict) else {}

    @property
    def status(self) -> str:
        return str(self.info.get("status") or "unknown")

    @property
    def chart(self) -> dict[str, Any]:
        chart = self.record.get("chart")
        metadata = chart.get("metadata") if isinstance(chart, dict) else None
        return metadata if isinstance(metadata, dict) else {}

    @property
    def config(self) -> dict[str, Any]:
        config = self.record.get("config")
        return config if isinstance(config, dict) else {}

    @property
    def apply_method(self) -> str:
        """``ssa`` or ``csa`` as helm 4 records it; ``csa`` for a release helm 3 made (it had no other)."""
        method = self.record.get("apply_method")
        return str(method) if method else "csa"

    @property
    def manifest(self) -> str:
        return str(self.record.get("manifest") or "")

    @property
    def hooks(self) -> list[dict[str, Any]]:
        return [h for h in self.record.get("hooks") or [] if isinstance(h, dict)]

    @property
    def digest(self) -> str:
        """What Flux calls the observation digest: any change to the stored release changes it."""
        canonical = json.dumps(self.record, sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(canonical).hexdigest()

    @property
    def display(self) -> str:
        return f"{self.namespace}/{self.name}.v{self.version}"

    @property
    def chart_display(self) -> str:
        return f"{self.chart.get('name')}@{self.chart.get('version')}"


class ReleaseStorage:
    """The records of one release in one namespace, through ``kube`` (the tenant's identity)."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self._read: list[Release] | None = None  # one LIST per reconcile until something writes

    def changed(self) -> None:
        """The records may have changed (helm ran, a record was written): the next read lists them again."""
        self._read = None

    def history(self) -> list[Release]:
        """Every stored revision, newest first; empty when there is none."""
        if self._read is None:
            self._read = self._list()
        return list(self._read)

    def _list(self) -> list[Release]:
        path = SECRETS.format(namespace=self.namespace)
        try:
            found = self.kube.request("GET", path, query={"labelSelector": f"owner=helm,name={self.name}"})
        except KubeError as exc:
            message = f"cannot read the release records of {self.namespace}/{self.name}: {exc}"
            raise StorageError(message, isinstance(exc, Forbidden)) from None
        secrets = [s for s in found.get("items") or [] if isinstance(s, dict) and s.get("type") == "helm.sh/release.v1"]
        releases = [Release(_decode(s), s) for s in secrets]
        return sorted(releases, key=lambda r: r.version, reverse=True)

    def latest(self) -> Release | None:
        history = self.history()
        return history[0] if history else None

    def mark_failed(self, release: Release, description: str) -> None:
        """Unlock a ``pending-*`` release as Flux does: the record becomes ``failed``, nothing else changes."""
        record = json.loads(json.dumps(release.record))
        record.setdefault("info", {})["status"] = "failed"
        record["info"]["description"] = description
        secret = release.secret
        body = {
            "metadata": {
                "resourceVersion": secret["metadata"].get("resourceVersion"),
                "labels": {**(secret["metadata"].get("labels") or {}), "status": "failed"},
            },
            "data": {"release": _encode(record)},
        }
        path = f"{SECRETS.format(namespace=self.namespace)}/{secret['metadata']['name']}"
        self.changed()
        try:
            self.kube.request("PATCH", path, body=body, content_type="application/merge-patch+json")
        except Conflict:
            raise StorageError(f"release {release.display} changed while it was being unlocked") from None
        except KubeError as exc:
            raise StorageError(f"cannot unlock release {release.display}: {exc}") from None

    def adopt_from(self, other: ReleaseStorage) -> int:
        """Move every record of this release from ``other``'s namespace here, history kept; returns how many.

        Copies are created first and the originals deleted after, so a failure half-way leaves the
        records in both places (helm reads the target namespace; the next reconcile finishes the move).
        """
        moved = 0
        self.changed()
        other.changed()
        for release in other.history():
            meta = release.secret["metadata"]
            copy = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "helm.sh/release.v1",
                "metadata": {"name": meta["name"], "namespace": self.namespace, "labels": meta.get("labels") or {}},
                "data": release.secret.get("data") or {},
            }
            try:
                self.kube.request("POST", SECRETS.format(namespace=self.namespace), body=copy)
            except Conflict:
                pass  # copied by an earlier, interrupted move
            except KubeError as exc:
                raise StorageError(f"cannot move release record {meta['name']} to {self.namespace}: {exc}") from None
            try:
                other.kube.request("DELETE", f"{SECRETS.format(namespace=other.namespace)}/{meta['name']}")
            except NotFound:
                pass
            except KubeError as exc:
                raise StorageError(f"cannot remove release record {other.namespace}/{meta['name']}: {exc}") from None
            moved += 1
        return moved
