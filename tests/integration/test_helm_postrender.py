"""HelmRelease post-rendering through the real helm v4 (``helm template --post-renderer``) and the real
kustomize CLI, with the args and env that ``postrender.prepare()`` returns, as the controller runs it.

Covers postRenderers patches and images applied in order, commonMetadata and the owner labels on every
object (metadata only), helm's post-render strategies, a failing patch named in one line, YAML aliases
across a chart's List items, an empty chart, and the plugin from an installed wheel on a read-only root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from fluxwarden.controllers.helm.postrender import PostRender, prepare
from tests.support.control_plane import ControlPlane
from tests.support.helm_repo import helm_binary, write_chart
from tests.support.kube import KubectlRunner, kubectl_binary

pytestmark = pytest.mark.usefixtures("test_binaries")  # the real helm and kustomize first on PATH

OWNERS = {"helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": "cluster-config"}
PASSWORD = "s3cr3t-do-not-print"
TEMPLATES = {
    "config.yaml": """\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ .Release.Name }}-config
        data:
          greeting: hello
        """,
    "secret.yaml": f"""\
        apiVersion: v1
        kind: Secret
        metadata:
          name: {{{{ .Release.Name }}}}-credentials
        stringData:
          password: {PASSWORD}
        """,
    "deployment.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ .Release.Name }}
          labels: {app: web}
        spec:
          selector:
            matchLabels: {app: web}
          template:
            metadata:
              labels: {app: web}
            spec:
              containers:
              - name: web
                image: nginx:1.25
        """,
    "hook.yaml": """\
        apiVersion: batch/v1
        kind: Job
        metadata:
          name: {{ .Release.Name }}-migrate
          annotations:
            helm.sh/hook: pre-install,pre-upgrade
        spec:
          template:
            spec:
              restartPolicy: Never
              containers:
              - name: migrate
                image: busybox:1.36
        """,
}


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    templates = {name: textwrap.dedent(text) for name, text in TEMPLATES.items()}
    return write_chart(tmp_path / "charts", "webapp", "1.0.0", templates=templates)


