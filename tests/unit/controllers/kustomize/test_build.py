"""Build preparation without the CLI: overlay spec fields, spec.path, kustomization generation and
rewriting, the tree walk that refuses remote bases and escapes, and reading kustomize's output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fluxwarden.controllers.kustomize.build import (
    BuildError,
    Overlay,
    apply_overlay,
    build,
    check_tree,
    generate_kustomization,
    kustomization_file,
    parse_manifests,
    resolve_path,
)
from tests.support.files import write_tree as write

CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


# --- Overlay.from_spec -------------------------------------------------------------------------


def test_overlay_from_a_full_spec() -> None:
    spec = {
        "path": "./apps",
        "targetNamespace": "team",
        "namePrefix": "p-",
        "nameSuffix": "-s",
        "patches": [
            {"patch": "- op: remove\n  path: /spec/replicas\n", "target": {"kind": "Deployment", "name": "app"}},
            {"patch": "kind: ConfigMap\nmetadata:\n  name: x\n"},
        ],
        "images": [{"name": "nginx", "newTag": "1.27"}, {"name": "app", "newName": "r/app", "digest": "sha256:ab"}],
        "components": ["../ingress"],
    }
    assert Overlay.from_spec(spec) == Overlay(
        target_namespace="team",
        name_prefix="p-",
        name_suffix="-s",
        patches=(
            {"patch": "- op: remove\n  path: /spec/replicas\n", "target": {"kind": "Deployment", "name": "app"}},
            {"patch": "kind: ConfigMap\nmetadata:\n  name: x\n"},
        ),
        images=({"name": "nginx", "newTag": "1.27"}, {"name": "app", "newName": "r/app", "digest": "sha256:ab"}),
        components=("../ingress",),
    )


@pytest.mark.parametrize(
    "spec",
    [{}, {"targetNamespace": "", "namePrefix": None, "patches": None, "images": [], "components": []}],
    ids=["absent", "empty"],
)
def test_overlay_from_a_spec_without_overlay_fields(spec: dict[str, Any]) -> None:
    assert Overlay.from_spec(spec) == Overlay()


def test_overlay_drops_empty_target_fields() -> None:
    overlay = Overlay.from_spec({"patches": [{"patch": "x: y", "target": {"kind": "", "name": None}}]})
    assert overlay.patches == ({"patch": "x: y"},)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"targetNamespace": 3}, "spec.targetNamespace"),
        ({"patches": {"patch": "x"}}, "spec.patches must be a list"),
        ({"patches": ["x"]}, "spec.patches[0]"),
        ({"patches": [{"target": {"kind": "A"}}]}, "spec.patches[0].patch"),
        ({"patches": [{"patch": "x", "target": {"kinds": "A"}}]}, "spec.patches[0].target has unknown field 'kinds'"),
        ({"patches": [{"patch": "x", "path": "p.yaml"}]}, "spec.patches[0] has unknown field 'path'"),
        ({"patches": [{"patch": "x", "target": "Deployment"}]}, "spec.patches[0].target must be a mapping"),
        ({"images": [{"newTag": "1"}]}, "spec.images[0].name"),
        ({"images": [{"name": "a", "newTag": 1.2}]}, "spec.images[0].newTag must be a string"),
        ({"components": [""]}, "spec.components[0]"),
    ],
)
def test_overlay_refuses_malformed_fields_naming_them(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(BuildError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Overlay.from_spec(spec)


# --- spec.path ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [("", "."), ("./", "."), (".", "."), ("./apps", "apps"), ("apps/", "apps"), ("/apps", "apps"),
     ("apps/../apps/team", "apps/team"), ("./apps/./team", "apps/team")],
)  # fmt: skip
def test_paths_inside_the_artifact(tmp_path: Path, path: str, expected: str) -> None:
    (tmp_path / "apps" / "team").mkdir(parents=True)
    assert resolve_path(tmp_path.resolve(), path) == (tmp_path / expected).resolve()


@pytest.mark.parametrize("path", ["..", "../other", "./../other", "apps/../../other", "/../other", "apps/../.."])
def test_paths_escaping_the_artifact_are_refused(tmp_path: Path, path: str) -> None:
    root = tmp_path / "source"
    (root / "apps").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    with pytest.raises(BuildError, match="points outside the artifact"):
        build(root, path, Overlay(), block_remote_bases=False)


def test_a_symlink_out_of_the_artifact_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "source"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(BuildError, match="points outside the artifact"):
        resolve_path(root.resolve(), "link")


def test_missing_path_and_file_path(tmp_path: Path) -> None:
    write(tmp_path, {"file.yaml": "a: b\n"})
    with pytest.raises(BuildError, match=r"spec\.path 'nope' was not found in the artifact"):
        resolve_path(tmp_path, "nope")
    with pytest.raises(BuildError, match=r"spec\.path 'file\.yaml' is not a directory"):
        resolve_path(tmp_path, "file.yaml")


# --- kustomization generation ------------------------------------------------------------------


def test_generation_lists_manifests_recursively_like_flux(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "b.yaml": CONFIG_MAP.format(name="b"),
            "a.yml": CONFIG_MAP.format(name="a") + "---\n" + CONFIG_MAP.format(name="a2"),
            "notes.txt": "not yaml: [",
            "values.yaml": "replicaCount: 2\nimage: {tag: x}\n",  # YAML, but no Kubernetes object
            ".gitlab-ci.yml": "stages: [build]\n",
            "empty.yaml": "# nothing here\n",
            "nested/deep/c.yaml": CONFIG_MAP.format(name="c"),
            "nested/d.yaml": "---\n" + CONFIG_MAP.format(name="d"),
            "withkust/kustomization.yaml": "resources: [e.yaml]\n",
            "withkust/e.yaml": CONFIG_MAP.format(name="e"),
            "withkust/sub/f.yaml": CONFIG_MAP.format(name="f"),
            "other/Kustomization": "resources: []\n",
        },
    )
    kfile = generate_kustomization(tmp_path, tmp_path)
    assert kfile == tmp_path / "kustomization.yaml"
    assert yaml.safe_load(kfile.read_text()) == {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["a.yml", "b.yaml", "nested/d.yaml", "nested/deep/c.yaml", "other", "withkust"],
    }


def test_generation_of_an_empty_directory(tmp_path: Path) -> None:
    kfile = generate_kustomization(tmp_path, tmp_path)
    assert yaml.safe_load(kfile.read_text())["resources"] == []


def test_generation_refuses_broken_yaml_naming_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, {"apps/ok.yaml": CONFIG_MAP.format(name="ok"), "apps/bad.yaml": "a: b\nc: [d\n"})
    with pytest.raises(BuildError, match=r"^apps/bad.yaml:3: invalid YAML: .*exclude it from the source$"):
        generate_kustomization(tmp_path, tmp_path / "apps")


def test_several_kustomization_files_are_refused(tmp_path: Path) -> None:
    write(tmp_path, {"apps/kustomization.yaml": "resources: []\n", "apps/kustomization.yml": "resources: []\n"})
    with pytest.raises(BuildError, match="apps: found several kustomization files"):
        kustomization_file(tmp_path, tmp_path / "apps")


# --- overlay onto the kustomization file -------------------------------------------------------


def test_overlay_is_written_into_the_existing_file(tmp_path: Path) -> None:
    kfile = (
        write(
            tmp_path,
            {
                "kustomization.yml": (
                    "# comments are lost, as in Flux\n"
                    "namespace: old\n"
                    "resources: [cm.yaml]\n"
                    "patches:\n- path: own.yaml\n"
                    "images:\n- name: nginx\n  newTag: '1.0'\n- name: keep\n  newTag: '2'\n"
                    "components: [../own]\n"
                )
            },
        )
        / "kustomization.yml"
    )
    overlay = Overlay(
        target_namespace="team",
        name_prefix="p-",
        name_suffix="-s",
        patches=({"patch": "kind: X\n", "target": {"kind": "X"}},),
        images=({"name": "nginx", "newTag": "1.27"}, {"name": "new", "digest": "sha256:ab"}),
        components=("../extra",),
    )
    apply_overlay(tmp_path, kfile, overlay)
    assert yaml.safe_load(kfile.read_text()) == {
        "namespace": "team",
        "resources": ["cm.yaml"],
        "patches": [{"path": "own.yaml"}, {"patch": "kind: X\n", "target": {"kind": "X"}}],
        "images": [
            {"name": "nginx", "newTag": "1.27"},
            {"name": "keep", "newTag": "2"},
            {"name": "new", "digest": "sha256:ab"},
        ],
        "components": ["../own", "../extra"],
        "namePrefix": "p-",
        "nameSuffix": "-s",
    }


def test_an_empty_overlay_leaves_the_file_untouched(tmp_path: Path) -> None:
    text = "# keep me\nresources: [a.yaml]   # and me\n"
    kfile = write(tmp_path, {"kustomization.yaml": text}) / "kustomization.yaml"
    apply_overlay(tmp_path, kfile, Overlay())
    assert kfile.read_text() == text


@pytest.mark.parametrize(
    ("text", "message"),
    [("- a\n", "not a kustomization"), ("patches: x\n", "patches must be a list"), ("a: [b\n", "invalid YAML")],
)
def test_overlay_onto_a_malformed_file(tmp_path: Path, text: str, message: str) -> None:
    kfile = write(tmp_path, {"apps/kustomization.yaml": text}) / "apps" / "kustomization.yaml"
    with pytest.raises(BuildError, match=f"^apps/kustomization.yaml.*{message}"):
        apply_overlay(tmp_path, kfile, Overlay(patches=({"patch": "x: y"},)))


# --- the tree walk -----------------------------------------------------------------------------

TREE = {
    "clusters/prod/kustomization.yaml": "resources:\n- ../../apps\n- cm.yaml\n",
    "clusters/prod/cm.yaml": CONFIG_MAP.format(name="cm"),
    "apps/kustomization.yaml": "resources:\n- base\ncomponents:\n- ../components/tls\n",
    "apps/base/kustomization.yaml": "resources: []\n",
    "components/tls/kustomization.yaml": "kind: Component\n",
}


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        (
            "apps/base/kustomization.yaml",
            "resources:\n- deploy.yaml\n- https://github.com/org/repo//deploy?ref=v1\n",
            "apps/base/kustomization.yaml:3: resources entry 'https://github.com/org/repo//deploy?ref=v1' is fetched",
        ),
        (
            "components/tls/kustomization.yaml",
            "kind: Component\ncomponents:\n  - github.com/org/components/tls\n",
            "components/tls/kustomization.yaml:3: components entry 'github.com/org/components/tls' is fetched",
        ),
        (
            "apps/kustomization.yaml",
            "resources: [base]\ntransformers:\n- git@github.com:org/t.git\n",
            "apps/kustomization.yaml:3: transformers entry 'git@github.com:org/t.git' is fetched",
        ),
    ],
    ids=["resources-in-a-base", "components-in-a-component", "transformers"],
)
def test_remote_entries_anywhere_in_the_tree_are_refused(tmp_path: Path, file: str, text: str, message: str) -> None:
    root = write(tmp_path, {**TREE, file: text})
    with pytest.raises(BuildError) as caught:
        check_tree(root, [root / "clusters" / "prod"], block_remote=True)
    assert str(caught.value).startswith(message)
    assert "vendor it into the repository" in str(caught.value)
    check_tree(root, [root / "clusters" / "prod"], block_remote=False)  # allowed without multi-tenancy


def test_unreachable_kustomizations_are_not_checked(tmp_path: Path) -> None:
    root = write(tmp_path, {**TREE, "unused/kustomization.yaml": "resources: [https://example.com/x.yaml]\n"})
    check_tree(root, [root / "clusters" / "prod"], block_remote=True)


@pytest.mark.parametrize("entry", ["../../..", "/etc", "../../../../../../etc/kubernetes"])
def test_local_entries_leaving_the_artifact_are_refused(tmp_path: Path, entry: str) -> None:
    root = write(tmp_path / "source", {**TREE, "apps/base/kustomization.yaml": f"resources:\n- ok.yaml\n- {entry}\n"})
    with pytest.raises(BuildError, match=f"^apps/base/kustomization.yaml:3: resources entry '{entry}' points outside"):
        check_tree(root, [root / "clusters" / "prod"], block_remote=False)


def test_cycles_end(tmp_path: Path) -> None:
    cycle = {"a/kustomization.yaml": "resources: [../b]\n", "b/kustomization.yaml": "resources: [../a]\n"}
    root = write(tmp_path, cycle)
    check_tree(root, [root / "a"], block_remote=True)


def test_spec_components_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    root = write(tmp_path / "source", {"apps/kustomization.yaml": "resources: []\n"})
    remote = Overlay(components=("../local", "https://github.com/org/c"))
    with pytest.raises(BuildError, match=r"^spec.components\[1\]: components entry 'https://github.com/org/c'"):
        build(root, "apps", remote, block_remote_bases=True)
    with pytest.raises(BuildError, match=r"^spec.components\[0\] '../../..' points outside the artifact"):
        build(root, "apps", Overlay(components=("../../..",)), block_remote_bases=False)
    assert (root / "apps" / "kustomization.yaml").read_text() == "resources: []\n"


# --- reading kustomize's output ----------------------------------------------------------------


def test_output_is_read_as_kustomize_writes_it() -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n"
        '  date: 2024-01-01\n  time: 10:30\n  eq: =\n  merge: <<\n  quoted: "yes"\n'
        "---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: b\nspec:\n  replicas: 3\n  paused: false\n"
        "  ratio: 0.5\n  octal: 0o17\n"
        "---\n"
    )
    first, second = parse_manifests(text)
    assert first["data"] == {"date": "2024-01-01", "time": "10:30", "eq": "=", "merge": "<<", "quoted": "yes"}
    assert second["spec"] == {"replicas": 3, "paused": False, "ratio": 0.5, "octal": "0o17"}


def test_output_that_is_not_objects_is_refused() -> None:
    with pytest.raises(BuildError, match="not an object"):
        parse_manifests("- a\n")
    assert parse_manifests("") == []
