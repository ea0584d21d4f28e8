"""HelmRelease post-rendering without helm or kustomize: the kustomize layers generated from
postRenderers / commonMetadata / owner labels, their validation, prepare()'s files and helm args, the
plugin's pure helpers (hook split, List wrapping, Secret redaction) and the plugin as package data."""

from __future__ import annotations

import base64
import json
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from fluxwarden.controllers.helm import postrender
from fluxwarden.controllers.helm.plugin import run
from fluxwarden.controllers.helm.postrender import InvalidPostRenderer, Layer, layers, prepare

OWNERS = {"helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": "cluster-config"}
SMP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  extra: 'yes'\n"
JSON6902 = "- op: add\n  path: /metadata/labels/patched\n  value: 'true'\n"


def transformers(layer: Layer) -> list[dict[str, Any]]:
    return [json.loads(text) for text in layer.kustomization["transformers"]]


# --- layers() ------------------------------------------------------------------------------------


def test_no_post_renderers_still_sets_the_owner_labels_on_metadata_only() -> None:
    [layer] = layers(None, None, OWNERS)
    assert layer.field == "owner labels"
    assert layer.kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert transformers(layer) == [
        {
            "apiVersion": "builtin",
            "kind": "LabelTransformer",
            "metadata": {"name": "fluxwarden-owner-labels"},
            "labels": OWNERS,
            "fieldSpecs": [{"path": "metadata/labels", "create": True}],
        }
    ]
    # Not kustomize's labels:/commonLabels:, which would rewrite selectors and pod templates too.
    assert "labels" not in layer.kustomization and "commonLabels" not in layer.kustomization


def test_each_kustomize_entry_is_a_layer_in_order_then_the_metadata() -> None:
    result = layers(
        [
            {"kustomize": {"patches": [{"patch": SMP}]}},
            {},  # no kustomize: Flux skips it
            {"kustomize": {}},  # nothing to do: no layer
            {"kustomize": {"images": [{"name": "nginx", "newTag": "1.27"}]}},
        ],
        {"labels": {"team": "a"}},
        OWNERS,
    )
    assert [layer.field for layer in result] == [
        "spec.postRenderers[0].kustomize",
        "spec.postRenderers[3].kustomize",
        "spec.commonMetadata",
    ]
    assert result[0].kustomization["patches"] == [{"patch": SMP}]
    assert "images" not in result[0].kustomization
    assert result[1].kustomization["images"] == [{"name": "nginx", "newTag": "1.27"}]
    assert "resources" not in result[0].kustomization  # the plugin adds its input


def test_patch_targets_and_images_keep_flux_fields_and_drop_empty_ones() -> None:
    target = {
        **{"group": "apps", "version": "v1", "kind": "Deployment", "name": "web", "namespace": ""},
        **{"labelSelector": "app=web", "annotationSelector": "a=b", "unknown": "x"},
    }
    image = {"name": "nginx", "newName": "registry.local/nginx", "newTag": "", "digest": "sha256:" + "0" * 64}
    [layer, _] = layers(
        [{"kustomize": {"patches": [{"patch": JSON6902, "target": target}], "images": [image]}}], None, OWNERS
    )
    del target["namespace"], target["unknown"]
    assert layer.kustomization["patches"] == [{"patch": JSON6902, "target": target}]
    assert layer.kustomization["images"] == [
        {"name": "nginx", "newName": "registry.local/nginx", "digest": "sha256:" + "0" * 64}
    ]


def test_common_labels_then_annotations_then_owner_labels_so_owners_win() -> None:
    common = {"labels": {"team": "a", "helm.toolkit.fluxcd.io/name": "spoofed"}, "annotations": {"owner": "ops"}}
    [layer] = layers([], common, OWNERS)
    assert layer.field == "spec.commonMetadata"
    configs = transformers(layer)
    assert [(c["kind"], c.get("labels") or c.get("annotations")) for c in configs] == [
        ("LabelTransformer", common["labels"]),
        ("AnnotationsTransformer", {"owner": "ops"}),
        ("LabelTransformer", OWNERS),
    ]
    assert configs[1]["fieldSpecs"] == [{"path": "metadata/annotations", "create": True}]
    assert len({c["metadata"]["name"] for c in configs}) == 3  # kustomize refuses two with one name