def helm_template(chart: Path, post_render: PostRender | None, *, env: dict[str, str] | None = None) -> str:
    """``helm template rel CHART`` plus the post-render args; raises with helm's stderr on failure."""
    result = _run_template(chart, post_render, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _run_template(
    chart: Path, post_render: PostRender | None, *, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return _run_helm(chart.parent, post_render, "template", "rel", str(chart), "--namespace", "apps", env=env)


def _run_helm(
    home: Path, post_render: PostRender | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # As the controller's runner calls helm: PATH and helm's homes, nothing else of this process's env.
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": f"{home}/helm-home",
        "HELM_CACHE_HOME": f"{home}/helm-home/cache",
        "HELM_CONFIG_HOME": f"{home}/helm-home/config",
        "HELM_DATA_HOME": f"{home}/helm-home/data",
        **(post_render.env if post_render else {}),
        **(env or {}),
    }
    return subprocess.run(
        [helm_binary(), *args, *(post_render.args if post_render else [])],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def objects(stream: str) -> dict[str, dict[str, Any]]:
    """The rendered objects by ``Kind/name``."""
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(stream) if d}


def work(tmp_path: Path, name: str = "work") -> Path:
    directory = tmp_path / name
    directory.mkdir()
    return directory


# --- what it renders --------------------------------------------------------------------------


def test_patches_and_images_run_in_order_then_common_metadata_then_owner_labels(tmp_path: Path, chart: Path) -> None:
    post_renderers: list[dict[str, Any]] = [
        {
            "kustomize": {
                "patches": [
                    # strategic merge, selecting by its own metadata
                    {"patch": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rel-config}\ndata: {extra: added}\n"},
                    # JSON6902 with a target
                    {
                        "patch": "- op: add\n  path: /metadata/labels/stage\n  value: one\n",
                        "target": {"group": "apps", "kind": "Deployment", "name": "rel"},
                    },
                ],
                "images": [{"name": "nginx", "newName": "registry.local/nginx", "newTag": "1.27"}],
            }
        },
        # The second entry sees the first one's result: it selects by the label the first one added.
        {
            "kustomize": {
                "patches": [
                    {
                        "patch": "- op: add\n  path: /metadata/annotations/second\n  value: seen-stage-one\n",
                        "target": {"labelSelector": "stage=one"},
                    }
                ]
            }
        },
    ]
    common = {"labels": {"team": "payments", "helm.toolkit.fluxcd.io/name": "spoofed"}, "annotations": {"owner": "ops"}}
    rendered = helm_template(chart, prepare(work(tmp_path), post_renderers, common, OWNERS))
    found = objects(rendered)

    assert found["ConfigMap/rel-config"]["data"] == {"greeting": "hello", "extra": "added"}
    deployment = found["Deployment/rel"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/nginx:1.27"
    assert deployment["metadata"]["labels"]["stage"] == "one"
    assert deployment["metadata"]["annotations"] == {"second": "seen-stage-one", "owner": "ops"}
    assert found["Job/rel-migrate"]["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.36"
    # commonMetadata and the owner labels on every object, hooks too (helm 4's combined strategy); the
    # owner labels applied last, so a commonMetadata label cannot spoof them.
    assert sorted(found) == ["ConfigMap/rel-config", "Deployment/rel", "Job/rel-migrate", "Secret/rel-credentials"]
    for name, obj in found.items():
        assert obj["metadata"]["labels"].items() >= {**OWNERS, "team": "payments"}.items(), name
        assert obj["metadata"]["annotations"]["owner"] == "ops", name
        assert "postrenderer.helm.sh/postrender-filename" not in obj["metadata"]["annotations"], name
    # metadata only: selectors and pod templates are left as the chart wrote them
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert deployment["spec"]["template"]["metadata"] == {"labels": {"app": "web"}}
    assert "annotations" not in deployment["spec"]["template"]["metadata"]
    assert found["Secret/rel-credentials"]["stringData"] == {"password": PASSWORD}
    # helm still knows which template each object came from
    assert "# Source: webapp/templates/deployment.yaml\n" in rendered


def test_without_post_renderers_only_the_owner_labels_are_added(tmp_path: Path, chart: Path) -> None:
    plain = objects(helm_template(chart, None))
    post_rendered = objects(helm_template(chart, prepare(work(tmp_path), [], None, OWNERS)))
    assert sorted(post_rendered) == sorted(plain)
    for name, obj in post_rendered.items():
        labels = obj["metadata"].pop("labels")
        assert labels == {**plain[name]["metadata"].pop("labels", {}), **OWNERS}, name
        assert obj == plain[name], name


def test_the_combined_strategy_starts_no_python_and_leaves_no_manifests_behind(tmp_path: Path, chart: Path) -> None:
    directory = work(tmp_path)
    images = [{"name": "nginx", "newTag": "1.27"}]
    post_render = prepare(directory, [{"kustomize": {"images": images}}], None, OWNERS)
    no_python = {"FLUXWARDEN_PLUGIN_PYTHON": str(tmp_path / "no-python")}
    found = objects(helm_template(chart, post_render, env=no_python))
    assert found["Deployment/rel"]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert all(obj["metadata"]["labels"].items() >= OWNERS.items() for obj in found.values())
    left = {path.name for path in directory.rglob("*") if path.is_file()}
    assert left == {"config.json", "kustomize", "kustomization.yaml"}
    # The other strategies, and errors, do need it.
    assert _run_template(chart, prepare(directory, [], None, OWNERS, strategy="nohooks"), env=no_python).returncode == 1


def test_an_empty_chart_renders_without_error(tmp_path: Path) -> None:
    chart = write_chart(tmp_path / "charts", "empty", "0.1.0", templates={"NOTES.txt": "nothing to install\n"})
    assert objects(helm_template(chart, prepare(work(tmp_path), [], {"labels": {"a": "b"}}, OWNERS))) == {}


def test_yaml_aliases_between_list_items_survive(tmp_path: Path) -> None:
    # helm 4 splits a List into one document per item but keeps its anchors; kustomize alone rejects them.
    listing = """\
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: ConfigMap
          metadata:
            name: first
            labels: &labels {app: shared}
          data: &data {key: value}
        - apiVersion: v1
          kind: ConfigMap
          metadata:
            name: second
            labels: *labels
          data: *data
        """
    chart = write_chart(tmp_path / "charts", "aliases", "0.1.0", templates={"list.yaml": textwrap.dedent(listing)})
    patch = {"patch": "- op: add\n  path: /data/only\n  value: second\n", "target": {"name": "second"}}
    found = objects(helm_template(chart, prepare(work(tmp_path), [{"kustomize": {"patches": [patch]}}], None, OWNERS)))
    assert found["ConfigMap/first"]["data"] == {"key": "value"}
    assert found["ConfigMap/second"]["data"] == {"key": "value", "only": "second"}
    for obj in found.values():
        assert obj["metadata"]["labels"] == {"app": "shared", **OWNERS}


def test_helm_install_applies_the_post_rendered_objects_and_hooks(tmp_path: Path, test_binaries: Path) -> None:
    hook = """\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ .Release.Name }}-hook
          annotations: {helm.sh/hook: pre-install}
        """
    templates = {"config.yaml": textwrap.dedent(TEMPLATES["config.yaml"]), "hook.yaml": textwrap.dedent(hook)}
    chart = write_chart(tmp_path / "charts", "installed", "1.0.0", templates=templates)
    patch = {"patch": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rel-config}\ndata: {extra: added}\n"}
    post_render = prepare(work(tmp_path), [{"kustomize": {"patches": [patch]}}], {"annotations": {"o": "ops"}}, OWNERS)
    with ControlPlane(test_binaries, tmp_path / "control-plane") as plane:
        kubectl = KubectlRunner(kubectl_binary(test_binaries), plane.kubeconfig, tmp_path / "kubectl-cache")
        kubectl("create", "namespace", "apps")
        kube = ["--kubeconfig", str(plane.kubeconfig), "--namespace", "apps"]
        result = _run_helm(
            tmp_path, post_render, "upgrade", "--install", "rel", str(chart), "--server-side=true", *kube
        )
        assert result.returncode == 0, result.stderr
        listed = yaml.safe_load(kubectl("get", "configmaps", "--namespace", "apps", "-o", "yaml").stdout)
        live = {f"ConfigMap/{item['metadata']['name']}": item for item in listed["items"]}
        manifest = objects(_run_helm(tmp_path, None, "get", "manifest", "rel", *kube).stdout)
    for name in ("ConfigMap/rel-config", "ConfigMap/rel-hook"):
        assert live[name]["metadata"]["labels"].items() >= OWNERS.items(), name
        assert live[name]["metadata"]["annotations"]["o"] == "ops", name
    assert live["ConfigMap/rel-config"]["data"] == {"greeting": "hello", "extra": "added"}
    # the release records the post-rendered manifest, which drift detection compares with
    assert manifest["ConfigMap/rel-config"]["data"] == {"greeting": "hello", "extra": "added"}
    assert manifest["ConfigMap/rel-config"]["metadata"]["labels"] == OWNERS


# --- postRenderStrategy (helm's CLI has no flag: the plugin splits the hooks itself) -------------


def test_nohooks_leaves_hooks_as_rendered(tmp_path: Path, chart: Path) -> None:
    plain = objects(helm_template(chart, None))
    images = [{"name": "busybox", "newTag": "9.9"}, {"name": "nginx", "newTag": "9.9"}]
    post_render = prepare(work(tmp_path), [{"kustomize": {"images": images}}], None, OWNERS, strategy="nohooks")
    found = objects(helm_template(chart, post_render))
    assert found["Job/rel-migrate"] == plain["Job/rel-migrate"]
    assert found["Deployment/rel"]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:9.9"
    assert found["ConfigMap/rel-config"]["metadata"]["labels"] == OWNERS


def test_separate_post_renders_hooks_in_a_pass_of_their_own(tmp_path: Path, chart: Path) -> None:
    post_render = prepare(work(tmp_path), [], None, OWNERS, strategy="separate")
    found = objects(helm_template(chart, post_render))
    assert all(obj["metadata"]["labels"].items() >= OWNERS.items() for obj in found.values())
    # A patch without a target must then match in both passes: the hooks' pass has no ConfigMap.
    patch = {"patch": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rel-config\ndata:\n  extra: x\n"}
    post_render = prepare(
        work(tmp_path, "again"), [{"kustomize": {"patches": [patch]}}], None, OWNERS, strategy="separate"
    )
    assert _run_template(chart, post_render).returncode == 1
    failure = post_render.failure()
    assert failure is not None
    assert failure.startswith("spec.postRenderers[0].kustomize (hooks): no resource matches strategic merge patch")


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (
            {"patch": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: missing\ndata:\n  a: b\n"},
            'no resource matches strategic merge patch "ConfigMap.v1.[noGrp]/missing.[noNs]"',
        ),
        ({"patch": "{{{ not yaml"}, "unable to parse SM or JSON patch"),
        (
            {
                "patch": f"- op: test\n  path: /stringData/password\n  value: {PASSWORD}x\n",
                "target": {"kind": "Secret"},
            },
            "testing value /stringData/password failed",
        ),
    ],
)
def test_a_failing_patch_fails_helm_and_names_the_entry_in_one_line(
    tmp_path: Path, chart: Path, patch: dict[str, Any], expected: str
) -> None:
    directory = work(tmp_path)
    good = {"kustomize": {"images": [{"name": "nginx", "newTag": "1.27"}]}}
    post_render = prepare(directory, [good, {"kustomize": {"patches": [patch]}}], None, OWNERS)
    result = _run_template(chart, post_render)
    assert result.returncode == 1
    # helm drops the plugin's stderr: its own message says nothing about the cause...
    assert 'plugin "fluxwarden-kustomize" exited with error' in result.stderr
    assert expected not in result.stderr
    # ... so the plugin leaves it for the controller.
    failure = post_render.failure()
    assert failure is not None
    assert failure.startswith("spec.postRenderers[1].kustomize: ")
    assert expected in failure
    assert "\n" not in failure and str(directory) not in failure
    assert PASSWORD not in failure
    # the rendered manifests (a Secret among them) are not left on disk
    left = sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())
    assert [path for path in left if not path.endswith("kustomization.yaml")] == [
        "postrender/config.json",
        "postrender/error",
        "postrender/kustomize",
    ]


def test_an_object_both_hook_and_template_suggests_the_separate_strategy(tmp_path: Path) -> None:
    account = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: runner\n"
    hook = account.replace("name: runner\n", "name: runner\n  annotations: {helm.sh/hook: pre-install}\n")
    chart = write_chart(tmp_path / "charts", "twice", "0.1.0", templates={"sa.yaml": account, "hook.yaml": hook})
    combined = prepare(work(tmp_path), [], None, OWNERS)
    assert _run_template(chart, combined).returncode == 1
    assert combined.failure() == (
        "owner labels: may not add resource with an already registered id: ServiceAccount.v1.[noGrp]/runner.[noNs]"
        " (the chart renders it twice, e.g. as a hook and a template: try spec.postRenderStrategy separate)"
    )
    separate = prepare(work(tmp_path, "separate"), [], None, OWNERS, strategy="separate")
    rendered = list(yaml.safe_load_all(helm_template(chart, separate)))
    assert [doc["metadata"]["labels"] for doc in rendered if doc] == [OWNERS, OWNERS]


def test_a_later_success_clears_the_error(tmp_path: Path, chart: Path) -> None:
    directory = work(tmp_path)
    bad = prepare(directory, [{"kustomize": {"patches": [{"patch": "{{{"}]}}], None, OWNERS)
    assert _run_template(chart, bad).returncode == 1
    assert bad.failure() is not None
    good = prepare(directory, [], None, OWNERS)
    helm_template(chart, good)
    assert good.failure() is None


def test_a_missing_kustomize_binary_is_reported(tmp_path: Path, chart: Path) -> None:
    post_render = prepare(work(tmp_path), [], None, OWNERS, kustomize=str(tmp_path / "no-kustomize"))
    assert _run_template(chart, post_render).returncode == 1
    assert (
        post_render.failure()
        == f"owner labels: cannot run kustomize ({tmp_path}/no-kustomize): No such file or directory"
    )


# --- as installed: a wheel, a read-only root, only the work dir writable ------------------------

REPO = Path(__file__).resolve().parents[2]
CONTROLLER = """\
import json, os, subprocess, sys
from pathlib import Path
from fluxwarden.controllers.helm import postrender
work, chart, helm = (Path(arg) for arg in sys.argv[1:4])
post_render = postrender.prepare(work, [{"kustomize": {"images": [{"name": "nginx", "newTag": "1.27"}]}}],
                                 {"annotations": {"owner": "ops"}}, {"helm.toolkit.fluxcd.io/name": "web"})
home = work / "home"
env = {**os.environ, **post_render.env, "HOME": str(home), "HELM_CACHE_HOME": str(home / "cache"),
       "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}
result = subprocess.run([str(helm), "template", "rel", str(chart), *post_render.args], env=env,
                        capture_output=True, text=True)
try:
    (Path(postrender.__file__).parent / "probe").write_text("")
    writable = True
except OSError:
    writable = False
report = {"plugins": post_render.env["HELM_PLUGINS"], "package_writable": writable, "rc": result.returncode}
report.update(stdout=result.stdout, stderr=result.stderr, failure=post_render.failure())
print(json.dumps(report))
"""


def test_the_plugin_works_from_an_installed_wheel_on_a_read_only_root(tmp_path: Path, chart: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to mount the root filesystem read-only in a private namespace")
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if built.returncode != 0:
        pytest.skip(f"cannot build the wheel here (setuptools>=77 from the index?): {built.stderr.strip()[-300:]}")
    [wheel] = wheels.glob("fluxwarden-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (site / "fluxwarden/controllers/helm/plugin/fluxwarden-kustomize/plugin.yaml").is_file()
    directory = work(tmp_path)
    # A private mount namespace: / read-only (as the manifests mount it), only the work dir writable.
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro / && shift && exec "$@"'
    namespace = ["unshare", "--mount", "sh", "-c", script, "sh", str(directory)]
    controller = [sys.executable, "-P", "-c", CONTROLLER, str(directory), str(chart), helm_binary()]
    result = subprocess.run(
        [*namespace, *controller],
        env={**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"},
        cwd=directory,  # not the checkout, whose fluxwarden/ would shadow the wheel's
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = yaml.safe_load(result.stdout)  # JSON is YAML
    assert report["plugins"] == str(site / "fluxwarden/controllers/helm/plugin")  # the wheel's copy
    assert report["package_writable"] is False
    assert report["rc"] == 0, (report["stderr"], report["failure"])
    found = objects(report["stdout"])
    assert found["Deployment/rel"]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert all(obj["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"] == "web" for obj in found.values())
    assert all(obj["metadata"]["annotations"]["owner"] == "ops" for obj in found.values())
