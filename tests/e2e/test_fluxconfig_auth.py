"""FluxConfig auth end to end: generated SSH keys, protected settings, known hosts, ``localAuthRef``.

Real sshd (tests.support.ssh_server) with public-key auth and a real host key; a real smart-HTTPS git
server with basic auth and its own CA. Secret values must reach the auth Secret and nothing else: no
status, no Event, no log line.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.source.api import GIT_REPOSITORY
from tests.support.fluxconfig import (
    GENERATED_KEY,
    ConfigRepo,
    ControllerSets,
    FluxConfigs,
    app_spec,
    as_dict,
    b64,
    condition,
    controllers,
    git_source,
    managed_labels,
    owned_by,
)
from tests.support.git_server import GitHttpServer
from tests.support.ssh_server import SshGitServer
from tests.support.tenants import configmap
from tests.support.tls import PrivateCA

USER = "fluxconfig-user"
PASSWORD = f"pw-{secrets.token_hex(12)}"  # distinctive: a substring search for it cannot match by chance

__all__ = ["controllers"]  # fixtures


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGitServer]:
    with SshGitServer(tmp_path_factory.mktemp("fc-ssh-git")) as server:
        yield server


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory, authority: PrivateCA) -> Iterator[GitHttpServer]:
    """Smart HTTPS with basic auth (401 without it), its certificate from the module's private CA."""
    with GitHttpServer(tmp_path_factory.mktemp("fc-https-git"), USER, PASSWORD, tls=authority.server_context()) as s:
        yield s


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record, DEBUG too: a secret must not show at any level."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
def configs(
    controllers: ControllerSets, admin_api: client.ApiClient, namespace: str, log: pytest.LogCaptureFixture
) -> FluxConfigs:
    """Controllers (default options) for the test's namespace, and its FluxConfigs; logging at DEBUG first."""
    controllers.run(namespace)
    return FluxConfigs(admin_api, namespace)


def publish(server: GitHttpServer | SshGitServer, tmp_path: Path, namespace: str, value: str = "1") -> tuple[str, str]:
    """A new repository on ``server`` holding ConfigMap ``app`` for ``namespace``; (its url, the commit)."""
    repo = ConfigRepo(server, tmp_path, "repo")
    return repo.url, repo.push({"app/app.yaml": configmap("app", value, namespace)})


@pytest.fixture
def https_repo(https_server: GitHttpServer, tmp_path: Path, namespace: str) -> tuple[str, str]:
    """:func:`publish` on the HTTPS server: (url, commit)."""
    return publish(https_server, tmp_path, namespace)


def users_secret(configs: FluxConfigs, name: str, data: dict[str, str], labels: dict[str, str] | None = None) -> None:
    """A Secret the user writes (``stringData``), not one the controller makes."""
    meta = {"name": name, "labels": labels or {}}
    configs.core.create_namespaced_secret(configs.namespace, {"metadata": meta, "stringData": data})


def spec_for(url: str, **git: Any) -> dict[str, Any]:
    """Scope namespace (a test namespace is no platform namespace), one kustomization ``app``, short intervals."""
    return {**app_spec(url), "gitRepository": git_source(url, **git)}


def https_spec(url: str, authority: PrivateCA, protected: str) -> dict[str, Any]:
    """Basic auth as USER, the password (``httpsKey``) in Secret ``protected``, the server's CA."""
    return {
        **spec_for(url, httpsUser=USER, httpsCACert=b64(authority.ca_pem)),
        "configurationProtectedSettingsRef": {"name": protected},
    }


def key_bits(public_key: str) -> str:
    """``ssh-keygen -l`` of an OpenSSH public key line: ``<bits> SHA256:... (<TYPE>)``."""
    result = subprocess.run(
        ["ssh-keygen", "-l", "-f", "/dev/stdin"], input=public_key, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def public_of(private_key: bytes, tmp_path: Path) -> str:
    """The public key of a private key, as ``ssh-keygen -y`` derives it (type and base64 only)."""
    path = tmp_path / "identity"
    path.write_bytes(private_key)
    path.chmod(0o600)
    result = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split()[:2])


def key_part(line: str) -> str:
    return " ".join(line.split()[:2])


# --- a generated key ---------------------------------------------------------------------------------


