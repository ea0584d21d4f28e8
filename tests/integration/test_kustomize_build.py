"""The kustomize controller's build path against real things: the kustomize CLI (v5.7.1 from the
test binaries) and a real HTTP server serving artifacts.

Covers generation for plain directories, base + overlay repositories, every overlaid spec field,
remote-base refusal, the load restrictor, refused Helm and plugins, broken files, and
``fetch_artifact`` for a good artifact and its failure modes.
"""

from __future__ import annotations

import gzip
import io
import socket
import tarfile
from pathlib import Path
from typing import Any

import pytest

from fluxwarden.controllers.kustomize.build import BuildError, Overlay, build
from fluxwarden.controllers.kustomize.fetch import FetchError, fetch_artifact
from fluxwarden.controllers.kustomize.substitute import substitute, variables_from
from fluxwarden.controllers.source.artifact import build_tarball, digest
from fluxwarden.controllers.source.ignore import IgnoreRules
from tests.support.files import write_tree as write
from tests.support.http_files import StaticFileServer

pytestmark = pytest.mark.usefixtures("test_binaries")  # the real kustomize first on PATH

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: nginx:1.0
"""
SERVICE = "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\nspec:\n  ports: [{port: 80}]\n"
CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: {value}\n"


def by_id(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Objects keyed ``Kind/namespace/name`` (namespace empty when unset)."""
    return {f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o for o in objects}


def build_error(root: Path, path: str, overlay: Overlay | None = None, block: bool = True) -> str:
    with pytest.raises(BuildError) as caught:
        build(root, path, overlay or Overlay(), block_remote_bases=block)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message and not message.startswith("Error:")
    assert str(root) not in message  # scratch paths are shown relative to the artifact
    return message


# --- build ---------------------------------------------------------------------------------------


def test_plain_directory_gets_a_generated_kustomization(tmp_path: Path) -> None:
    root = write(
        tmp_path / "source",
        {
            "apps/deploy.yaml": DEPLOYMENT.format(name="web"),
            "apps/config/cm.yaml": CONFIG_MAP.format(name="settings", value="'10:30'")
            + "---\n"
            + CONFIG_MAP.format(name="more", value="x"),
            "apps/values.yaml": "replicaCount: 2\n",  # YAML that is not a Kubernetes object: skipped
            "apps/.gitlab-ci.yml": "stages: [build]\n",
            "apps/README.md": "# docs\n",
            "apps/packaged/kustomization.yaml": "resources: [svc.yaml]\nnamePrefix: pkg-\n",
            "apps/packaged/svc.yaml": SERVICE,
            "apps/packaged/ignored.yaml": CONFIG_MAP.format(name="not-listed", value="x"),
            "elsewhere/cm.yaml": CONFIG_MAP.format(name="elsewhere", value="x"),
        },
    )
    objects = by_id(build(root, "./apps", Overlay(), block_remote_bases=True))
    assert sorted(objects) == [
        "ConfigMap//more",
        "ConfigMap//settings",
        "Deployment//web",
        "Service//pkg-svc",  # the nested kustomization was built as a whole, its own prefix applied
    ]
    assert objects["ConfigMap//settings"]["data"] == {"key": "10:30"}


def test_base_and_overlay_repository(tmp_path: Path) -> None:
    root = write(
        tmp_path / "source",
        {
            "apps/base/kustomization.yaml": "resources: [deploy.yaml, cm.yaml]\n",
            "apps/base/deploy.yaml": DEPLOYMENT.format(name="web"),
            "apps/base/cm.yaml": CONFIG_MAP.format(name="settings", value="base"),
            "apps/production/kustomization.yaml": (
                "namespace: prod\nresources: [../base]\n"
                "patches:\n- path: replicas.yaml\n"
                "configMapGenerator:\n- name: generated\n  literals: [mode=prod]\n"
                "  options: {disableNameSuffixHash: true}\n"
            ),
            "apps/production/replicas.yaml": (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n"
            ),
        },
    )
    objects = by_id(build(root, "apps/production", Overlay(), block_remote_bases=True))
    assert sorted(objects) == ["ConfigMap/prod/generated", "ConfigMap/prod/settings", "Deployment/prod/web"]
    assert objects["Deployment/prod/web"]["spec"]["replicas"] == 3
    assert objects["ConfigMap/prod/generated"]["data"] == {"mode": "prod"}


