"""HelmRelease post-rendering: ``spec.postRenderers[].kustomize``, ``spec.commonMetadata`` and the owner labels.

helm v4 takes post-renderers as plugins only, so fluxwarden ships one (``plugin/fluxwarden-kustomize``).
``prepare()`` writes the plugin's configuration into the caller's private work dir and returns the helm
arguments and environment that select it. The plugin runs the real kustomize CLI, in Flux's order: each
``postRenderers[i].kustomize`` (patches, then images), then ``commonMetadata`` labels and annotations, then
the owner labels, the last two on ``metadata`` only (never selectors or pod templates), as Flux's
helm-controller does. Everything reaches the plugin through stdin and files in a 0700 directory, never
argv. For helm 4's default (combined) strategy the plugin is a shell script and one kustomize build, so
no Python starts per render; the Python side (``plugin/run.py``) handles the other strategies and errors.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fluxwarden.controllers.helm.plugin import run

PLUGIN_NAME = "fluxwarden-kustomize"
# helm loads plugins from $HELM_PLUGINS/*/plugin.yaml; this package dir holds ours (package data).
PLUGINS_DIR = Path(__file__).with_name("plugin")
# plugin.yaml runs /bin/sh post-render.sh, which runs one kustomize build in the usual case and hands
# anything else to "${FLUXWARDEN_PLUGIN_PYTHON} -P -m fluxwarden.controllers.helm.plugin": the
# controller's own interpreter, so it works from any venv, as non-root, on a read-only root fs.
PYTHON_ENV = "FLUXWARDEN_PLUGIN_PYTHON"
CONFIG_DIR = "postrender"
STRATEGIES = ("combined", "nohooks", "separate")
KUSTOMIZATION = run.KUSTOMIZATION
_SELECTOR_FIELDS = ("group", "version", "kind", "name", "namespace", "labelSelector", "annotationSelector")
_IMAGE_FIELDS = ("name", "newName", "newTag", "digest")


class InvalidPostRenderer(ValueError):
    """A postRenderers / commonMetadata value fluxwarden cannot run; the message names the field."""


@dataclass(frozen=True)
class PostRender:
    """What a helm install/upgrade/template call needs to post-render through the plugin."""

    args: list[str]  # ["--post-renderer", PLUGIN_NAME, "--post-renderer-args", <work_dir>/postrender]
    env: dict[str, str]  # HELM_PLUGINS and the interpreter for the plugin: merge into helm's env
    error_file: Path  # where the plugin leaves its one-line error (helm discards plugin stderr)

    def failure(self) -> str | None:
        """After a failed helm call: the plugin's one-line error, naming the spec field, or None if the
        post-renderer did not fail. helm itself only says 'plugin "fluxwarden-kustomize" exited with error'."""
        try:
            text = self.error_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return text or None


@dataclass(frozen=True)
class Layer:
    """One kustomize pass: ``field`` names the spec entry it comes from, for error messages."""

    field: str
    kustomization: dict[str, Any]  # without ``resources``: the plugin adds its input


def prepare(
    work_dir: Path,
    post_renderers: list[dict[str, Any]] | None,
    common_metadata: dict[str, Any] | None,
    owner_labels: dict[str, str],
    *,
    strategy: str | None = None,
    kustomize: str | None = None,
) -> PostRender:
    """Write what the plugin needs under ``work_dir`` (a private temp dir the caller removes) and return the
    helm args and env. ``strategy`` is ``spec.postRenderStrategy`` (default ``combined``, helm 4's); helm's
    CLI has no flag for it, so the plugin splits hooks itself. ``kustomize`` defaults to the one on PATH.

    Raises InvalidPostRenderer for a spec value it cannot run, FileNotFoundError without kustomize.
    """
    chosen = strategy or "combined"
    if chosen not in STRATEGIES:
        raise InvalidPostRenderer(f"spec.postRenderStrategy: {chosen!r} is not one of {', '.join(STRATEGIES)}")
    binary = kustomize or shutil.which("kustomize")
    if binary is None:
        raise FileNotFoundError("kustomize not found on PATH: the helm controller post-renders with the kustomize CLI")
    if not sys.executable:
        raise FileNotFoundError("no Python interpreter path (sys.executable) for the helm post-renderer plugin")
    directory = work_dir / CONFIG_DIR
    directory.mkdir(mode=0o700, exist_ok=True)
    planned = layers(post_renderers, common_metadata, owner_labels)
    program = str(Path(binary).absolute())
    config_layers = [{"field": layer.field, "kustomization": layer.kustomization} for layer in planned]
    config = {"kustomize": program, "strategy": chosen, "layers": config_layers}
    _write_private(directory / run.CONFIG, json.dumps(config, indent=1))
    _write_private(directory / "kustomize", program + "\n")  # for post-render.sh's `read`
    shutil.rmtree(directory / run.CHAIN, ignore_errors=True)  # a previous prepare() of this work dir
    if chosen == "combined":  # post-render.sh's fast path: one kustomize build, no Python
        run.write_chain(directory / run.CHAIN, config_layers)
    return PostRender(
        args=["--post-renderer", PLUGIN_NAME, "--post-renderer-args", str(directory)],
        env={"HELM_PLUGINS": str(PLUGINS_DIR), PYTHON_ENV: sys.executable},
        error_file=directory / run.ERROR,
    )


def layers(
    post_renderers: list[dict[str, Any]] | None,
    common_metadata: dict[str, Any] | None,
    owner_labels: Mapping[str, str],
) -> list[Layer]:
    """The kustomize passes, in Flux's order. Entries without ``kustomize`` (or with nothing in it) are
    skipped, as Flux skips them; the metadata pass is always last and always present."""
    if post_renderers is not None and not isinstance(post_renderers, list):
        raise InvalidPostRenderer("spec.postRenderers: must be a list")
    result = []
    for index, entry in enumerate(post_renderers or []):
        field = f"spec.postRenderers[{index}]"
        if not isinstance(entry, dict):
            raise InvalidPostRenderer(f"{field}: must be an object with a kustomize field")
        spec = entry.get("kustomize")
        if spec is None:
            continue
        if not isinstance(spec, dict):
            raise InvalidPostRenderer(f"{field}.kustomize: must be an object with patches and/or images")
        kustomization = _user_kustomization(f"{field}.kustomize", spec)
        if kustomization is not None:
            result.append(Layer(f"{field}.kustomize", kustomization))
    result.append(_metadata_layer(common_metadata, owner_labels))
    return result


def _user_kustomization(field: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    patches = [_patch(f"{field}.patches[{i}]", item) for i, item in enumerate(_list(field, spec, "patches"))]
    images = [_image(f"{field}.images[{i}]", item) for i, item in enumerate(_list(field, spec, "images"))]
    if not patches and not images:
        return None
    kustomization: dict[str, Any] = dict(KUSTOMIZATION)
    if patches:
        kustomization["patches"] = patches
    if images:
        kustomization["images"] = images
    return kustomization


def _list(field: str, spec: dict[str, Any], key: str) -> list[Any]:
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidPostRenderer(f"{field}.{key}: must be a list")
    return value


def _patch(field: str, patch: Any) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise InvalidPostRenderer(f"{field}: must be an object with patch and an optional target")
    text = patch.get("patch")
    if not isinstance(text, str) or not text.strip():
        raise InvalidPostRenderer(f"{field}.patch: must hold an inline strategic merge or JSON6902 patch")
    result: dict[str, Any] = {"patch": text}
    target = patch.get("target")
    if target is not None:
        if not isinstance(target, dict):
            raise InvalidPostRenderer(f"{field}.target: must be an object (kind, name, labelSelector, ...)")
        selector = _strings(f"{field}.target", target, _SELECTOR_FIELDS)
        if selector:
            result["target"] = selector
    return result


def _image(field: str, image: Any) -> dict[str, str]:
    if not isinstance(image, dict):
        raise InvalidPostRenderer(f"{field}: must be an object with name and newName, newTag or digest")
    result = _strings(field, image, _IMAGE_FIELDS)
    if "name" not in result:
        raise InvalidPostRenderer(f"{field}.name: the image name to replace is required")
    return result


def _strings(field: str, value: dict[str, Any], keys: tuple[str, ...]) -> dict[str, str]:
    """The known keys with non-empty values (Flux's Go structs drop empty strings); each must be a string."""
    result = {}
    for key in keys:
        item = value.get(key)
        if item is None or item == "":
            continue
        if not isinstance(item, str):
            raise InvalidPostRenderer(f"{field}.{key}: must be a string")
        result[key] = item
    return result


def _metadata_layer(common_metadata: dict[str, Any] | None, owner_labels: Mapping[str, str]) -> Layer:
    """commonMetadata labels, its annotations, then the owner labels (so they win), on metadata only:
    kustomize's builtin transformers with Flux's field specs, not ``labels:``/``commonAnnotations:``,
    which would also touch selectors and pod templates."""
    if common_metadata is not None and not isinstance(common_metadata, dict):
        raise InvalidPostRenderer("spec.commonMetadata: must be an object with labels and/or annotations")
    metadata = common_metadata or {}
    transformers = []
    labels = _string_map("spec.commonMetadata.labels", metadata.get("labels"))
    if labels:
        transformers.append(_transformer("LabelTransformer", "labels", labels))
    annotations = _string_map("spec.commonMetadata.annotations", metadata.get("annotations"))
    if annotations:
        transformers.append(_transformer("AnnotationsTransformer", "annotations", annotations))
    owners = _string_map("owner labels", dict(owner_labels))
    if owners:
        transformers.append(_transformer("LabelTransformer", "labels", owners, "owner"))
    field = "spec.commonMetadata" if labels or annotations else "owner labels"
    return Layer(field, {**KUSTOMIZATION, "transformers": transformers})


def _string_map(field: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidPostRenderer(f"{field}: must map strings to strings (quote numbers and booleans)")
    return dict(value)


def _transformer(kind: str, field: str, pairs: dict[str, str], name: str = "common") -> str:
    """An inline builtin transformer config (JSON is YAML) that kustomize runs in list order."""
    path = "metadata/labels" if field == "labels" else "metadata/annotations"
    config = {
        "apiVersion": "builtin",
        "kind": kind,
        "metadata": {"name": f"fluxwarden-{name}-{field}"},
        field: pairs,
        "fieldSpecs": [{"path": path, "create": True}],
    }
    return json.dumps(config)


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
