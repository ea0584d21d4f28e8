"""The chart of a HelmRelease: the HelmChart template for ``spec.chart``, the source's artifact, a local copy.

``spec.chart`` becomes a HelmChart ``<hr ns>-<hr name>`` in the source's namespace, applied server-side
by the controller as ``helm-controller`` with the owner labels, and deleted when the release goes or
moves to ``chartRef``. The source controller builds it; this module only reads its artifact, which is
downloaded once per digest (through the shared artifact client) and kept unpacked on disk.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fluxwarden.controllers.artifacts.client import fetch_artifact
from fluxwarden.controllers.artifacts.errors import FetchError
from fluxwarden.controllers.helm.api import DEPENDENCY_REQUEUE, FIELD_MANAGER, NAME_LABEL, NAMESPACE_LABEL
from fluxwarden.controllers.runtime import conditions
from fluxwarden.controllers.runtime.errors import Failure, Waiting
from fluxwarden.controllers.runtime.kube import APPLY_PATCH, Kube, KubeError, NotFound, Resource
from fluxwarden.controllers.runtime.spec import mapping
from fluxwarden.tenancy.kinds import SOURCE

HELM_CHART = Resource(SOURCE, "v1", "helmcharts", "HelmChart")
OCI_REPOSITORY = Resource(SOURCE, "v1", "ocirepositories", "OCIRepository")  # a chart pushed with ``helm push``
CHART_SOURCES = {"HelmChart": HELM_CHART, "OCIRepository": OCI_REPOSITORY}
CACHED_CHARTS = 256
OPTIONAL_FIELDS = ("valuesFiles", "ignoreMissingValuesFiles")  # copied to the HelmChart only when set
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def chart_path(namespace: str, name: str) -> str:
    return f"/apis/{SOURCE}/v1/namespaces/{namespace}/helmcharts/{name}"


@dataclass(frozen=True)
class ChartRef:
    kind: str
    namespace: str
    name: str

    @property
    def display(self) -> str:
        return f"{self.kind} '{self.namespace}/{self.name}'"


def template_ref(obj: dict[str, Any]) -> ChartRef:
    """Where ``spec.chart``'s HelmChart lives: the source's namespace, named ``<hr ns>-<hr name>``."""
    meta = obj["metadata"]
    source = mapping(mapping(mapping(mapping(obj.get("spec")).get("chart")).get("spec")).get("sourceRef"))
    return ChartRef(
        "HelmChart", str(source.get("namespace") or meta["namespace"]), f"{meta['namespace']}-{meta['name']}"
    )


def chart_ref(obj: dict[str, Any]) -> ChartRef:
    """The chart source this release installs from: ``spec.chartRef`` or the HelmChart template."""
    ref = mapping(mapping(obj.get("spec")).get("chartRef"))
    if ref:
        return ChartRef(
            str(ref.get("kind")), str(ref.get("namespace") or obj["metadata"]["namespace"]), str(ref.get("name"))
        )
    return template_ref(obj)


def template(obj: dict[str, Any], interval: str) -> dict[str, Any]:
    """The HelmChart object ``spec.chart`` asks for."""
    meta = obj["metadata"]
    chart = mapping(mapping(obj.get("spec")).get("chart"))
    chart_spec = mapping(chart.get("spec"))
    extra = mapping(chart.get("metadata"))
    ref = template_ref(obj)
    source = mapping(chart_spec.get("sourceRef"))
    spec: dict[str, Any] = {
        "chart": chart_spec.get("chart"),
        "version": chart_spec.get("version") or "*",
        "sourceRef": {"kind": source.get("kind"), "name": source.get("name")},
        "interval": chart_spec.get("interval") or interval,
        "reconcileStrategy": chart_spec.get("reconcileStrategy") or "ChartVersion",
    }
    for optional in OPTIONAL_FIELDS:
        if chart_spec.get(optional) not in (None, [], {}):
            spec[optional] = chart_spec[optional]
    labels = {str(k): str(v) for k, v in mapping(extra.get("labels")).items()}
    labels.update({NAME_LABEL: meta["name"], NAMESPACE_LABEL: meta["namespace"]})
    metadata: dict[str, Any] = {"name": ref.name, "namespace": ref.namespace, "labels": labels}
    if annotations := mapping(extra.get("annotations")):
        metadata["annotations"] = {str(k): str(v) for k, v in annotations.items()}
    return {"apiVersion": HELM_CHART.api_version, "kind": "HelmChart", "metadata": metadata, "spec": spec}


def _owned(live: dict[str, Any], field_name: str) -> set[str]:
    """The ``metadata.<field_name>`` keys this controller's last apply set (its managedFields entry)."""
    owned: set[str] = set()
    for entry in mapping(live.get("metadata")).get("managedFields") or []:
        if isinstance(entry, dict) and entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply":
            fields = mapping(mapping(mapping(entry.get("fieldsV1")).get("f:metadata")).get(f"f:{field_name}"))
            owned |= {k[2:] for k in fields if k.startswith("f:")}
    return owned