def test_spec_fields_are_overlaid(tmp_path: Path) -> None:
    root = write(
        tmp_path / "source",
        {
            "apps/kustomization.yaml": "namespace: authors-choice\nresources: [deploy.yaml, cm.yaml]\n",
            "apps/deploy.yaml": DEPLOYMENT.format(name="web"),
            "apps/cm.yaml": CONFIG_MAP.format(name="settings", value="x"),
            "components/audit/kustomization.yaml": (
                "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nlabels:\n- pairs: {audit: enabled}\n"
            ),
        },
    )
    spec = {
        "targetNamespace": "team-a",
        "namePrefix": "a-",
        "nameSuffix": "-v2",
        "images": [{"name": "nginx", "newName": "registry.local/nginx", "newTag": "1.27"}],
        "patches": [
            {  # strategic merge, selected by target
                "patch": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: any\nspec:\n  replicas: 4\n",
                "target": {"kind": "Deployment", "labelSelector": "app=web"},
            },
            {  # JSON6902, selected by target
                "patch": "- op: add\n  path: /data/extra\n  value: from-json-patch\n",
                "target": {"kind": "ConfigMap", "name": "settings"},
            },
            {  # strategic merge matched by its own kind and name (no target)
                "patch": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  smp: 'yes'\n",
            },
        ],
        "components": ["../components/audit"],
    }
    objects = by_id(build(root, "apps", Overlay.from_spec(spec), block_remote_bases=True))
    assert sorted(objects) == ["ConfigMap/team-a/a-settings-v2", "Deployment/team-a/a-web-v2"]
    deployment = objects["Deployment/team-a/a-web-v2"]
    assert deployment["spec"]["replicas"] == 4
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/nginx:1.27"
    assert deployment["metadata"]["labels"]["audit"] == "enabled"
    assert objects["ConfigMap/team-a/a-settings-v2"]["data"] == {"key": "x", "extra": "from-json-patch", "smp": "yes"}


def test_image_digest_and_generated_kustomization_with_overlay(tmp_path: Path) -> None:
    root = write(tmp_path / "source", {"deploy.yaml": DEPLOYMENT.format(name="web")})
    pinned = "sha256:" + "ab" * 32
    overlay = Overlay.from_spec({"targetNamespace": "t", "images": [{"name": "nginx", "digest": pinned}]})
    (deployment,) = build(root, "", overlay, block_remote_bases=True)
    assert deployment["metadata"]["namespace"] == "t"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"nginx@{pinned}"


def test_remote_base_is_refused_with_file_and_line(tmp_path: Path) -> None:
    root = write(
        tmp_path / "source",
        {
            "clusters/prod/kustomization.yaml": "resources:\n- ../../apps\n",
            "apps/kustomization.yaml": (
                "resources:\n- cm.yaml\n- https://github.com/stefanprodan/podinfo//kustomize?ref=6.5.0\n"
            ),
            "apps/cm.yaml": CONFIG_MAP.format(name="settings", value="x"),
        },
    )
    message = build_error(root, "clusters/prod")
    assert message.startswith(
        "apps/kustomization.yaml:3: resources entry 'https://github.com/stefanprodan/podinfo//kustomize?ref=6.5.0'"
    )
    assert "remote bases are refused under multi-tenancy" in message


def test_broken_kustomization_yaml_is_one_line(tmp_path: Path) -> None:
    root = write(tmp_path / "source", {"apps/kustomization.yaml": "resources:\n- a.yaml\n\tnamespace: x\n"})
    assert build_error(root, "apps").startswith("apps/kustomization.yaml:3: invalid YAML: ")


