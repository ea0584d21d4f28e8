"""OCI pieces that need no registry: URLs, docker configs, challenges, the spec view, Flux's JSON."""

from __future__ import annotations

import base64
import json

import pytest

from fluxwarden.controllers.runtime.errors import Stalling
from fluxwarden.controllers.source.oci.auth import Login, login_for, parse_challenge
from fluxwarden.controllers.source.oci.push import annotations_for, go_json
from fluxwarden.controllers.source.oci.reference import Repository, parse_repository
from fluxwarden.controllers.source.oci.spec import OCIRepositorySpec, filter_tags


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("oci://ghcr.io/org/app", (Repository("ghcr.io", "org/app"), None)),
        ("oci://127.0.0.1:5000/a/b/c", (Repository("127.0.0.1:5000", "a/b/c"), None)),
        ("oci://Registry.Example:443/app", (Repository("registry.example:443", "app"), None)),
    ],
)
def test_repository_urls(url: str, expected: tuple[Repository, None]) -> None:
    assert parse_repository(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://ghcr.io/app", "oci://"),
        ("oci://ghcr.io/app:v1", "must not contain a tag; remove ':v1'"),
        ("oci://user:pw@ghcr.io/app", "credentials"),
        ("oci://ghcr.io/App", "not a valid OCI repository name"),
        ("oci://ghcr.io/", "not a valid OCI repository name"),
        ("oci://ghcr.io/../etc", "not a valid OCI repository name"),
        ("oci:///app", "not a valid host"),
    ],
)
def test_bad_repository_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_repository(url)
    assert message in str(info.value) and "pw" not in str(info.value)


def test_push_url_takes_a_tag() -> None:
    assert parse_repository("oci://h:5000/org/app:1.2.3", allow_tag=True) == (Repository("h:5000", "org/app"), "1.2.3")
    with pytest.raises(ValueError, match="not a valid OCI tag"):
        parse_repository("oci://h/app:-bad", allow_tag=True)


def test_login_only_for_its_host() -> None:
    auth = base64.b64encode(b"robot:s3cret").decode()
    config = json.dumps({"auths": {
        "https://other.example/v1/": {"username": "other", "password": "no"},
        "registry.example:5000": {"auth": auth},
    }}).encode()  # fmt: skip
    assert login_for(config, "registry.example:5000") == Login("robot", "s3cret")
    assert login_for(config, "registry.example") is None, "another port is another host"
    assert login_for(config, "other.example") == Login("other", "no")
    with pytest.raises(ValueError, match="not valid JSON"):
        login_for(b"{", "x")
    with pytest.raises(ValueError) as info:
        login_for(json.dumps({"auths": {"x": {"auth": "!!!"}}}).encode(), "x")
    assert "base64" in str(info.value)


def test_challenges() -> None:
    bearer = parse_challenge('Bearer realm="https://auth.example/token",service="registry.example",scope="a:b:pull"')
    assert bearer is not None and bearer.scheme == "bearer"
    assert bearer.params == {"realm": "https://auth.example/token", "service": "registry.example", "scope": "a:b:pull"}
    basic = parse_challenge('Basic realm="fluxwarden-test"')
    assert basic is not None and (basic.scheme, basic.params) == ("basic", {"realm": "fluxwarden-test"})
    assert parse_challenge("") is None


def _obj(spec: dict[str, object]) -> dict[str, object]:
    return {"spec": {"url": "oci://h/app", **spec}}


def test_spec_defaults_and_precedence_inputs() -> None:
    spec = OCIRepositorySpec.of(_obj({}))
    assert (spec.ref.tag, spec.ref.digest, spec.ref.semver) == ("latest", None, None)
    assert (spec.layer.media_type, spec.layer.operation, spec.timeout, spec.insecure) == (None, "extract", 60.0, False)
    copy = OCIRepositorySpec.of(_obj({"layerSelector": {"operation": "copy"}, "timeout": "2m", "insecure": True}))
    assert (copy.layer.operation, copy.timeout, copy.insecure) == ("copy", 120.0, True)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"ref": {"digest": "sha256:abc"}}, "spec.ref.digest"),
        ({"ref": {"tag": "bad tag"}}, "spec.ref.tag"),
        ({"ref": {"semver": "1.x", "semverFilter": "("}}, "spec.ref.semverFilter"),
        ({"layerSelector": {"operation": "move"}}, "spec.layerSelector.operation"),
        ({"url": "oci://h/app:v1"}, "spec.url"),
    ],
)
def test_invalid_specs_stall_naming_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(Stalling) as info:
        OCIRepositorySpec.of(_obj(spec))
    assert field in info.value.message


def test_semver_filter_is_a_go_regexp_searched_anywhere() -> None:
    assert filter_tags(["1.0.0", "1.0.0-rc.1", "2.0.0-rc.2"], r"-rc\.\d+$") == ["1.0.0-rc.1", "2.0.0-rc.2"]
    assert filter_tags(["a", "b"], None) == ["a", "b"]


def test_go_json_and_annotations() -> None:
    assert go_json({"a": "<&>", "b": [1, {}], "c": "é"}) == '{"a":"\\u003c\\u0026\\u003e","b":[1,{}],"c":"é"}'.encode()
    assert list(annotations_for("T", "src", "rev", {"z": "1", "a": "2"})) == [
        "a", "org.opencontainers.image.created", "org.opencontainers.image.revision",
        "org.opencontainers.image.source", "z",
    ]  # fmt: skip
    assert annotations_for("T", None, None, {}) == {"org.opencontainers.image.created": "T"}