def test_an_ssh_url_without_a_key_gets_an_rsa_key_that_survives_restart_and_edit(
    controllers: ControllerSets,
    configs: FluxConfigs,
    ssh_server: SshGitServer,
    namespace: str,
    tmp_path: Path,
    log: pytest.LogCaptureFixture,
) -> None:
    url, sha = publish(ssh_server, tmp_path, namespace)
    made = configs.create("keygen", spec_for(url, sshKnownHosts=b64(ssh_server.known_hosts)))

    public = configs.public_key("keygen")
    assert public.startswith("ssh-rsa "), public
    assert key_bits(public).startswith("4096 ") and key_bits(public).rstrip().endswith("(RSA)"), key_bits(public)

    auth = configs.secret("keygen-auth")
    assert auth is not None, "the generated key lives in Secret keygen-auth"
    assert (auth.metadata.labels or {}).get(GENERATED_KEY) == "true"
    assert managed_labels("keygen", namespace).items() <= (auth.metadata.labels or {}).items()
    assert owned_by(as_dict(auth), made), auth.metadata.owner_references
    data = configs.secret_data("keygen-auth")
    assert public_of(data["identity"], tmp_path) == key_part(public), "identity is the private half of that key"
    assert key_part(data["identity.pub"].decode()) == key_part(public)
    assert data["known_hosts"].decode() == ssh_server.known_hosts
    source = configs.git_repository("keygen")
    assert source is not None and source["spec"]["secretRef"] == {"name": "keygen-auth"}

    # Not authorized yet: sshd refuses the key; the FluxConfig says so.
    refused = configs.state("keygen", "Non-Compliant")
    assert condition(refused)["status"] == "False"
    assert condition(configs.git_repository("keygen"))["status"] == "False"

    ssh_server.authorize(public)
    configs.child_ready(GIT_REPOSITORY, "keygen", sha, timeout=60)
    configs.compliant("keygen", sha)
    assert configs.configmaps()["app"] == {"value": "1"}
    before = configs.secret("keygen-auth")
    assert before is not None

    # A restart: the new controllers handle a reconcile request and keep the key.
    controllers.stop_all()
    controllers.run(namespace)
    handled = configs.handled("keygen")
    assert handled["status"]["repositoryPublicKey"] == public
    after = configs.secret("keygen-auth")
    assert after is not None
    assert (after.metadata.uid, after.data) == (before.metadata.uid, before.data)

    # An edit: a new generation is reconciled (the source's interval changes), the key stays.
    edited = configs.patch("keygen", {"spec": {"gitRepository": {"syncIntervalInSeconds": 3}}})
    done = configs.compliant("keygen")  # at the current generation
    assert done["metadata"]["generation"] == edited["metadata"]["generation"]
    assert done["status"]["repositoryPublicKey"] == public
    assert configs.git_repository("keygen")["spec"]["interval"] == "3s"  # type: ignore[index]
    last = configs.secret("keygen-auth")
    assert last is not None and (last.metadata.uid, last.data) == (before.metadata.uid, before.data)
    lines = [line for line in data["identity"].decode().splitlines() if line and not line.startswith("-----")]
    assert leaks(configs, ["keygen"], log.text, lines) == [], "the generated private key stays in its Secret"


@pytest.mark.parametrize(
    ("algorithm", "prefix"), [("ed25519", "ssh-ed25519 "), ("ecdsa", "ecdsa-sha2-nistp384 ")], ids=["ed25519", "ecdsa"]
)
def test_the_key_type_is_configurable_and_sshd_takes_it(
    controllers: ControllerSets,
    ssh_server: SshGitServer,
    admin_api: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    algorithm: str,
    prefix: str,
) -> None:
    controllers.run(namespace, ssh_key_algorithm=algorithm)
    configs = FluxConfigs(admin_api, namespace)
    url, sha = publish(ssh_server, tmp_path, namespace)
    configs.create("typed", spec_for(url, sshKnownHosts=b64(ssh_server.known_hosts)))
    public = configs.public_key("typed")
    assert public.startswith(prefix), public
    assert public_of(configs.secret_data("typed-auth")["identity"], tmp_path) == key_part(public)
    ssh_server.authorize(public)
    configs.compliant("typed", sha)