@pytest.mark.parametrize(
    ("kustomization", "expected"),
    [
        ("resourcez: [cm.yaml]\n", 'invalid Kustomization: json: unknown field "resourcez"'),
        ("resources: [missing.yaml]\n", "accumulating resources"),
        ("resources: [broken.yaml]\n", "MalformedYAMLError: yaml: line 2: found a tab character"),
        (
            "resources: [cm.yaml]\nhelmCharts:\n- name: chart\n  repo: https://charts.example.com\n",
            "must specify --enable-helm",
        ),
        ("resources: [cm.yaml]\ntransformers: [plugin.yaml]\n", "external plugins disabled"),
    ],
    ids=["unknown-field", "missing-file", "broken-resource", "helm-refused", "exec-plugin-refused"],
)
def test_kustomize_failures_are_one_line(tmp_path: Path, kustomization: str, expected: str) -> None:
    root = write(
        tmp_path / "source",
        {
            "apps/kustomization.yaml": kustomization,
            "apps/cm.yaml": CONFIG_MAP.format(name="settings", value="x"),
            "apps/broken.yaml": "apiVersion: v1\nkind: ConfigMap\n\tmetadata: {}\n",
            "apps/plugin.yaml": (
                "apiVersion: example.com/v1\nkind: Exec\nmetadata:\n  name: run\n  annotations:\n"
                "    config.kubernetes.io/function: |\n      exec:\n        path: /bin/touch\n"
            ),
        },
    )
    assert expected in build_error(root, "apps")


@pytest.mark.parametrize(
    "kustomization",
    [
        "resources: [cm.yaml]\npatches:\n- path: ../../../../../../../../etc/passwd\n",
        "resources: [cm.yaml]\npatches:\n- path: ../secret-patch.yaml\n",
        "configMapGenerator:\n- name: leak\n  files: [../../../../../../../../etc/hostname]\n",
        "resources: [cm.yaml, ../secret.yaml]\n",
    ],
    ids=["patch-outside-root", "patch-outside-kustomization-dir", "generator-file-outside", "resource-file-outside"],
)
def test_load_restrictor_keeps_files_inside_the_kustomization(tmp_path: Path, kustomization: str) -> None:
    root = write(
        tmp_path / "source",
        {
            "apps/kustomization.yaml": kustomization,
            "apps/cm.yaml": CONFIG_MAP.format(name="settings", value="x"),
            "secret.yaml": CONFIG_MAP.format(name="secret", value="x"),
            "secret-patch.yaml": CONFIG_MAP.format(name="settings", value="patched"),
        },
    )
    message = build_error(root, "apps")
    assert "security; file" in message and "is not in or below 'apps'" in message


def test_base_directory_outside_the_artifact_is_refused(tmp_path: Path) -> None:
    outside = {"kustomization.yaml": "resources: [cm.yaml]\n", "cm.yaml": CONFIG_MAP.format(name="x", value="y")}
    write(tmp_path / "outside", outside)
    root = write(tmp_path / "source", {"apps/kustomization.yaml": "resources:\n- ../../outside\n"})
    message = build_error(root, "apps", block=False)
    assert message == "apps/kustomization.yaml:2: resources entry '../../outside' points outside the artifact"


def test_path_escaping_the_artifact_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "outside", {"cm.yaml": CONFIG_MAP.format(name="x", value="y")})
    root = write(tmp_path / "source", {"apps/cm.yaml": CONFIG_MAP.format(name="settings", value="x")})
    assert "points outside the artifact" in build_error(root, "../outside")
    assert not (tmp_path / "outside" / "kustomization.yaml").exists()


def test_build_timeout(tmp_path: Path) -> None:
    root = write(tmp_path / "source", {"cm.yaml": CONFIG_MAP.format(name="settings", value="x")})
    with pytest.raises(BuildError, match=r"^kustomize build timed out after 0.001s$"):
        build(root, "", Overlay(), block_remote_bases=True, timeout=0.001)


# --- fetch ---------------------------------------------------------------------------------------

SOURCE_FILES = {
    "apps/deploy.yaml": DEPLOYMENT.format(name="web"),
    "apps/cm.yaml": CONFIG_MAP.format(name="settings", value="${greeting:=hello}"),
}