def template_matches(live: dict[str, Any], body: dict[str, Any]) -> bool:
    """Applying ``body`` again would change nothing: ``live`` holds all it sets, and nothing our last
    apply set that it no longer does (a label or valuesFiles removed from ``spec.chart``)."""
    meta, want = mapping(live.get("metadata")), body["metadata"]
    for field_name in ("labels", "annotations"):
        have, wanted = mapping(meta.get(field_name)), mapping(want.get(field_name))
        if any(have.get(k) != v for k, v in wanted.items()) or _owned(live, field_name) - set(wanted):
            return False
    spec = mapping(live.get("spec"))
    dropped = [k for k in OPTIONAL_FIELDS if k in spec and k not in body["spec"]]  # removed from spec.chart
    return not dropped and all(spec.get(k) == v for k, v in body["spec"].items())


def apply_template(kube: Kube, obj: dict[str, Any], interval: str) -> tuple[ChartRef, dict[str, Any] | None]:
    """Create or update the HelmChart; an unchanged one is only read (a no-op reconcile writes nothing).

    Returns where it is and, when it was unchanged, the object as read.
    """
    body = template(obj, interval)
    ref = template_ref(obj)
    path = chart_path(ref.namespace, ref.name)
    try:
        live = kube.request("GET", path, what=f"HelmChart {ref.namespace}/{ref.name}")
        if template_matches(live, body):
            return ref, live
    except NotFound:
        pass
    except KubeError as exc:
        raise Failure("ArtifactFailed", f"could not get HelmChart '{ref.namespace}/{ref.name}': {exc}") from None
    try:
        kube.request(
            "PATCH", path, query={"fieldManager": FIELD_MANAGER, "force": "true"}, body=body,
            content_type=APPLY_PATCH, what=f"HelmChart {ref.namespace}/{ref.name}",
        )  # fmt: skip
    except KubeError as exc:
        raise Failure("ArtifactFailed", f"could not apply HelmChart '{ref.namespace}/{ref.name}': {exc}") from None
    return ref, None


def delete_template(kube: Kube, namespace: str, name: str) -> None:
    """Delete a HelmChart this controller made (it carries our labels); gone already is fine."""
    try:
        kube.request("DELETE", chart_path(namespace, name), what=f"HelmChart {namespace}/{name}")
    except NotFound:
        return


