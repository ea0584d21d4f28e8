"""A real Helm chart repository on loopback: charts made by ``helm package``, indexed by ``helm repo index``.

HelmRepository and HelmChart sources must parse the index and fetch the archives the real helm writes
(digests, ``created`` stamps, URL forms), so the charts are built with the real CLI, not hand-made YAML.
The default template renders a ConfigMap: a bare kube-apiserver runs no controllers, and a ConfigMap is
ready as soon as it exists.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import yaml

from tests.support.binaries import binary_dir
from tests.support.git_server import CommandFailed
from tests.support.http_files import StaticFileServer

CONFIGMAP_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-{{ .Chart.Name }}
  namespace: {{ .Release.Namespace }}
data:
  chartVersion: {{ .Chart.Version | quote }}
  values: {{ toJson .Values | quote }}
"""


def helm_binary() -> str:
    """helm from PATH (tests/conftest.py puts FLUXWARDEN_TEST_BIN first), else from tests/cluster's build."""
    return shutil.which("helm") or str(binary_dir() / "helm")


def run_helm(*args: str, timeout: float = 60) -> str:
    """Run helm with throw-away cache/config/data dirs, so no test reads or writes the user's helm state."""
    with tempfile.TemporaryDirectory(prefix="fluxwarden-helm-") as home:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": f"{home}/cache",
            "HELM_CONFIG_HOME": f"{home}/config",
            "HELM_DATA_HOME": f"{home}/data",
        }
        result = subprocess.run([helm_binary(), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise CommandFailed(result.returncode, ["helm", *args], result.stdout, result.stderr)
    return result.stdout


def write_chart(
    directory: Path,
    name: str,
    version: str,
    values: Mapping[str, Any] | None = None,
    *,
    app_version: str | None = None,
    templates: Mapping[str, str] | None = None,
) -> Path:
    """Write a minimal chart source at ``directory/name`` (also usable as a chart inside a git repo)."""
    chart = directory / name
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    metadata: dict[str, Any] = {
        "apiVersion": "v2",
        "name": name,
        "version": version,
        "description": f"fluxwarden test chart {name}",
        "type": "application",
    }
    if app_version is not None:
        metadata["appVersion"] = app_version
    (chart / "Chart.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))
    (chart / "values.yaml").write_text(yaml.safe_dump(dict(values or {}), sort_keys=False))
    for file_name, text in (templates or {"configmap.yaml": CONFIGMAP_TEMPLATE}).items():
        (chart / "templates" / file_name).write_text(text)
    return chart


class HelmRepoServer(StaticFileServer):
    """A Helm repository at ``url`` (``index.yaml`` plus ``<name>-<version>.tgz``), optionally behind basic auth.

    The index needs the server's URL, so it is (re)built on start() and after every change while running.
    ``absolute_urls=False`` writes chart URLs relative to the repository, as some real repositories do;
    ``charts_url`` makes them point at another server (a CDN, say) that serves the same files.
    With ``tls``, it serves HTTPS (``tests.support.tls``).
    """

    def __init__(
        self,
        root: Path,
        username: str | None = None,
        password: str | None = None,
        *,
        absolute_urls: bool = True,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(root, username=username, password=password, tls=tls)
        self.absolute_urls = absolute_urls
        self.charts_url: str | None = None

    @property
    def index_path(self) -> Path:
        return self.root / "index.yaml"

    @property
    def index_url(self) -> str:
        return f"{self.url}/index.yaml"

    def chart_url(self, name: str, version: str) -> str:
        return f"{self.charts_url or self.url}/{name}-{version}.tgz"

    def chart_downloads(self, name: str, version: str) -> int:
        """How many GETs of this chart's archive this server answered (refused ones included)."""
        return sum(1 for r in self.requests if r.method == "GET" and r.path == f"/{name}-{version}.tgz")

    def start(self) -> Self:
        super().start()
        self.reindex()
        return self

    def add_chart(
        self,
        name: str,
        version: str,
        values: Mapping[str, Any] | None = None,
        *,
        app_version: str | None = None,
        templates: Mapping[str, str] | None = None,
    ) -> Path:
        """Package a chart with ``helm package`` into the served dir; return the .tgz (index rebuilt if running)."""
        with tempfile.TemporaryDirectory(prefix="fluxwarden-chart-") as source:
            chart = write_chart(Path(source), name, version, values, app_version=app_version, templates=templates)
            run_helm("package", str(chart), "--destination", str(self.root))
        archive = self.root / f"{name}-{version}.tgz"
        if self.running:
            self.reindex()
        return archive

    def remove_chart(self, name: str, version: str) -> None:
        """Withdraw one chart version, as a repository that yanks a release does."""
        (self.root / f"{name}-{version}.tgz").unlink()
        if self.running:
            self.reindex()

    def reindex(self) -> None:
        """Regenerate ``index.yaml`` from the archives with ``helm repo index`` (also repairs corrupt_index())."""
        self.index_path.unlink(missing_ok=True)  # a corrupt index would make helm fail, not overwrite it
        arguments = ["repo", "index", str(self.root)]
        if self.charts_url:
            arguments += ["--url", self.charts_url]
        elif self.absolute_urls:
            arguments += ["--url", self.url]
        run_helm(*arguments)

    def corrupt_index(self, content: bytes = b"apiVersion: v1\nentries: [unclosed\n") -> None:
        """Replace ``index.yaml`` with bytes no YAML parser accepts (or ``content``), to test fetch failures."""
        self.index_path.write_bytes(content)
