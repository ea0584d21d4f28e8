"""OCI HelmRepository helpers: Flux's exact-version rule, what helm is asked for, docker configs."""

from __future__ import annotations

import base64
import json

import pytest

from fluxwarden.controllers.runtime.errors import Failure
from fluxwarden.controllers.source.helm_oci import helm_version_arg, is_exact_version
from fluxwarden.controllers.source.helm_registry import (
    RegistryCredentials,
    docker_config_auth,
    helm_failure,
    registry_host,
)


@pytest.mark.parametrize("version", ["1.2.3", "v1.2.3", "0.0.0", "1.2.3-rc.1", "1.2.3+build.5", "10.20.30-a+b"])
def test_full_versions_are_tags(version: str) -> None:
    assert is_exact_version(version)
    assert helm_version_arg(version) == version


@pytest.mark.parametrize(
    ("version", "asked"),
    [("*", "*"), ("1.x", "1.x"), (">=1.0.0", ">=1.0.0"), ("^2", "^2"), ("1.2", "=1.2"), ("v1", "=v1"), ("1", "=1")],
)
def test_anything_else_is_a_constraint_to_helm_as_to_flux(version: str, asked: str) -> None:
    assert not is_exact_version(version)
    assert helm_version_arg(version) == asked


def config(auths: dict[str, dict[str, str]]) -> bytes:
    return json.dumps({"auths": auths}).encode()


def test_docker_config_entry_of_the_host_only() -> None:
    auth = base64.b64encode(b"u2:p:2").decode()
    data = config({"other:5000": {"username": "x", "password": "y"}, "https://reg:5000/v1/": {"auth": auth}})
    assert docker_config_auth(data, "reg:5000", "s") == ("u2", "p:2")
    assert docker_config_auth(config({"reg": {"username": "a", "password": "b"}}), "reg", "s") == ("a", "b")
    with pytest.raises(Failure) as missing:
        docker_config_auth(data, "elsewhere:443", "docker")
    assert missing.value.reason == "AuthenticationFailed"
    assert "no auth config for 'elsewhere:443' in the docker-registry Secret 'docker'" in missing.value.message
    assert "y" not in missing.value.message.split("'")


def test_broken_docker_config_is_one_line_without_data() -> None:
    with pytest.raises(Failure) as broken:
        docker_config_auth(b"{not json", "reg", "docker")
    assert broken.value.message == "unable to load Docker config from Secret 'docker'"


def test_host_and_repr_without_password() -> None:
    assert registry_host("oci://127.0.0.1:5000/charts/x") == "127.0.0.1:5000"
    assert "hunter2" not in repr(RegistryCredentials("me", "hunter2"))


@pytest.mark.parametrize(
    "error",
    [
        'GET "https://r.example/v2/": response status code 401: unauthorized: authentication required',
        "failed to authorize: 401 Unauthorized",
        "tls: failed to verify certificate: x509: certificate signed by unknown authority",
        "remote error: tls: bad certificate",
    ],
)
def test_refused_credentials_or_certificates_are_authentication_failures(error: str) -> None:
    assert helm_failure(error, "chart pull error").reason == "AuthenticationFailed"


@pytest.mark.parametrize(
    "error",
    [
        # the CI failure: a port with 401 in it, on a plain-HTTP registry
        'Get "https://127.0.0.1:40103/v2/charts/plain/manifests/0.1.0": '
        "http: server gave HTTP response to HTTPS client",
        'GET "https://127.0.0.1:34401/v2/charts/app/manifests/4.0.1": manifest unknown',
        "oci://r.example/charts/mtls-app:1.0.0: not found",
    ],
)
def test_numbers_and_names_that_contain_the_markers_are_pull_errors(error: str) -> None:
    failure = helm_failure(error, "chart pull error")
    assert failure.reason == "ChartPullError" and failure.message == f"chart pull error: {error}"
