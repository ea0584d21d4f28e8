"""``fluxwarden create|get|delete fluxconfig`` against a real API server, and the real FluxConfig controller.

Secret values (an https key, an ssh key) go only into ``<name>-protected-parameters``: never into the
FluxConfig, and never into the command's output.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from fluxwarden.cli.main import main
from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.fluxconfig.api import FLUX_CONFIG, FluxConfigOptions
from fluxwarden.controllers.runtime.kube import Kube, NotFound
from fluxwarden.tenancy import Settings
from tests.support.control_plane import ControlPlane
from tests.support.kube import Kubectl

HTTPS_KEY = f"https-key-{uuid.uuid4().hex}"
SSH_KEY = f"-----BEGIN OPENSSH PRIVATE KEY-----\nssh-key-{uuid.uuid4().hex}\n-----END OPENSSH PRIVATE KEY-----\n"


class Cli:
    """``fluxwarden ...`` in this process, as a user runs it: exit code, stdout, stderr (and none of the secrets)."""

    def __init__(self, kubeconfig: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.kubeconfig, self.capsys = kubeconfig, capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*argv, "--kubeconfig", str(self.kubeconfig)])
        out, err = self.capsys.readouterr()
        for secret in (HTTPS_KEY, SSH_KEY.splitlines()[1]):
            assert secret not in out + err, "a secret value in the command's output"
        return code, out, err


@pytest.fixture
def cli(control_plane: ControlPlane, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(control_plane.kubeconfig, capsys)


@pytest.fixture
def key_files(tmp_path: Path) -> dict[str, str]:
    files = {"https": tmp_path / "token", "ssh": tmp_path / "id_rsa", "known_hosts": tmp_path / "known_hosts"}
    files["https"].write_text(HTTPS_KEY)
    files["ssh"].write_text(SSH_KEY)
    files["known_hosts"].write_text("git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ\n")
    return {k: str(v) for k, v in files.items()}


def _tutorial(namespace: str, *extra: str) -> list[str]:
    return ["create", "fluxconfig", "cluster-config", "--namespace", namespace, "--scope", "cluster",
            "--url", "https://github.com/Azure/gitops-flux2-kustomize-helm-mt", "--branch", "main",
            "--kustomization", "name=infra", "path=./infrastructure", "prune=true",
            "--kustomization", "name=apps", "path=./apps/staging", "prune=true", "dependsOn=infra", *extra]  # fmt: skip


def _json(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def test_create_stores_what_export_prints_and_keeps_the_key_in_its_secret(
    fluxconfig_crd: str, cli: Cli, kubectl: Kubectl, namespace: str, key_files: dict[str, str]
) -> None:
    code, exported, _ = cli(*_tutorial(namespace, "--https-user", "git", "--https-key-file", key_files["https"],
                                       "--export"))  # fmt: skip
    assert code == 0 and kubectl("get", "fc", "-n", namespace, "-o", "name").stdout == "", "--export wrote nothing"

    code, out, err = cli(*_tutorial(namespace, "--https-user", "git", "--https-key-file", key_files["https"],
                                    "--no-wait"))  # fmt: skip
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"✔ Secret {namespace}/cluster-config-protected-parameters applied (keys httpsKey)",
        f"✔ FluxConfig {namespace}/cluster-config applied",
    ]
    stored = _json(kubectl, "fluxconfig", "cluster-config", "-n", namespace, "--show-managed-fields")
    assert HTTPS_KEY not in json.dumps(stored)
    wanted = yaml.safe_load(exported)
    assert stored["metadata"]["namespace"] == stored["spec"]["namespace"] == namespace
    assert {m["manager"] for m in stored["metadata"]["managedFields"]} == {"fluxwarden-cli"}
    # What the CLI set, plus the CRD's defaults (Azure's) and nothing else.
    assert stored["spec"]["gitRepository"] == {**wanted["spec"]["gitRepository"], "provider": "Generic",
                                               "timeoutInSeconds": 600, "syncIntervalInSeconds": 600}  # fmt: skip
    assert stored["spec"]["kustomizations"]["apps"] == {"path": "./apps/staging", "prune": True, "dependsOn": ["infra"],
                                                        "force": False, "wait": True, "timeoutInSeconds": 600,
                                                        "syncIntervalInSeconds": 600}  # fmt: skip
    assert stored["spec"]["configurationProtectedSettingsRef"] == {"name": "cluster-config-protected-parameters"}

    secret = _json(kubectl, "secret", "cluster-config-protected-parameters", "-n", namespace)
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {"httpsKey": HTTPS_KEY}, "raw"
    assert secret["metadata"]["labels"]["reconcile.fluxcd.io/watch"] == "Enabled"

    # Again, changed: an update of the same objects (az create is create-or-update).
    code, _, _ = cli(*_tutorial(namespace, "--https-user", "git", "--https-key-file", key_files["https"],
                                "--interval", "5m", "--no-wait"))  # fmt: skip
    again = _json(kubectl, "fluxconfig", "cluster-config", "-n", namespace)
    assert code == 0 and again["spec"]["gitRepository"]["syncIntervalInSeconds"] == 300
    assert again["metadata"]["generation"] == stored["metadata"]["generation"] + 1


def test_an_ssh_key_and_known_hosts(
    fluxconfig_crd: str, cli: Cli, kubectl: Kubectl, namespace: str, key_files: dict[str, str]
) -> None:
    code, _, err = cli("create", "fluxconfig", "cfg", "-n", namespace, "--scope", "namespace", "--url",
                       "ssh://git@git.example.com/org/repo", "--tag", "v1.0.0", "--ssh-private-key-file",
                       key_files["ssh"], "--known-hosts-file", key_files["known_hosts"], "--no-wait")  # fmt: skip
    assert (code, err) == (0, "")
    git = _json(kubectl, "fluxconfig", "cfg", "-n", namespace)["spec"]["gitRepository"]
    assert base64.b64decode(git["sshKnownHosts"]).decode().startswith("git.example.com ssh-ed25519")
    assert git["repositoryRef"] == {"tag": "v1.0.0"}
    data = _json(kubectl, "secret", "cfg-protected-parameters", "-n", namespace)["data"]
    assert base64.b64decode(data["sshPrivateKey"]).decode() == SSH_KEY


def test_a_bad_flag_is_one_line_and_writes_nothing(
    fluxconfig_crd: str, cli: Cli, kubectl: Kubectl, namespace: str
) -> None:
    code, out, err = cli(*_tutorial(namespace, "--https-user", "git", "--no-wait"))
    assert code == 2 and out == "" and err == "✗ --https-user and --https-key go together\n"
    assert kubectl("get", "fc,secrets", "-n", namespace, "-o", "name").stdout == ""


def test_get_lists_name_namespace_scope_url_compliance_message(
    fluxconfig_crd: str, cli: Cli, kubectl: Kubectl, namespace_factory: Callable[[], str]
) -> None:
    one, two = namespace_factory(), namespace_factory()
    cli(*_tutorial(one, "--no-wait"))
    cli("create", "fluxconfig", "blob", "-n", two, "--scope", "namespace", "--kind", "bucket",
        "--url", "https://s3.example.com", "--bucket-name", "manifests", "--no-wait")  # fmt: skip
    failed = {"status": {"complianceState": "Non-Compliant", "errorMessage": "bucket not found"}}
    kubectl("patch", "fc", "blob", "-n", two, "--subresource=status", "--type=merge", "-p", json.dumps(failed))

    code, out, _ = cli("get", "fluxconfigs", "-n", one)
    header, *rows = out.splitlines()
    assert code == 0 and header.split() == ["NAME", "NAMESPACE", "SCOPE", "URL", "COMPLIANCE", "MESSAGE"]
    assert [r.split() for r in rows] == [
        ["cluster-config", one, "cluster", "https://github.com/Azure/gitops-flux2-kustomize-helm-mt", "Unknown",
         "waiting", "to", "be", "reconciled"]
    ]  # fmt: skip
    code, out, _ = cli("get", "fc", "-A")
    mine = [r.split() for r in out.splitlines()[1:] if r.split()[1] in (one, two)]
    assert sorted(mine) == sorted([
        ["cluster-config", one, "cluster", "https://github.com/Azure/gitops-flux2-kustomize-helm-mt", "Unknown",
         "waiting", "to", "be", "reconciled"],
        ["blob", two, "namespace", "https://s3.example.com", "Non-Compliant", "bucket", "not", "found"],
    ])  # fmt: skip


def test_delete_waits_for_the_finalizer_and_says_whose_it_is(
    fluxconfig_crd: str, cli: Cli, kubectl: Kubectl, namespace: str, key_files: dict[str, str]
) -> None:
    cli(*_tutorial(namespace, "--https-user", "git", "--https-key-file", key_files["https"], "--no-wait"))
    kubectl("patch", "fc", "cluster-config", "-n", namespace, "--type=merge",
            "-p", '{"metadata":{"finalizers":["clusterconfig.azure.com/finalizer"]}}')  # fmt: skip
    code, _, err = cli("delete", "fluxconfig", "cluster-config", "-n", namespace, "--timeout", "2s")
    assert code == 1
    assert err == (f"✗ FluxConfig {namespace}/cluster-config still there after 2s (finalizers: "
                   "clusterconfig.azure.com/finalizer); is the fluxconfig controller running? (--no-wait returns at "
                   "once)\n")  # fmt: skip
    assert _json(kubectl, "fc", "cluster-config", "-n", namespace)["metadata"]["deletionTimestamp"]
    kubectl("patch", "fc", "cluster-config", "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    code, _, err = cli("delete", "fluxconfig", "cluster-config", "-n", namespace)
    assert code == 1 and "not found" in err, "already gone: the API server says so"
    # The protected settings it made go with it, and a Secret of the user's own of that name never does.
    kubectl("create", "secret", "generic", "mine-protected-parameters", "-n", namespace, "--from-literal=k=v")
    # labelled as --export advises: still the user's own
    kubectl("label", "secret", "mine-protected-parameters", "-n", namespace, "reconcile.fluxcd.io/watch=Enabled")
    cli("create", "fluxconfig", "mine", "-n", namespace, "--scope", "namespace", "--url", "https://e.com/r.git",
        "--branch", "main", "--no-wait")  # fmt: skip
    assert cli("delete", "fc", "mine", "-n", namespace)[0] == 0
    assert kubectl("get", "secret", "mine-protected-parameters", "-n", namespace, "-o", "name").stdout.strip()


def test_create_waits_for_the_real_controller_and_delete_for_its_finalizer(
    flux_crds: list[str],
    fluxconfig_crd: str,
    cli: Cli,
    kubectl: Kubectl,
    admin_api: client.ApiClient,
    start_reconcilers: Callable[..., Reconcilers],
    namespace: str,
    key_files: dict[str, str],
) -> None:
    """As az does: create returns once the controller provisioned it; delete once it removed what it made."""
    settings = Settings(cluster_scope_namespaces=frozenset({namespace}))
    start_reconcilers(("fluxconfig",), namespace=namespace, fluxconfig=FluxConfigOptions(settings=settings))
    code, out, err = cli(*_tutorial(namespace, "--https-user", "git", "--https-key-file", key_files["https"],
                                    "--wait-timeout", "60s"))  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[-1].startswith(f"✔ FluxConfig {namespace}/cluster-config provisioned; compliance ")
    config = Kube(admin_api).get(FLUX_CONFIG, namespace, "cluster-config")
    assert config["status"]["observedGeneration"] == 1 and config["status"]["provisioningState"] == "Succeeded"
    assert HTTPS_KEY not in json.dumps(config)
    auth = _json(kubectl, "secret", "cluster-config-auth", "-n", namespace)
    assert base64.b64decode(auth["data"]["password"]).decode() == HTTPS_KEY, "the controller read the Secret"
    assert kubectl("get", "kustomizations", "-n", namespace, "-o", "name").stdout.split() == [
        "kustomization.kustomize.toolkit.fluxcd.io/cluster-config-apps",
        "kustomization.kustomize.toolkit.fluxcd.io/cluster-config-infra",
    ]
    code, out, _ = cli("get", "fluxconfigs", "-n", namespace)
    assert code == 0 and out.splitlines()[1].split()[:3] == ["cluster-config", namespace, "cluster"]

    code, out, err = cli("delete", "fluxconfig", "cluster-config", "-n", namespace, "--timeout", "60s")
    assert code == 0, err
    assert out.splitlines()[-2:] == [f"✔ Secret {namespace}/cluster-config-protected-parameters deleted",
                                     f"✔ FluxConfig {namespace}/cluster-config deleted"]  # fmt: skip
    with pytest.raises(NotFound):
        Kube(admin_api).get(FLUX_CONFIG, namespace, "cluster-config")
    assert kubectl("get", "kustomizations,gitrepositories,secrets", "-n", namespace, "-o", "name").stdout == ""