def test_a_git_at_url_becomes_an_ssh_url_with_a_generated_key(configs: FluxConfigs) -> None:
    configs.create("scp", spec_for("git@git.example.invalid:org/repo"))
    configs.public_key("scp")
    source = configs.git_repository("scp")
    assert source is not None and source["spec"]["url"] == "ssh://git@git.example.invalid/org/repo"
    assert source["spec"]["secretRef"] == {"name": "scp-auth"}


# --- protected settings ------------------------------------------------------------------------------


def leaks(configs: FluxConfigs, names: list[str], log: str, values: list[str]) -> list[str]:
    """Where any of ``values`` shows: the FluxConfigs' statuses, their children, Events, the log."""
    found = []
    places: dict[str, str] = {"log": log}
    for name in names:
        places[f"FluxConfig {name}"] = json.dumps(configs.get(name))
        places[f"GitRepository {name}"] = json.dumps(configs.git_repository(name))
        places[f"Kustomization {name}-app"] = json.dumps(configs.kustomization(name, "app"))
    for event in configs.events():
        places[f"Event {event.metadata.name}"] = json.dumps(as_dict(event))
    for place, text in places.items():
        found += [f"{place} holds {value[:12]}..." for value in values if value in text]
    return found


def test_protected_settings_become_a_working_auth_secret_and_leak_nowhere(
    configs: FluxConfigs,
    https_server: GitHttpServer,
    ssh_server: SshGitServer,
    authority: PrivateCA,
    namespace: str,
    tmp_path: Path,
    log: pytest.LogCaptureFixture,
) -> None:
    # https: user, key (protected) and CA
    https_url, https_sha = publish(https_server, tmp_path, namespace)
    configs.protected_settings("https-protected", {"httpsKey": PASSWORD})
    over_https = https_spec(https_url, authority, "https-protected")
    configs.create(
        "over-https", {**over_https, "kustomizations": {"app": {"path": "./app", "retryIntervalInSeconds": 2}}}
    )
    # ssh: a private key (protected) and known hosts
    ssh_url, ssh_sha = publish(ssh_server, tmp_path, namespace, "2")
    private = ssh_server.client_private_key
    configs.protected_settings("ssh-protected", {"sshPrivateKey": private})
    ssh_spec = spec_for(ssh_url, sshKnownHosts=b64(ssh_server.known_hosts))
    ssh_spec["kustomizations"] = {}  # empty: one kustomization-1 at the root, which holds app/app.yaml
    configs.create("over-ssh", {**ssh_spec, "configurationProtectedSettingsRef": {"name": "ssh-protected"}})

    configs.child_ready(GIT_REPOSITORY, "over-https", https_sha)
    configs.compliant("over-https", https_sha)
    configs.child_ready(GIT_REPOSITORY, "over-ssh", ssh_sha)
    configs.child_ready(KUSTOMIZATION, "over-ssh-kustomization-1", ssh_sha)
    ssh_done = configs.compliant("over-ssh", ssh_sha)

    https_auth = configs.secret_data("over-https-auth")
    assert {k: https_auth.get(k) for k in ("username", "password", "ca.crt")} == {
        "username": USER.encode(), "password": PASSWORD.encode(), "ca.crt": authority.ca_pem,
    }  # fmt: skip
    assert "identity" not in https_auth
    assert configs.git_repository("over-https")["spec"]["secretRef"] == {"name": "over-https-auth"}  # type: ignore[index]
    ssh_auth = configs.secret_data("over-ssh-auth")
    assert ssh_auth["identity"] == private
    assert ssh_auth["known_hosts"].decode() == ssh_server.known_hosts
    assert "password" not in ssh_auth
    secret = configs.secret("over-ssh-auth")
    assert secret is not None and (secret.metadata.labels or {}).get(GENERATED_KEY) != "true"
    assert ssh_done["status"].get("repositoryPublicKey") in (None, "", key_part(ssh_server.client_public_key))
    assert set(configs.kustomizations()) == {"over-https-app", "over-ssh-kustomization-1"}

    key_lines = [line for line in private.decode().splitlines() if line and not line.startswith("-----")]
    values = [PASSWORD, b64(PASSWORD), *key_lines, b64(private)[:60]]
    assert leaks(configs, ["over-https", "over-ssh"], log.text, values) == []
    assert any(r.name.startswith("fluxwarden") for r in log.records), "the controllers' log was captured"
    assert configs.events(), "the controllers wrote Events to search"


