"""The one stand-in for kubelet in the tests: refreshing a Secret volume while the pod runs.

A bare API server has no kubelet, so nothing would project a renewed Secret into a webhook's
certificate directory. :class:`SecretVolume` does what kubelet's atomic writer does: the keys go
into a fresh ``..<timestamp>`` directory, the ``..data`` symlink is swapped to it in one rename, and
each visible file is a symlink through ``..data``. A reader therefore sees the old pair or the new
one, never a mix, exactly as in a pod. Only this refresh is simulated; everything else is real.
"""

from __future__ import annotations

import base64
import datetime
import os
import shutil
import threading
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

DATA = "..data"


class SecretVolume:
    """Project ``items`` (Secret key -> file name) of Secret ``namespace/name`` into ``directory``."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        directory: Path,
        items: dict[str, str],
        mode: int = 0o440,
        interval: float = 0.2,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace, self.name = namespace, name
        self.directory, self.items, self.mode, self.interval = directory, items, mode, interval
        self.resource_version: str | None = None
        self.updates = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kubelet-volume-{name}", daemon=True)
        directory.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> SecretVolume:
        self.sync()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sync()

    def sync(self) -> bool:
        """Write the Secret's current keys if it changed since the last write; a missing Secret is skipped."""
        try:
            secret = self.core.read_namespaced_secret(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False  # an optional volume stays empty
            raise
        if secret.metadata.resource_version == self.resource_version:
            return False
        data = {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}
        self._write({path: data[key] for key, path in self.items.items() if key in data})
        self.resource_version = secret.metadata.resource_version
        self.updates += 1
        return True

    def _write(self, files: dict[str, bytes]) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.%f")
        fresh = self.directory / stamp
        fresh.mkdir(mode=0o755)
        for path, content in files.items():
            target = fresh / path
            target.write_bytes(content)
            target.chmod(self.mode)
        data_link = self.directory / DATA
        previous = os.readlink(data_link) if data_link.is_symlink() else None
        staging = self.directory / f"{DATA}_tmp"
        staging.unlink(missing_ok=True)
        staging.symlink_to(stamp)
        os.replace(staging, data_link)  # the one atomic step: every file changes at once
        for path in files:
            visible = self.directory / path
            if not visible.is_symlink():
                visible.symlink_to(Path(DATA) / path)
        if previous is not None:
            shutil.rmtree(self.directory / previous, ignore_errors=True)