@pytest.mark.parametrize(
    ("post_renderers", "common", "message"),
    [
        ({"kustomize": {}}, None, "spec.postRenderers: must be a list"),
        (["x"], None, "spec.postRenderers[0]: must be an object"),
        ([{"kustomize": []}], None, "spec.postRenderers[0].kustomize: must be an object"),
        ([{"kustomize": {"patches": {}}}], None, "spec.postRenderers[0].kustomize.patches: must be a list"),
        ([{"kustomize": {"patches": [{}]}}], None, "spec.postRenderers[0].kustomize.patches[0].patch: must hold"),
        ([{"kustomize": {"patches": [{"patch": " "}]}}], None, "patches[0].patch: must hold an inline"),
        ([{}, {"kustomize": {"patches": [{"patch": SMP, "target": "web"}]}}], None, "[1].kustomize.patches[0].target"),
        ([{"kustomize": {"patches": [{"patch": SMP, "target": {"kind": 1}}]}}], None, "target.kind: must be a string"),
        ([{"kustomize": {"images": [{"newTag": "1"}]}}], None, "images[0].name: the image name to replace is required"),
        ([{"kustomize": {"images": ["nginx"]}}], None, "spec.postRenderers[0].kustomize.images[0]: must be an object"),
        ([], [], "spec.commonMetadata: must be an object"),
        ([], {"labels": {"replicas": 3}}, "spec.commonMetadata.labels: must map strings to strings"),
        ([], {"annotations": ["a"]}, "spec.commonMetadata.annotations: must map strings to strings"),
    ],
)
def test_bad_values_name_the_field(post_renderers: Any, common: Any, message: str) -> None:
    with pytest.raises(InvalidPostRenderer, match=r"^spec\.") as caught:
        layers(post_renderers, common, OWNERS)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# --- prepare() -----------------------------------------------------------------------------------


def test_prepare_writes_a_private_config_and_returns_the_plugin_args(tmp_path: Path) -> None:
    kustomize = tmp_path / "bin" / "kustomize"
    result = prepare(tmp_path, [{"kustomize": {"patches": [{"patch": SMP}]}}], None, OWNERS, kustomize=str(kustomize))
    directory = tmp_path / "postrender"
    assert result.args == ["--post-renderer", "fluxwarden-kustomize", "--post-renderer-args", str(directory)]
    assert result.env == {"HELM_PLUGINS": str(postrender.PLUGINS_DIR), "FLUXWARDEN_PLUGIN_PYTHON": sys.executable}
    assert result.error_file == directory / "error"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "config.json").stat().st_mode) == 0o600
    config = json.loads((directory / "config.json").read_text())
    assert config["kustomize"] == str(kustomize)
    assert (directory / "kustomize").read_text() == f"{kustomize}\n"
    assert config["strategy"] == "combined"
    assert [layer["field"] for layer in config["layers"]] == ["spec.postRenderers[0].kustomize", "owner labels"]
    # No patch, label or path of the spec on the command line: only the directory.
    assert SMP not in " ".join(result.args) and "web" not in " ".join(result.args)


def test_prepare_writes_the_chain_of_kustomizations_for_the_combined_strategy(tmp_path: Path) -> None:
    prepare(tmp_path, [{"kustomize": {"patches": [{"patch": SMP}]}}], None, OWNERS, kustomize="/bin/true")
    chain = tmp_path / "postrender" / "chain"
    found = {path.parent.name: yaml.safe_load(path.read_text()) for path in chain.glob("*/kustomization.yaml")}
    assert sorted(found) == ["input", "layer-0", "top"]
    assert found["input"]["resources"] == ["helm-output.yaml"]
    assert found["layer-0"]["resources"] == ["../input"]
    assert found["layer-0"]["patches"] == [{"patch": SMP}]
    assert found["top"]["resources"] == ["../layer-0"]
    assert len(found["top"]["transformers"]) == 1
    assert all(k["kind"] == "Kustomization" for k in found.values())
    # Another strategy has no fast path: the Python side splits the hooks.
    prepare(tmp_path, [], None, OWNERS, strategy="separate", kustomize="/bin/true")
    assert not chain.exists()


def test_failure_reads_the_plugin_error_file(tmp_path: Path) -> None:
    result = prepare(tmp_path, None, None, OWNERS, kustomize="/bin/true")
    assert result.failure() is None
    result.error_file.write_text("spec.postRenderers[0].kustomize: no matches\n")
    assert result.failure() == "spec.postRenderers[0].kustomize: no matches"


def test_prepare_takes_the_post_render_strategy(tmp_path: Path) -> None:
    prepare(tmp_path, None, None, OWNERS, strategy="nohooks", kustomize="/bin/true")
    assert json.loads((tmp_path / "postrender" / "config.json").read_text())["strategy"] == "nohooks"
    with pytest.raises(InvalidPostRenderer, match=r"^spec\.postRenderStrategy: 'all' is not one of combined"):
        prepare(tmp_path, None, None, OWNERS, strategy="all", kustomize="/bin/true")


def test_prepare_without_kustomize_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="kustomize not found on PATH"):
        prepare(tmp_path, None, None, OWNERS)


# --- the plugin's helpers ------------------------------------------------------------------------

HOOK = b"apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations: {helm.sh/hook: pre-install}\n"
CONFIG_MAP = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata: {a: 'yes'}\n"


def test_split_hooks_keeps_each_document_byte_for_byte() -> None:
    hooks, templates = run.split_hooks(CONFIG_MAP + b"---\n" + HOOK + b"---\n\n---\n" + CONFIG_MAP)
    assert hooks == HOOK
    assert templates == CONFIG_MAP + b"---\n" + CONFIG_MAP