@pytest.fixture
def served(tmp_path: Path) -> tuple[StaticFileServer, bytes]:
    """A started static server for ``tmp_path/www`` holding ``artifact.tar.gz`` of ``SOURCE_FILES``."""
    tarball = build_tarball(write(tmp_path / "repo", SOURCE_FILES), IgnoreRules.from_user_patterns([]))
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "artifact.tar.gz").write_bytes(tarball)
    return StaticFileServer(tmp_path / "www"), tarball


def test_fetch_build_and_substitute(tmp_path: Path, served: tuple[StaticFileServer, bytes]) -> None:
    server, tarball = served
    dest = tmp_path / "scratch" / "source"
    with server:
        fetch_artifact(f"{server.url}/artifact.tar.gz", digest(tarball), dest, 1 << 20, 10)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.yaml")) == ["apps/cm.yaml", "apps/deploy.yaml"]
    objects = build(dest, "./apps", Overlay(target_namespace="team"), block_remote_bases=True)
    variables = variables_from({"greeting": "hi: there"}, [{"unused": "x"}])
    result = by_id(substitute(objects, variables))
    assert result["ConfigMap/team/settings"]["data"] == {"key": "hi: there"}


def test_fetch_digest_mismatch(tmp_path: Path, served: tuple[StaticFileServer, bytes]) -> None:
    server, tarball = served
    wrong = "sha256:" + "0123456789ab" + "f" * 52
    dest = tmp_path / "source"
    with server, pytest.raises(FetchError) as caught:
        fetch_artifact(f"{server.url}/artifact.tar.gz", wrong, dest, 1 << 20, 10)
    actual = digest(tarball).removeprefix("sha256:")
    assert "digest mismatch" in str(caught.value)
    assert "sha256:0123456789ab..." in str(caught.value) and f"sha256:{actual[:12]}..." in str(caught.value)
    assert not dest.exists()


def test_fetch_not_found(tmp_path: Path, served: tuple[StaticFileServer, bytes]) -> None:
    server, tarball = served
    with server, pytest.raises(FetchError, match=r"^cannot fetch artifact: 404 .* from http://127\.0\.0\.1:\d+/gone"):
        fetch_artifact(f"{server.url}/gone.tar.gz", digest(tarball), tmp_path / "source", 1 << 20, 10)


def test_fetch_oversize(tmp_path: Path, served: tuple[StaticFileServer, bytes]) -> None:
    server, tarball = served
    with server, pytest.raises(FetchError, match=f"larger than the {len(tarball) - 1} byte limit"):
        fetch_artifact(f"{server.url}/artifact.tar.gz", digest(tarball), tmp_path / "source", len(tarball) - 1, 10)
    assert not (tmp_path / "source").exists()


def test_fetch_unpacked_size_is_bounded_too(tmp_path: Path) -> None:
    data = gzip.compress(_tar({"big.yaml": b"a" * 100_000}), mtime=0)  # compresses to far below the limit
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "a.tar.gz").write_bytes(data)
    with StaticFileServer(tmp_path / "www") as server, pytest.raises(FetchError, match="size limit of 50000"):
        fetch_artifact(f"{server.url}/a.tar.gz", digest(data), tmp_path / "source", 50_000, 10)


def test_fetch_broken_archive(tmp_path: Path) -> None:
    data = b"this is not a gzip file"
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "a.tar.gz").write_bytes(data)
    with StaticFileServer(tmp_path / "www") as server, pytest.raises(FetchError, match="cannot unpack artifact"):
        fetch_artifact(f"{server.url}/a.tar.gz", digest(data), tmp_path / "source", 1 << 20, 10)
    assert not (tmp_path / "source").exists()


def test_fetch_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(
            FetchError, match=r"^cannot fetch artifact: cannot fetch http://127\.0\.0\.1:\d+/a\.tar\.gz"
        ):
            fetch_artifact(f"http://127.0.0.1:{port}/a.tar.gz", "sha256:" + "0" * 64, tmp_path / "source", 1 << 20, 5)


def test_fetch_refuses_unknown_digest_algorithms(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="unsupported artifact digest"):
        fetch_artifact("http://127.0.0.1:1/a.tar.gz", "md5:abc", tmp_path / "source", 1 << 20, 5)


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
