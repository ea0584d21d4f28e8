"""Protected settings to Flux's secret format, and generated keys in OpenSSH format."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fluxwarden.controllers.fluxconfig import keys
from fluxwarden.controllers.fluxconfig.api import FluxConfigSpec
from fluxwarden.controllers.fluxconfig.auth import credentials
from fluxwarden.controllers.runtime.errors import Stalling


def spec_of(spec: dict[str, Any]) -> FluxConfigSpec:
    return FluxConfigSpec.of({"metadata": {"name": "c", "namespace": "n"}, "spec": spec})


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_https_user_key_and_ca() -> None:
    spec = spec_of({"gitRepository": {"url": "https://h/r", "httpsUser": "bot", "httpsCACert": b64("CA PEM")}})
    found = credentials(spec, {"httpsKey": b"tok3n"})
    assert found.data == {"username": b"bot", "password": b"tok3n", "ca.crt": b"CA PEM"}
    assert not found.needs_key


def test_ssh_key_and_known_hosts() -> None:
    pem = b"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
    spec = spec_of({"gitRepository": {"url": "ssh://git@h/r", "sshKnownHosts": b64("h ssh-ed25519 AAAA")}})
    assert credentials(spec, {"sshPrivateKey": pem}).data == {"identity": pem, "known_hosts": b"h ssh-ed25519 AAAA"}
    # ARM sends the key base64-encoded; that is accepted as well.
    assert credentials(spec, {"sshPrivateKey": base64.b64encode(pem)}).data["identity"] == pem


def test_ssh_url_without_key_needs_one_and_local_auth_ref_needs_nothing() -> None:
    assert credentials(spec_of({"gitRepository": {"url": "git@h:o/r"}}), {}).needs_key
    local = credentials(
        spec_of({"gitRepository": {"url": "git@h:o/r", "localAuthRef": "mine"}}), {"sshPrivateKey": b"x"}
    )
    assert (local.data, local.needs_key) == ({}, False)


def test_bad_values_stall_without_echoing_them() -> None:
    with pytest.raises(Stalling) as raised:
        credentials(spec_of({"gitRepository": {"url": "ssh://h/r"}}), {"sshPrivateKey": b"hunter2-not-a-key"})
    assert "sshPrivateKey" in raised.value.message and "hunter2" not in raised.value.message
    with pytest.raises(Stalling, match="sshKnownHosts"):
        credentials(spec_of({"gitRepository": {"url": "ssh://h/r", "sshKnownHosts": "%%%"}}), {})


def test_bucket_keys() -> None:
    spec = spec_of({"sourceKind": "Bucket", "bucket": {"url": "https://s3", "bucketName": "b", "accessKey": "AK"}})
    assert credentials(spec, {"bucketSecretKey": b"SK"}).data == {"accesskey": b"AK", "secretkey": b"SK"}


@pytest.mark.parametrize(
    ("algorithm", "prefix"), [("rsa", "ssh-rsa "), ("ecdsa", "ecdsa-sha2-nistp384 "), ("ed25519", "ssh-ed25519 ")]
)
def test_generated_keys_are_openssh_and_ssh_keygen_agrees(algorithm: str, prefix: str, tmp_path: Path) -> None:
    pair = keys.generate(algorithm, "fluxwarden:n/c")
    assert pair.public.startswith(prefix) and pair.public.endswith(" fluxwarden:n/c")
    key = tmp_path / "id"
    key.write_bytes(pair.private)
    key.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True).stdout
    assert derived.split()[:2] == pair.public.split()[:2]
    assert keys.public_of(pair.private) == " ".join(pair.public.split()[:2])


def test_rsa_keys_are_4096_bits(tmp_path: Path) -> None:
    pair = keys.generate("rsa", "c")
    (tmp_path / "id.pub").write_text(pair.public + "\n")
    out = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(tmp_path / "id.pub")], capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[0] == "4096"


def test_a_generated_pair_is_kept_only_from_a_secret_labelled_generated() -> None:
    pair = keys.new("ed25519", "c")
    stored = {"identity": base64.b64encode(pair["identity"]).decode()}
    labelled = {"metadata": {"labels": {"clusterconfig.azure.com/generated-key": "true"}}, "data": stored}
    kept = keys.kept(labelled, "fluxwarden:n/c")
    assert kept["identity"] == pair["identity"]
    assert kept["identity.pub"].decode().split()[:2] == pair["identity.pub"].decode().split()[:2]
    assert keys.kept({"metadata": {"labels": {}}, "data": stored}, "c") == {}, "a user's key is never taken as ours"
