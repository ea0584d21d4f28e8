"""``fluxwarden create fluxconfig``'s flags, as ``az k8s-configuration flux create`` takes them (no cluster)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from fluxwarden.cli.fluxconfig_spec import FlagError, Flags, build, dependencies, kustomization, seconds
from fluxwarden.cli.main import main

ROOT = Path(__file__).parents[3]
TUTORIAL = ["create", "fluxconfig", "cluster-config", "--namespace", "cluster-config", "--scope", "cluster",
            "--url", "https://github.com/Azure/gitops-flux2-kustomize-helm-mt", "--branch", "main",
            "--kustomization", "name=infra", "path=./infrastructure", "prune=true",
            "--kustomization", "name=apps", "path=./apps/staging", "prune=true", 'dependsOn=["infra"]']  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_tutorial_exports_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *TUTORIAL, "--export")
    assert (code, err) == (0, "")
    assert yaml.safe_load(out) == yaml.safe_load((ROOT / "examples/fluxconfig/fluxconfig.yaml").read_text())


@pytest.mark.parametrize(
    ("value", "expected"), [("600", 600), ("10m", 600), ("1h30m", 5400), ("90s", 90), ("1m30s", 90), (" 45 ", 45)]
)
def test_durations_are_seconds_or_go_durations(value: str, expected: int) -> None:
    assert seconds("--interval", value) == expected


@pytest.mark.parametrize("value", ["0", "1.5s", "500ms", "ten", "-5", ""])
def test_a_duration_that_is_no_whole_seconds_names_the_flag(value: str) -> None:
    with pytest.raises(FlagError, match=r"^--interval: '.*'"):
        seconds("--interval", value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("infra", ["infra"]), ("infra,base", ["infra", "base"]), ("[infra,base]", ["infra", "base"]),
     ('["infra"]', ["infra"]), ("['infra', 'base']", ["infra", "base"]), ("[]", [])],
)  # fmt: skip
def test_depends_on_as_the_azure_cli_splits_it(value: str, expected: list[str]) -> None:
    assert dependencies(value) == expected


def test_every_kustomization_key_in_both_spellings() -> None:
    name, definition = kustomization(
        [
            "name=apps",
            "path=./apps",
            "depends_on=infra,base",
            "sync_interval=5m",
            "retryInterval=60",
            "timeout=2m",
            "prune=true",
            "force=True",
            "wait=false",
        ]
    )
    assert name == "apps"
    assert definition == {"path": "./apps", "dependsOn": ["infra", "base"], "syncIntervalInSeconds": 300,
                          "retryIntervalInSeconds": 60, "timeoutInSeconds": 120, "prune": True, "force": True,
                          "wait": False}  # fmt: skip
    assert kustomization(["name=a", "disable-health-check=true"]) == ("a", {"wait": False})
    assert kustomization(["name=a"]) == ("a", {}), "the rest is the CRD's defaults (Azure's)"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["path=./x"], "--kustomization: name is required"),
        (["name=Apps"], "--kustomization name=Apps: name is required, a DNS label"),
        (["name=a", "colour=blue"], "--kustomization: unknown key 'colour'"),
        (["name=a", "prune"], "--kustomization: 'prune' is not key=value"),
        (["name=a", "prune=yes"], "--kustomization name=a prune: 'yes' is not true or false"),
        (["name=a", "timeout=soon"], "--kustomization name=a timeout: 'soon' is not a duration"),
        (["name=a", "path=x", "path=y"], "--kustomization: 'path' given twice"),
    ],
)
def test_a_bad_kustomization_is_one_line_naming_the_flag(items: list[str], message: str) -> None:
    with pytest.raises(FlagError) as error:
        kustomization(items)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def _flags(**given: object) -> Flags:
    base: dict[str, object] = {"name": "cfg", "namespace": "team", "url": "https://example.com/r.git", "branch": "main"}
    return Flags(**{**base, **given})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"url": "file:///etc"}, "--url: a git URL starts with http://, https://, ssh:// or git@"),
        ({"url": "git@github.com"}, "--url: a git URL starts with http://, https://, ssh:// or git@"),  # no :path
        ({"url": "https://"}, "--url: a git URL starts with http://, https://, ssh:// or git@"),
        ({"branch": None}, "--kind git needs one of --branch, --tag, --semver or --commit"),
        ({"tag": "v1"}, "give one of --branch, --tag, --semver, --commit (got --branch, --tag)"),
        ({"digest": "sha256:x"}, "--digest is not for --kind git"),
        ({"https_user": "git"}, "--https-user and --https-key go together"),
        ({"https_key": "k"}, "--https-user and --https-key go together"),
        ({"ssh_private_key": "KEY"}, "--ssh-private-key-file and --known-hosts-file are for an ssh:// or git@ --url"),
        ({"url": "git@github.com:org/repo", "https_user": "u", "https_key": "k"}, "--https-user, --https-key"),
        ({"kustomizations": [["name=a", "dependsOn=b"]]}, "--kustomization name=a: dependsOn 'b' is not a"),
        ({"kustomizations": [["name=a"], ["name=a"]]}, "--kustomization name=a: given twice"),
        ({"name": "c" * 60, "kustomizations": [["name=abcd"]]}, "--kustomization name=abcd: '" + "c" * 60),
        ({"name": "Cfg"}, "NAME 'Cfg': a DNS label"),
        ({"name": "cfg\n"}, "NAME 'cfg\n': a DNS label"),
        ({"https_user": "u", "https_key": "k", "local_auth_ref": "mine"}, "--local-auth-ref names the credentials"),
        ({"kind": "bucket", "https_user": "u", "https_key": "k"}, "--ssh-*, --known-hosts-file and --https-* are for"),
        ({"kind": "bucket", "branch": None}, "--kind bucket needs --bucket-name"),
        ({"kind": "bucket", "branch": None, "url": "s3://b"}, "--url: a bucket URL starts with http:// or https://"),
        ({"kind": "azblob", "branch": None, "url": "https://"}, "--url: an Azure Blob URL starts with http:// or"),
        ({"kind": "oci", "branch": None}, "--url: an OCI repository URL starts with oci://"),
        ({"interval": "1.5s"}, "--interval: '1.5s' must be a whole number of seconds"),
    ],
)
def test_what_the_azure_cli_refuses(given: dict[str, object], message: str) -> None:
    with pytest.raises(FlagError) as error:
        build(_flags(**given))
    assert str(error.value).startswith(message), str(error.value)


def test_secrets_go_to_the_protected_settings_secret_only() -> None:
    config, secret = build(_flags(https_user="git", https_key="s3cret-token", https_ca_cert="-----BEGIN CA-----\n",
                                  timeout="1m", interval="2m"))  # fmt: skip
    assert "s3cret-token" not in yaml.safe_dump(config)
    git = config["spec"]["gitRepository"]
    assert git == {"url": "https://example.com/r.git", "repositoryRef": {"branch": "main"}, "httpsUser": "git",
                   "httpsCACert": base64.b64encode(b"-----BEGIN CA-----\n").decode(), "timeoutInSeconds": 60,
                   "syncIntervalInSeconds": 120}  # fmt: skip
    assert config["spec"]["configurationProtectedSettingsRef"] == {"name": "cfg-protected-parameters"}
    assert secret is not None and secret["metadata"]["namespace"] == "team"
    assert secret["metadata"]["labels"]["reconcile.fluxcd.io/watch"] == "Enabled"
    assert {k: base64.b64decode(v) for k, v in secret["data"].items()} == {"httpsKey": b"s3cret-token"}, "raw"


def test_ssh_material_and_the_other_kinds() -> None:
    config, secret = build(_flags(url="git@github.com:org/repo", ssh_private_key="PRIVATE\n",
                                  known_hosts="github.com ssh-ed25519 AAAA\n", provider="azure"))  # fmt: skip
    git = config["spec"]["gitRepository"]
    assert base64.b64decode(git["sshKnownHosts"]) == b"github.com ssh-ed25519 AAAA\n" and git["provider"] == "Azure"
    assert secret and set(secret["data"]) == {"sshPrivateKey"}
    bucket, secret = build(_flags(kind="bucket", url="https://s3.example.com", branch=None, bucket_name="b",
                                  bucket_access_key="AK", bucket_secret_key="SK", bucket_insecure=True))  # fmt: skip
    assert bucket["spec"]["sourceKind"] == "Bucket" and "gitRepository" not in bucket["spec"]
    assert bucket["spec"]["bucket"] == {"url": "https://s3.example.com", "bucketName": "b", "accessKey": "AK",
                                        "insecure": True}  # fmt: skip
    assert secret and set(secret["data"]) == {"bucketSecretKey"}
    blob, _ = build(_flags(kind="azblob", url="https://a.blob.core.windows.net", branch=None, container_name="c",
                           sp_client_id="id", sp_tenant_id="t", local_auth_ref="blob-auth"))  # fmt: skip
    assert blob["spec"]["azureBlob"] == {"url": "https://a.blob.core.windows.net", "containerName": "c",
                                         "servicePrincipal": {"clientId": "id", "tenantId": "t"},
                                         "localAuthRef": "blob-auth"}  # fmt: skip
    oci, _ = build(_flags(kind="oci", url="oci://ghcr.io/org/app", branch=None, semver="1.x", suspend=True,
                          wait_for_reconciliation=True, reconciliation_wait_duration="1h30m"))  # fmt: skip
    assert oci["spec"]["ociRepository"] == {"url": "oci://ghcr.io/org/app", "repositoryRef": {"semver": "1.x"}}
    assert oci["spec"]["suspend"] is True and oci["spec"]["sourceKind"] == "OCIRepository"
    assert oci["spec"]["waitForReconciliation"] is True and oci["spec"]["reconciliationWaitDuration"] == "PT1H30M"


def test_export_prints_no_secret_and_says_which_secret_to_make(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = tmp_path / "token"
    key.write_text("s3cret-token")
    code, out, err = run(capsys, *TUTORIAL, "--https-user", "git", "--https-key-file", str(key), "--export")
    assert code == 0 and "s3cret-token" not in out + err
    exported = yaml.safe_load(out)
    assert exported["spec"]["configurationProtectedSettingsRef"] == {"name": "cluster-config-protected-parameters"}
    assert out.startswith("# Secret cluster-config-protected-parameters (keys httpsKey) is not printed.")
    assert "kubectl create secret generic cluster-config-protected-parameters -n cluster-config" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--kustomization", "name=x", "prune=maybe"], "✗ --kustomization name=x prune: 'maybe' is not true or false"),
        (["--ssh-private-key-file", "/nonexistent/key"], "✗ --ssh-private-key-file: cannot read /nonexistent/key"),
        (["--https-key", "a", "--https-key-file", "/dev/null"], "✗ --https-key-file and --https-key: give one"),
    ],
)
def test_bad_flags_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    code, out, err = run(capsys, *TUTORIAL, *extra, "--export")
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith(message), line


def test_azure_blob_secrets_go_to_the_protected_settings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "key").write_text("account-key-value")
    argv = ["create", "fluxconfig", "blob", "-n", "team", "--kind", "azblob", "--url", "https://a.blob.core.windows.net",
            "--container-name", "c", "--sp-client-id", "id", "--sp-tenant-id", "t", "--sp-client-cert-send-chain",
            "--account-key-file", str(tmp_path / "key"), "--sas-token", "sas-value", "--export"]  # fmt: skip
    code, out, err = run(capsys, *argv)
    assert code == 0 and "account-key-value" not in out + err and "sas-value" not in out + err
    assert "(keys accountKey, sasToken)" in out
    blob = yaml.safe_load(out)["spec"]["azureBlob"]
    assert blob["servicePrincipal"] == {"clientId": "id", "tenantId": "t", "clientCertificateSendChain": True}
    _, secret = build(_flags(kind="azblob", url="https://a.blob.core.windows.net", branch=None, container_name="c",
                             sp_client_secret="cs", sp_client_cert="PEM", sp_client_cert_password="pw"))  # fmt: skip
    assert secret and {k: base64.b64decode(v) for k, v in secret["data"].items()} == {
        "clientSecret": b"cs", "clientCertificate": b"PEM", "clientCertificatePassword": b"pw"}  # fmt: skip
    with pytest.raises(FlagError, match=r"^--account-key, --sas-token and --sp-client-\* are for --kind azblob"):
        build(_flags(account_key="k"))