def artifact(kube: Kube, ref: ChartRef, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """The source's artifact (``source`` when already read); Waiting (``SourceNotReady``, as Flux) while it
    is missing, stale or failing."""
    resource = CHART_SOURCES.get(ref.kind)
    if resource is None:
        raise Failure("ArtifactFailed", f"could not get Source object: unsupported kind {ref.kind}")
    try:
        source = source or kube.get(resource, ref.namespace, ref.name)
    except NotFound:
        raise Waiting(
            "ArtifactFailed",
            f"could not get Source object: {ref.display} not found",
            DEPENDENCY_REQUEUE,
            on_another=True,
        ) from None
    status = mapping(source.get("status"))
    ready = conditions.get(status, conditions.READY)
    current = status.get("observedGeneration") == source["metadata"].get("generation")
    found = mapping(status.get("artifact"))
    if not current:
        raise Waiting(
            "SourceNotReady", f"{ref.display} is not ready: not observed yet", DEPENDENCY_REQUEUE, on_another=True
        )
    if not found.get("url"):
        reason = (ready or {}).get("message") or "does not have an artifact"
        raise Waiting("SourceNotReady", f"{ref.display} is not ready: {reason}", DEPENDENCY_REQUEUE, on_another=True)
    if ready is not None and ready.get("status") != "True":
        raise Waiting(
            "SourceNotReady", f"{ref.display} is not ready: {ready.get('message')}", DEPENDENCY_REQUEUE, on_another=True
        )
    return dict(found)


@dataclass(frozen=True)
class Chart:
    """A chart unpacked on disk, and the metadata that decides whether a release is in sync."""

    path: Path
    name: str
    version: str
    app_version: str

    @property
    def display(self) -> str:
        return f"{self.name}@{self.version}"


class ChartCache:
    """Unpacked charts by artifact digest; the least recently used ones are removed from disk."""

    def __init__(self, root: Path, max_size: int, size: int = CACHED_CHARTS) -> None:
        self.root = root
        self.max_size = max_size
        self.size = size
        self._charts: OrderedDict[str, Chart] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, found: dict[str, Any], timeout: float) -> Chart:
        digest = str(found.get("digest") or "")
        with self._lock:
            chart = self._charts.get(digest)
            if chart is not None and chart.path.exists():
                self._charts.move_to_end(digest)
                return chart
        chart = self._fetch(found, digest, timeout)
        with self._lock:
            self._charts[digest] = chart
            while len(self._charts) > self.size:
                _, old = self._charts.popitem(last=False)
                shutil.rmtree(old.path.parent, ignore_errors=True)
        return chart

    def versioned(self, chart: Chart, digest: str, version: str) -> Chart:
        """``chart`` with ``version`` in its Chart.yaml (an OCI source's digest in the build metadata), as a
        sibling copy cached beside it, so helm records that version for the release."""
        if version == chart.version:
            return chart
        key = f"{digest}+{version}"
        with self._lock:
            cached = self._charts.get(key)
            if cached is not None and cached.path.exists():
                self._charts.move_to_end(key)
                return cached
        final = chart.path.parent.with_name(f"{chart.path.parent.name}+{version.rpartition('+')[2]}")
        if not (final / ".complete").exists():
            staging = Path(tempfile.mkdtemp(prefix=".version-", dir=self.root))
            try:
                shutil.copytree(chart.path, staging / "chart" / chart.path.name, symlinks=True)
                chart_yaml = staging / "chart" / chart.path.name / "Chart.yaml"
                metadata = mapping(yaml.safe_load(chart_yaml.read_text()))
                chart_yaml.write_text(yaml.safe_dump({**metadata, "version": version}, sort_keys=False))
                (staging / "chart" / ".complete").touch()
                shutil.rmtree(final, ignore_errors=True)  # a half-written copy of an earlier process
                with contextlib.suppress(OSError):  # another reconcile moved the same copy in first
                    os.rename(staging / "chart", final)
            except (OSError, yaml.YAMLError) as exc:
                raise Failure("ChartMutateError", f"could not set chart version {version}: {exc}") from None
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        versioned = self._load(final)
        with self._lock:
            self._charts[key] = versioned
        return versioned

    def _fetch(self, found: dict[str, Any], digest: str, timeout: float) -> Chart:
        """Download and unpack into a private temporary directory, then move it into place in one rename:
        a chart another reconcile is installing from is never removed or half written."""
        if not DIGEST.match(digest):
            raise Failure(
                "ArtifactFailed", f"Could not load chart: artifact digest '{digest[:80]}' is not sha256:<hex>"
            )
        final = self.root / digest.replace(":", "-")
        if (final / ".complete").exists():
            return self._load(final)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=self.root))
        try:
            fetch_artifact(str(found.get("url")), digest, staging / "chart", self.max_size, timeout)
            (staging / "chart" / ".complete").touch()
            if final.exists() and not (final / ".complete").exists():
                shutil.rmtree(final, ignore_errors=True)  # left half-written by an earlier process
            with contextlib.suppress(OSError):  # another reconcile moved the same chart in first
                os.rename(staging / "chart", final)
        except FetchError as exc:
            raise Failure("ArtifactFailed", f"Could not load chart: {exc}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self._load(final)

    def _load(self, dest: Path) -> Chart:
        charts = [p.parent for p in dest.glob("*/Chart.yaml")]
        if len(charts) != 1:
            raise Failure("ArtifactFailed", "Could not load chart: the artifact does not hold exactly one chart")
        try:
            metadata = yaml.safe_load((charts[0] / "Chart.yaml").read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise Failure("ArtifactFailed", f"Could not load chart: Chart.yaml: {exc}") from None
        metadata = mapping(metadata)
        if not metadata.get("name") or not metadata.get("version"):
            raise Failure("ArtifactFailed", "Could not load chart: Chart.yaml has no name or version")
        return Chart(charts[0], str(metadata["name"]), str(metadata["version"]), str(metadata.get("appVersion") or ""))