def test_as_list_resolves_aliases_across_documents() -> None:
    stream = (
        b"kind: A\nmetadata:\n  labels: &l\n    app: x\n"
        b"---\nkind: B\nmetadata:\n  labels: *l\n  text: |\n    one\n\n    two\n"
    )
    with pytest.raises(yaml.YAMLError):
        list(yaml.safe_load_all(stream))
    wrapped = yaml.safe_load(run.as_list(stream))
    assert wrapped["kind"] == "List"
    assert [item["metadata"]["labels"] for item in wrapped["items"]] == [{"app": "x"}, {"app": "x"}]
    assert wrapped["items"][1]["metadata"]["text"] == "one\n\ntwo\n"


def test_redact_blanks_secret_values_plain_and_base64() -> None:
    password = "correct horse battery staple"
    manifests = (
        b"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
        b"data: {token: " + base64.b64encode(password.encode()) + b"}\nstringData: {key: hunter2secret}\n"
        b"---\n" + CONFIG_MAP
    )
    message = (
        f"patch failed on {base64.b64encode(password.encode()).decode()}: value {password!r}\n"
        "and hunter2secret, not 'yes'"
    )
    redacted = run.redact(message, manifests)
    assert password not in redacted and "hunter2secret" not in redacted
    assert base64.b64encode(password.encode()).decode() not in redacted
    assert redacted == "patch failed on <redacted>: value '<redacted>' and <redacted>, not 'yes'"
    assert len(run.redact("x" * 1000, manifests)) == run.MAX_MESSAGE


# --- the plugin as package data -----------------------------------------------------------------


def test_the_plugin_dir_is_what_helm_loads_and_ships_as_package_data() -> None:
    plugin_dir = postrender.PLUGINS_DIR / "fluxwarden-kustomize"
    metadata = yaml.safe_load((plugin_dir / "plugin.yaml").read_text())
    assert metadata["name"] == postrender.PLUGIN_NAME
    assert (metadata["apiVersion"], metadata["type"], metadata["runtime"]) == ("v1", "postrenderer/v1", "subprocess")
    [command] = metadata["runtimeConfig"]["platformCommand"]
    assert command == {"command": "/bin/sh", "args": ["${HELM_PLUGIN_DIR}/post-render.sh"]}
    script = (plugin_dir / "post-render.sh").read_text()
    package = run.__name__.rsplit(".", 1)[0]
    assert f'exec "${{{postrender.PYTHON_ENV}}}" -P -m {package} "$dir"' in script
    pyproject = tomllib.loads((Path(__file__).parents[4] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"][package]
    shipped = {path for pattern in patterns for path in postrender.PLUGINS_DIR.glob(pattern)}
    assert shipped == {plugin_dir / "plugin.yaml", plugin_dir / "post-render.sh"}


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        (
            "Error: accumulating resources: accumulation err='accumulating resources from '../layer-0': "
            "'{root}/layer-0' must resolve to a file': recursed accumulation of path '{root}/layer-0': "
            'no resource matches strategic merge patch "ConfigMap.v1.[noGrp]/x.[noNs]": no matches for Id '
            "ConfigMap.v1.[noGrp]/x.[noNs]; failed to find unique target for patch ConfigMap.v1.[noGrp]/x.[noNs]\n",
            'no resource matches strategic merge patch "ConfigMap.v1.[noGrp]/x.[noNs]": no matches for Id '
            "ConfigMap.v1.[noGrp]/x.[noNs]; failed to find unique target for patch ConfigMap.v1.[noGrp]/x.[noNs]"
            " (a patch without a target must name an object the chart renders)",
        ),
        (
            "Error: accumulating resources: accumulation err='accumulating resources from 'helm-output.yaml': "
            "may not add resource with an already registered id: ServiceAccount.v1.[noGrp]/sa.[noNs]': must build "
            "at directory: not a valid directory: evalsymlink failure on '{root}/single-0/helm-output.yaml'\n",
            "may not add resource with an already registered id: ServiceAccount.v1.[noGrp]/sa.[noNs] (the chart "
            "renders it twice, e.g. as a hook and a template: try spec.postRenderStrategy separate)",
        ),
        (
            "Error: trouble configuring builtin PatchTransformer with config: `\npatch: '{{{{ x'\n`: unable to "
            'parse SM or JSON patch from [patch: "{{{{ x"]\n',
            "trouble configuring builtin PatchTransformer with config: ` patch: '{{ x' `: unable to parse SM or "
            'JSON patch from [patch: "{{ x"]',
        ),
    ],
)
def test_kustomize_errors_come_out_on_one_line_without_wrappers_or_paths(
    tmp_path: Path, stderr: str, expected: str
) -> None:
    assert run._kustomize_error(stderr.format(root=tmp_path).encode(), tmp_path) == expected
