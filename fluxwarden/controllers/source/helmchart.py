"""The HelmChart reconciler: pick a chart version from a HelmRepository or a GitRepository or Bucket path,
merge ``valuesFiles``, package it with the real ``helm`` CLI, and store the ``.tgz`` as the artifact.

Revision is the chart version. From a HelmRepository, as in Flux, a chart whose name and chosen
version (and index digest, when known) are unchanged under the same spec is neither downloaded nor
re-packaged, whatever else changed in the index. From a GitRepository, nothing is re-packaged while
the source's artifact revision is unchanged. Downloads stream to a temporary file, at most
``max_size`` bytes, and credentials go only to the repository's own origin unless
``spec.passCredentials`` of the HelmRepository says otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

import yaml

from fluxwarden.controllers.artifacts.errors import ArtifactError, DownloadError
from fluxwarden.controllers.artifacts.http import download
from fluxwarden.controllers.artifacts.unpack import safe_extract
from fluxwarden.controllers.runtime import conditions
from fluxwarden.controllers.runtime.controller import Context, Success, Watch, artifact_revision
from fluxwarden.controllers.runtime.errors import Failure, Stalling, Waiting
from fluxwarden.controllers.runtime.kube import Kube, NotFound, Resource, key_of
from fluxwarden.controllers.runtime.values import merge_values
from fluxwarden.controllers.source import helm_oci, helm_oci_tags
from fluxwarden.controllers.source.api import (
    BUCKET,
    FINALIZER,
    GIT_REPOSITORY,
    HELM_CHART,
    HELM_CHART_UNSUPPORTED,
    HELM_REPOSITORY,
    HelmChartSpec,
    HelmRepositorySpec,
    is_oci_helm_repository,
    oci_helm_repository_unsupported,
)
from fluxwarden.controllers.source.gitrepository import ARTIFACT_IN_STORAGE
from fluxwarden.controllers.source.helm_registry import registry_credentials
from fluxwarden.controllers.source.helmrepository import parse_index, repository_credentials
from fluxwarden.controllers.source.storage import Storage, artifact_status
from fluxwarden.controllers.source.versions import best_match

MAX_CHART_SIZE = 64 * 1024 * 1024
SOURCE_RETRY = 30.0
PULLED = "pulled.tgz"  # the downloaded chart archive, in the reconcile's scratch directory


def _inside(root: Path, relative: str, what: str) -> Path:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise Stalling("InvalidSpec", f"{what} '{relative}' points outside the chart source")
    return path


def package(chart_dir: Path, values_files: tuple[str, ...], out: Path, values_root: Path | None = None) -> Path:
    """``helm package`` the chart, after replacing values.yaml with the merged ``values_files``.

    As in Flux, ``values_files`` are relative to the chart for a HelmRepository chart and to the
    source's root (``values_root``) for a chart in a GitRepository.
    """
    if values_files:
        root = values_root or chart_dir
        merged: dict[str, Any] = {}
        for name in values_files:
            path = _inside(root, name, "spec.valuesFiles entry")
            if not path.is_file():
                raise Failure("ChartPackageError", f"values file '{name}' not found in the source")
            merged = merge_values(merged, yaml.safe_load(path.read_text()) or {})
        (chart_dir / "values.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    home = out / ".helm"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    done = subprocess.run(
        ["helm", "package", str(chart_dir), "--destination", str(out)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["helm package failed"]
        raise Failure("ChartPackageError", lines[-1].removeprefix("Error: "))
    (built,) = [p for p in out.iterdir() if p.suffix == ".tgz"]
    return built


def _source_watch(resource: Resource) -> Watch:
    """Requeue the charts built from a source when its artifact revision changes."""

    def requeue_charts(
        new: dict[str, Any], old: dict[str, Any] | None, charts: list[dict[str, Any]]
    ) -> list[tuple[str, str]]:
        if artifact_revision(new) == artifact_revision(old):
            return []
        namespace, name = new["metadata"]["namespace"], new["metadata"]["name"]
        return [
            key_of(chart)
            for chart in charts
            if key_of(chart)[0] == namespace
            and (chart.get("spec") or {}).get("sourceRef", {}).get("kind") == resource.kind
            and (chart.get("spec") or {}).get("sourceRef", {}).get("name") == name
        ]

    return Watch(resource, requeue_charts)


class HelmChartReconciler:
    name = "source-controller"
    resource = HELM_CHART
    finalizer = FINALIZER
    unsupported = HELM_CHART_UNSUPPORTED

    def __init__(self, storage: Storage, max_size: int = MAX_CHART_SIZE) -> None:
        self.storage = storage
        self.max_size = max_size
        self.watches = [_source_watch(HELM_REPOSITORY), _source_watch(GIT_REPOSITORY), _source_watch(BUCKET)]
        # index digest of the chart version each HelmChart was last built from: a re-published
        # version with new bytes is pulled again. Lost on restart, which costs no download (see reconcile).
        self._pulled: dict[tuple[str, str], str] = {}

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        spec = HelmChartSpec.of(obj)
        meta, status = obj["metadata"], obj["status"]
        namespace, generation = meta["namespace"], meta.get("generation")
        source = self._source(ctx.kube, spec, namespace)
        oci = spec.source_kind == "HelmRepository" and is_oci_helm_repository(source)
        # An OCI HelmRepository has no artifact (Flux): nothing to observe of it.
        source_revision = None if oci else source["status"]["artifact"]["revision"]
        artifact = status.get("artifact") or {}
        current = (
            status.get("observedGeneration") == generation
            and status.get("observedChartName") == spec.chart
            and self.storage.exists(artifact.get("path", ""))
        )
        with tempfile.TemporaryDirectory(prefix="fluxwarden-chart-") as scratch:
            work = Path(scratch)
            if oci:
                chart_dir, version, unchanged = self._from_oci(ctx, spec, source, work, current, artifact)
            elif spec.source_kind == "HelmRepository":
                version, entry = self._choose(spec, source)
                digest = str(entry.get("digest") or "")
                # Unknown after a restart: the stored artifact is taken to be of the entry seen first.
                known = current and artifact.get("revision") == version
                unchanged = known and self._pulled.setdefault((namespace, meta["name"]), digest) == digest
                if not unchanged:
                    chart_dir = self._pull(ctx, spec, source, version, entry, work)
            else:
                chart_dir, version = self._from_git(spec, source, work)
                unchanged = (
                    current
                    and artifact.get("revision") == version
                    and status.get("observedSourceArtifactRevision") == source_revision
                )
            pulled = spec.source_kind == "HelmRepository" and not spec.values_files
            message = f"{'pulled' if pulled else 'packaged'} '{spec.chart}' chart with version '{version}'"
            if spec.values_files:
                message += f" and merged values files [{' '.join(spec.values_files)}]"
            if not unchanged:
                values_root = work / "src" if spec.source_kind != "HelmRepository" else None
                if pulled:
                    # As Flux: a pulled chart without valuesFiles is stored as downloaded (checked), not re-packaged.
                    built = (work / PULLED).rename(work / f"{spec.chart}-{version}.tgz")
                else:
                    assert chart_dir is not None  # None only for an unchanged OCI chart
                    built = package(chart_dir, spec.values_files, work / "out", values_root)
                with built.open("rb") as chart:
                    stored = self.storage.store_stream(
                        "HelmChart", namespace, meta["name"], built.name,
                        lambda out: shutil.copyfileobj(chart, out, 1 << 20),
                    )  # fmt: skip
                self.storage.gc("HelmChart", namespace, meta["name"], keep=2)
                status["artifact"] = artifact_status(stored, version)
                status["url"] = stored.url
                if spec.source_kind == "HelmRepository" and not oci:
                    self._pulled[(namespace, meta["name"])] = digest
        if source_revision is None:
            status.pop("observedSourceArtifactRevision", None)
        else:
            status["observedSourceArtifactRevision"] = source_revision
        status["observedChartName"] = spec.chart
        if spec.values_files:
            status["observedValuesFiles"] = list(spec.values_files)
        else:
            status.pop("observedValuesFiles", None)
        conditions.set_condition(status, ARTIFACT_IN_STORAGE, True, "Succeeded", message, generation)
        return Success(message, reason="ChartPullSucceeded" if spec.source_kind == "HelmRepository" else "Succeeded")

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        self._pulled.pop((obj["metadata"]["namespace"], obj["metadata"]["name"]), None)
        self.storage.remove_all("HelmChart", obj["metadata"]["namespace"], obj["metadata"]["name"])

    def _source(self, kube: Kube, spec: HelmChartSpec, namespace: str) -> dict[str, Any]:
        resource = {"HelmRepository": HELM_REPOSITORY, "Bucket": BUCKET}.get(spec.source_kind, GIT_REPOSITORY)
        try:
            source = kube.get(resource, namespace, spec.source_name)
        except NotFound:
            raise Waiting(
                "SourceUnavailable",
                f"{spec.source_kind} '{namespace}/{spec.source_name}' not found",
                SOURCE_RETRY,
                on_another=True,
            ) from None
        if spec.source_kind == "HelmRepository" and is_oci_helm_repository(source):
            if found := oci_helm_repository_unsupported(source):
                raise Waiting(
                    "SourceUnavailable",
                    f"HelmRepository '{namespace}/{spec.source_name}': {found.message}",
                    SOURCE_RETRY,
                )
            return source  # data only: Flux's OCI HelmRepository has no artifact
        artifact = (source.get("status") or {}).get("artifact") or {}
        if not artifact.get("path") or not self.storage.exists(artifact["path"]):
            raise Waiting(
                "SourceUnavailable",
                f"{spec.source_kind} '{namespace}/{spec.source_name}' has no artifact yet",
                SOURCE_RETRY,
                on_another=True,
            )
        return source

    def _choose(self, spec: HelmChartSpec, repository: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The version ``spec.version`` picks from the stored index, and its index entry."""
        index = parse_index(self.storage.local_path(repository["status"]["artifact"]["path"]).read_bytes())
        entries = index["entries"].get(spec.chart) or []
        versions = {str(e.get("version")): e for e in entries if isinstance(e, dict)}
        try:
            chosen = best_match(spec.version, versions)
        except ValueError as exc:
            raise Stalling("InvalidSpec", f"spec.version: {exc}") from None
        if chosen is None:
            raise Failure("ChartPullError", f"no '{spec.chart}' chart with version matching '{spec.version}' found")
        return chosen, versions[chosen]

    def _pull(
        self, ctx: Context, spec: HelmChartSpec, repository: dict[str, Any], version: str, entry: dict[str, Any],
        work: Path,
    ) -> Path:  # fmt: skip
        """Download the chart of ``entry`` (credentials only to the repository's origin) and unpack it."""
        repo_spec = HelmRepositorySpec.of(repository)
        credentials = repository_credentials(ctx, repository["metadata"]["namespace"], repo_spec)
        url = urljoin(repo_spec.url, str((entry.get("urls") or [""])[0]))
        with (work / PULLED).open("w+b") as spool:
            try:
                got = download(
                    url, spool, timeout=repo_spec.timeout, max_size=self.max_size, credentials=credentials,
                    origin=repo_spec.url, pass_credentials=repo_spec.pass_credentials,
                )  # fmt: skip
            except DownloadError as exc:
                raise Failure("AuthenticationFailed" if exc.authentication else "ChartPullError", exc.message) from None
            if entry.get("digest") and got.digest != f"sha256:{entry['digest']}":
                raise Failure("ChartPullError", f"chart '{spec.chart}' {version}: digest does not match index.yaml")
            return self._unpack_chart(spool, spec.chart, work)

    def _from_oci(
        self, ctx: Context, spec: HelmChartSpec, repository: dict[str, Any], work: Path, current: bool,
        artifact: dict[str, Any],
    ) -> tuple[Path | None, str, bool]:  # fmt: skip
        """The chart from an OCI registry: ``(chart_dir, version, unchanged)``.

        As Flux: an exact version whose chart is stored already (same name and generation) costs no
        registry call; a range is resolved from the registry's tags at every reconcile, and the chart is
        downloaded only when that picks another version than the stored one.
        """
        exact = helm_oci.is_exact_version(spec.version)
        if current and exact and artifact.get("revision") == spec.version:
            return None, spec.version, True
        repo_spec = HelmRepositorySpec.of(repository)
        credentials = registry_credentials(ctx.kube, repository["metadata"]["namespace"], repo_spec)
        version = spec.version if exact else helm_oci_tags.resolve(repo_spec, credentials, spec.chart, spec.version)
        if current and artifact.get("revision") == version:
            return None, version, True
        (work / "pull").mkdir()
        tgz = helm_oci.pull(repo_spec, credentials, spec.chart, version, work / "pull")
        if tgz.stat().st_size > self.max_size:
            raise Failure("ChartPullError", f"chart '{spec.chart}' is larger than the {self.max_size} bytes allowed")
        tgz.rename(work / PULLED)
        with (work / PULLED).open("rb") as data:
            chart_dir = self._unpack_chart(data, spec.chart, work)
        return chart_dir, version, False

    def _unpack_chart(self, data: IO[bytes], name: str, work: Path) -> Path:
        try:
            safe_extract(data, work / "chart", self.max_size)
        except (ArtifactError, tarfile.TarError) as exc:
            raise Failure("ChartPullError", f"chart archive is unusable: {exc}") from None
        roots = [p for p in (work / "chart").iterdir() if (p / "Chart.yaml").is_file()]
        if not roots:
            raise Failure("ChartPullError", f"chart archive of '{name}' has no Chart.yaml")
        return roots[0]

    def _from_git(self, spec: HelmChartSpec, source: dict[str, Any], work: Path) -> tuple[Path, str]:
        try:
            path = self.storage.local_path(source["status"]["artifact"]["path"])
            safe_extract(path, work / "src", max(self.max_size, MAX_CHART_SIZE * 8))
        except ArtifactError as exc:
            raise Failure("ChartPackageError", f"source artifact is unusable: {exc}") from None
        chart_dir = _inside(work / "src", spec.chart, "spec.chart")
        chart_file = chart_dir / "Chart.yaml"
        if not chart_file.is_file():
            raise Failure("ChartPackageError", f"no Chart.yaml at '{spec.chart}' in the source")
        try:
            version = str((yaml.safe_load(chart_file.read_text()) or {}).get("version") or "")
        except yaml.YAMLError:
            raise Failure("ChartPackageError", f"'{spec.chart}/Chart.yaml' is not valid YAML") from None
        if not version:
            raise Failure("ChartPackageError", f"'{spec.chart}/Chart.yaml' has no version")
        return chart_dir, version
