"""``providers.resolve`` against the real API server: real Provider objects (Flux's CRD) and real Secrets,
read through the controllers' own Kube client. Every error is one line and carries no secret value."""

from __future__ import annotations

import json
import ssl
from typing import Any

import pytest
from kubernetes import client

from fluxwarden.controllers.notification.api import PROVIDER
from fluxwarden.controllers.notification.providers import ProviderError, Target, resolve, secret_names
from fluxwarden.controllers.runtime.kube import Kube
from tests.support.tls import PrivateCA

TOKEN, PASSWORD, HEADER_VALUE = "tok-3f9a1c", "pw-77e2b0", "hv-5d1e0a"
SECRET_ADDRESS = "https://hooks.example.com/services/T000/B000/XXXXsecretpath"


@pytest.fixture
def kube(admin_api: client.ApiClient, flux_crds: list[str]) -> Kube:
    return Kube(admin_api)


def secret(api: client.ApiClient, namespace: str, name: str, data: dict[str, str]) -> None:
    body = {"metadata": {"name": name}, "stringData": data}
    client.CoreV1Api(api).create_namespaced_secret(namespace, body)


def provider(kube: Kube, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Create the Provider through the API server (its CRD validates the spec) and read it back."""
    body = {"apiVersion": PROVIDER.api_version, "kind": "Provider", "metadata": {"name": name}, "spec": spec}
    kube.custom.create_namespaced_custom_object(PROVIDER.group, PROVIDER.version, namespace, PROVIDER.plural, body)
    return kube.get(PROVIDER, namespace, name)


def refused(kube: Kube, obj: dict[str, Any]) -> str:
    with pytest.raises(ProviderError) as caught:
        resolve(kube, obj)
    text = str(caught.value)
    assert "\n" not in text
    for value in (TOKEN, PASSWORD, HEADER_VALUE, "XXXXsecretpath"):
        assert value not in text, text
    return text


def test_secret_keys_override_the_spec(admin_api: client.ApiClient, kube: Kube, namespace: str) -> None:
    headers = f"Authorization: Bearer {HEADER_VALUE}\nX-Count: 3\nX-On: true\n"
    secret(
        admin_api,
        namespace,
        "creds",
        {
            "address": SECRET_ADDRESS,
            "token": f"  {TOKEN}\n",
            "username": "am",
            "password": PASSWORD,
            "headers": headers,
        },
    )
    spec = {"type": "alertmanager", "address": "https://spec.example.com/", "username": "spec-user"}
    obj = provider(kube, namespace, "am", spec | {"secretRef": {"name": "creds"}, "timeout": "20s"})
    target = resolve(kube, obj)
    assert isinstance(target, Target)
    assert (target.namespace, target.name, target.uid) == (namespace, "am", obj["metadata"]["uid"])
    assert target.address == SECRET_ADDRESS and target.address_from_secret
    assert target.token == TOKEN  # trimmed, as Flux does
    assert (target.username, target.password) == ("am", PASSWORD)
    assert target.headers == {"Authorization": f"Bearer {HEADER_VALUE}", "X-Count": "3", "X-On": "true"}
    assert target.timeout == 20.0
    for value in (TOKEN, PASSWORD, f"Bearer {HEADER_VALUE}", SECRET_ADDRESS):
        assert value in target.secret_values
        assert value not in repr(target)
    assert "3" not in target.secret_values  # a short plain header value is not masked in messages
    assert secret_names(obj) == ("creds",)


def test_spec_address_kept_without_a_secret_address(admin_api: client.ApiClient, kube: Kube, namespace: str) -> None:
    secret(admin_api, namespace, "hmac", {"token": TOKEN})
    obj = provider(
        kube,
        namespace,
        "h",
        {"type": "generic-hmac", "address": "https://x.example/hook", "secretRef": {"name": "hmac"}},
    )
    target = resolve(kube, obj)
    assert target.address == "https://x.example/hook" and not target.address_from_secret
    assert target.token == TOKEN


def test_cert_secret_ca_and_client_pair(admin_api: client.ApiClient, kube: Kube, namespace: str) -> None:
    ca = PrivateCA()
    secret(
        admin_api,
        namespace,
        "tls",
        {"ca.crt": ca.ca_pem.decode(), "tls.crt": ca.client.cert_pem.decode(), "tls.key": ca.client.key_pem.decode()},
    )
    secret(admin_api, namespace, "legacy", {"caFile": ca.ca_pem.decode()})
    obj = provider(
        kube, namespace, "m", {"type": "generic", "address": "https://127.0.0.1/", "certSecretRef": {"name": "tls"}}
    )
    target = resolve(kube, obj)
    assert isinstance(target.ssl, ssl.SSLContext)
    assert target.ssl.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert target.ssl.verify_mode == ssl.CERT_REQUIRED and target.ssl.check_hostname
    # only the private CA is trusted (Flux replaces the system roots with ca.crt)
    assert [c["subject"] for c in target.ssl.get_ca_certs()] == [((("commonName", "fluxwarden-test-ca"),),)]
    legacy = resolve(
        kube,
        provider(
            kube,
            namespace,
            "l",
            {"type": "generic", "address": "https://127.0.0.1/", "certSecretRef": {"name": "legacy"}},
        ),
    )
    assert legacy.ssl is not None and len(legacy.ssl.get_ca_certs()) == 1
    assert legacy.tls_key != target.tls_key  # another material: another pooled client


def test_cert_secret_errors_name_the_key(admin_api: client.ApiClient, kube: Kube, namespace: str) -> None:
    ca = PrivateCA()
    secret(admin_api, namespace, "half", {"tls.crt": ca.client.cert_pem.decode()})
    secret(admin_api, namespace, "junk", {"ca.crt": "not a certificate"})
    secret(admin_api, namespace, "empty", {"other": "x"})
    half = provider(
        kube, namespace, "half", {"type": "generic", "address": "https://h/", "certSecretRef": {"name": "half"}}
    )
    assert "has tls.crt but no tls.key" in refused(kube, half)
    junk = provider(
        kube, namespace, "junk", {"type": "generic", "address": "https://h/", "certSecretRef": {"name": "junk"}}
    )
    assert "ca.crt is not a PEM certificate" in refused(kube, junk)
    empty = provider(
        kube, namespace, "empty", {"type": "generic", "address": "https://h/", "certSecretRef": {"name": "empty"}}
    )
    assert "none of ca.crt, tls.crt, tls.key" in refused(kube, empty)


def test_commit_status_takes_the_ca_beside_the_token(admin_api: client.ApiClient, kube: Kube, namespace: str) -> None:
    ca = PrivateCA()
    secret(admin_api, namespace, "gh", {"token": TOKEN, "ca.crt": ca.ca_pem.decode()})
    obj = provider(
        kube, namespace, "gh", {"type": "github", "address": "https://ghe.example.com/o/r", "secretRef": {"name": "gh"}}
    )
    target = resolve(kube, obj)
    assert target.ssl is not None and len(target.ssl.get_ca_certs()) == 1
    generic = provider(kube, namespace, "g", {"type": "generic", "address": "https://h/", "secretRef": {"name": "gh"}})
    assert resolve(kube, generic).ssl is None  # only commit-status types read TLS from secretRef


def test_proxy_precedence_and_credentials(admin_api: client.ApiClient, kube: Kube, namespace: str) -> None:
    secret(admin_api, namespace, "with-proxy", {"proxy": "http://legacy-proxy:3128"})
    secret(
        admin_api, namespace, "proxy", {"address": "http://proxy.internal:3128", "username": "pu", "password": "p@ss:w"}
    )
    spec = {"type": "generic", "address": "https://h/", "proxy": "http://spec-proxy:3128"}
    assert resolve(kube, provider(kube, namespace, "a", spec)).proxy == "http://spec-proxy:3128"
    legacy = provider(kube, namespace, "b", spec | {"secretRef": {"name": "with-proxy"}})
    assert resolve(kube, legacy).proxy == "http://legacy-proxy:3128"
    both = provider(
        kube, namespace, "c", spec | {"secretRef": {"name": "with-proxy"}, "proxySecretRef": {"name": "proxy"}}
    )
    target = resolve(kube, both)
    assert target.proxy == "http://pu:p%40ss%3Aw@proxy.internal:3128"
    assert target.proxy in target.secret_values
    assert secret_names(both) == ("with-proxy", "proxy")


def test_missing_secret_and_bad_headers(admin_api: client.ApiClient, kube: Kube, namespace: str) -> None:
    missing = provider(kube, namespace, "m", {"type": "slack", "address": "https://h/", "secretRef": {"name": "nope"}})
    text = refused(kube, missing)
    assert f"spec.secretRef names Secret {namespace}/nope, which does not exist" in text
    secret(admin_api, namespace, "bad-headers", {"token": TOKEN, "headers": f"- {HEADER_VALUE}\n"})
    bad = provider(
        kube, namespace, "b", {"type": "generic", "address": "https://h/", "secretRef": {"name": "bad-headers"}}
    )
    assert "headers is not a YAML map" in refused(kube, bad)
    secret(admin_api, namespace, "split-token", {"token": f"{TOKEN}\nX-Injected: 1"})
    split = provider(
        kube,
        namespace,
        "s",
        {"type": "github", "address": "https://github.com/o/r", "secretRef": {"name": "split-token"}},
    )
    assert "token has line breaks" in refused(kube, split)
    secret(admin_api, namespace, "wide-header", {"headers": f"X-Name: {HEADER_VALUE}\u2603\n"})
    wide = provider(
        kube, namespace, "w", {"type": "generic", "address": "https://h/", "secretRef": {"name": "wide-header"}}
    )
    assert "headers['X-Name'] is not a valid HTTP header" in refused(kube, wide)
    secret(admin_api, namespace, "no-token", {"address": SECRET_ADDRESS})
    hmac_less = provider(kube, namespace, "n", {"type": "generic-hmac", "secretRef": {"name": "no-token"}})
    text = refused(kube, hmac_less)
    assert "needs a token key" in text and f"Secret {namespace}/no-token" in text


def test_the_crd_and_resolve_agree_on_types(kube: Kube, namespace: str) -> None:
    obj = provider(kube, namespace, "tg", {"type": "telegram", "address": "https://api.telegram.org", "channel": "@x"})
    assert "spec.type 'telegram' is not supported by fluxwarden" in refused(kube, obj)
    expr = provider(
        kube,
        namespace,
        "ex",
        {"type": "gitlab", "address": "https://gitlab.com/g/p", "commitStatusExpr": "has(event.x)"},
    )
    assert "spec.commitStatusExpr: " in refused(kube, expr)


def test_commit_status_expr_resolved(admin_api: client.ApiClient, kube: Kube, namespace: str) -> None:
    secret(admin_api, namespace, "gl", {"token": TOKEN})
    expr = "(event.involvedObject.kind + '/' + event.metadata.cluster).lowerAscii()"
    spec = {
        "type": "gitlab",
        "address": "https://gitlab.com/g/p",
        "secretRef": {"name": "gl"},
        "commitStatusExpr": expr,
    }
    obj = provider(kube, namespace, "gl", spec)
    target = resolve(kube, obj)
    assert target.commit_status_expr == expr
    assert target.provider_object["metadata"]["uid"] == obj["metadata"]["uid"]
    assert "managedFields" not in target.provider_object["metadata"]
    assert target.provider_object["spec"]["type"] == "gitlab"
    assert json.dumps(obj["spec"])  # the object came back from the API server as written