def test_a_wrong_https_key_is_non_compliant_and_the_key_is_not_in_the_message(
    configs: FluxConfigs, https_repo: tuple[str, str], authority: PrivateCA, log: pytest.LogCaptureFixture
) -> None:
    url, _ = https_repo
    wrong = f"wrong-{secrets.token_hex(12)}"
    configs.protected_settings("wrong", {"httpsKey": wrong})
    configs.create("wrong-key", https_spec(url, authority, "wrong"))
    failed = configs.state("wrong-key", "Non-Compliant")
    assert condition(configs.git_repository("wrong-key"))["status"] == "False"
    assert failed["status"]["statuses"], "the failing source is listed"
    assert leaks(configs, ["wrong-key"], log.text, [wrong, b64(wrong)]) == []


def test_local_auth_ref_is_used_as_given(
    configs: FluxConfigs, https_repo: tuple[str, str], authority: PrivateCA
) -> None:
    url, sha = https_repo
    users_secret(configs, "my-git-auth", {"username": USER, "password": PASSWORD, "ca.crt": authority.ca_pem.decode()})
    configs.create("local", spec_for(url, localAuthRef="my-git-auth"))
    configs.compliant("local", sha)
    assert configs.git_repository("local")["spec"]["secretRef"] == {"name": "my-git-auth"}  # type: ignore[index]
    assert configs.secret("local-auth") is None, "no auth Secret of its own"
    assert configs.secret_data("my-git-auth")["password"] == PASSWORD.encode(), "left as it was"


def test_a_missing_protected_settings_secret_is_named_and_its_arrival_heals(
    configs: FluxConfigs, https_repo: tuple[str, str], authority: PrivateCA, namespace: str
) -> None:
    url, sha = https_repo
    configs.create("early", https_spec(url, authority, "later"))
    failed = configs.provisioning("early", "Failed", timeout=60)
    message = failed["status"].get("errorMessage") or ""
    assert "configurationProtectedSettingsRef" in message and f"{namespace}/later" in message, failed["status"]
    assert "\n" not in message
    assert failed["status"]["complianceState"] == "Non-Compliant"

    configs.protected_settings("later", {"httpsKey": PASSWORD})
    done = configs.compliant("early", sha)  # a failed reconcile is retried: no request needed
    assert done["status"]["provisioningState"] == "Succeeded" and not done["status"].get("errorMessage")
    assert configs.secret_data("early-auth")["password"] == PASSWORD.encode()


def test_a_corrected_protected_settings_secret_is_picked_up_when_it_asks_to_be_watched(
    configs: FluxConfigs, https_repo: tuple[str, str], authority: PrivateCA, namespace: str
) -> None:
    url, sha = https_repo
    users_secret(configs, "rotating", {"httpsKey": "not-the-password"}, {"reconcile.fluxcd.io/watch": "Enabled"})
    configs.create("rotated", https_spec(url, authority, "rotating"))
    configs.state("rotated", "Non-Compliant")
    assert configs.secret_data("rotated-auth")["password"] == b"not-the-password"

    configs.core.patch_namespaced_secret("rotating", namespace, {"stringData": {"httpsKey": PASSWORD}})
    configs.compliant("rotated", sha, timeout=60)  # no reconcile request: the Secret's change is watched
    assert configs.secret_data("rotated-auth")["password"] == PASSWORD.encode()


def test_a_protected_ssh_key_that_is_no_key_is_named_and_not_shown(
    configs: FluxConfigs, ssh_server: SshGitServer, log: pytest.LogCaptureFixture
) -> None:
    garbage = f"not-a-key-{secrets.token_hex(16)}"
    configs.protected_settings("bad-key", {"sshPrivateKey": garbage})
    configs.create(
        "bad-key",
        {
            **spec_for(ssh_server.url("none"), sshKnownHosts=b64(ssh_server.known_hosts)),
            "configurationProtectedSettingsRef": {"name": "bad-key"},
        },
    )
    stalled = configs.stalled("bad-key")
    message = condition(stalled, "Stalled")["message"]
    assert "sshPrivateKey" in message and "\n" not in message, message
    assert configs.secret("bad-key-auth") is None and configs.git_repository("bad-key") is None
    assert not (stalled["status"].get("repositoryPublicKey")), "no key is generated in place of a bad one"
    assert leaks(configs, ["bad-key"], log.text, [garbage, b64(garbage)]) == []
