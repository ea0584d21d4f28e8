"""In-cluster certificate bootstrap against the real API server: create once, reuse, renew, inject caBundle."""

from __future__ import annotations

import base64
import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from fluxwarden.certs import ca_bundle, expiry, generate_ca, issue
from fluxwarden.certs.bootstrap import BootstrapError, Renewal, Target, renew, wait_for_mount, write_files
from fluxwarden.webhook.registration import Endpoint, webhook_configurations


@pytest.fixture
def registration(admin_api: client.ApiClient) -> Iterator[str]:
    """Both webhook configurations under a unique name, matching no namespace so they judge nothing."""
    name = f"fluxwarden-bootstrap-{uuid.uuid4().hex[:8]}"
    admission = client.AdmissionregistrationV1Api(admin_api)
    mutating, validating = webhook_configurations(Endpoint(url="https://127.0.0.1:9"), name=name)
    for config in (mutating, validating):
        config["webhooks"][0]["namespaceSelector"] = {"matchLabels": {"fluxwarden.dev/never": "true"}}
    admission.create_mutating_webhook_configuration(mutating)
    admission.create_validating_webhook_configuration(validating)
    yield name
    admission.delete_mutating_webhook_configuration(name)
    admission.delete_validating_webhook_configuration(name)


def bundles(api: client.ApiClient, name: str) -> list[str]:
    admission = client.AdmissionregistrationV1Api(api)
    configs = [
        admission.read_mutating_webhook_configuration(name),
        admission.read_validating_webhook_configuration(name),
    ]
    return [hook.client_config.ca_bundle for config in configs for hook in config.webhooks]


def test_first_run_creates_the_secret_and_injects_the_ca(
    admin_api: client.ApiClient, namespace: str, registration: str, tmp_path: Path
) -> None:
    target = Target(namespace, "webhook-tls", "fluxwarden-webhook", registration)
    files = write_files(renew(admin_api, target), tmp_path / "a")

    secret = client.CoreV1Api(admin_api).read_namespaced_secret("webhook-tls", namespace)
    assert secret.type == "kubernetes.io/tls"
    assert base64.b64decode(secret.data["tls.crt"]) == files.tls_cert.read_bytes()
    assert bundles(admin_api, registration) == [ca_bundle(files.ca_cert.read_bytes())] * 2
    assert (files.tls_key.stat().st_mode & 0o777) == 0o600

    again = write_files(renew(admin_api, target), tmp_path / "b")
    assert again.tls_cert.read_bytes() == files.tls_cert.read_bytes(), "a second replica reuses the pair"
    reread = client.CoreV1Api(admin_api).read_namespaced_secret("webhook-tls", namespace)
    assert reread.metadata.resource_version == secret.metadata.resource_version


def test_a_serving_certificate_near_expiry_is_renewed_with_the_same_ca(
    admin_api: client.ApiClient, namespace: str, registration: str, tmp_path: Path
) -> None:
    ca = generate_ca()
    old = issue(ca, "fluxwarden-webhook", days=10)
    data = {"ca.crt": ca.cert_pem, "ca.key": ca.key_pem, "tls.crt": old.cert_pem, "tls.key": old.key_pem}
    client.CoreV1Api(admin_api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="webhook-tls"),
            type="kubernetes.io/tls",
            data={k: base64.b64encode(v).decode() for k, v in data.items()},
        ),
    )
    target = Target(namespace, "webhook-tls", "fluxwarden-webhook", registration)
    files = write_files(renew(admin_api, target), tmp_path)
    assert files.ca_cert.read_bytes() == ca.cert_pem
    assert files.tls_cert.read_bytes() != old.cert_pem
    assert expiry(files.tls_cert.read_bytes()) - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=300)


def test_missing_webhook_configuration_is_a_one_line_error(admin_api: client.ApiClient, namespace: str) -> None:
    with pytest.raises(BootstrapError, match=r"cannot patch caBundle of MutatingWebhookConfiguration nope: 404"):
        renew(admin_api, Target(namespace, "webhook-tls", "svc", "nope"))


def test_the_renewer_may_not_create_and_a_fresh_pair_writes_nothing(
    admin_api: client.ApiClient, namespace: str, registration: str, tmp_path: Path
) -> None:
    target = Target(namespace, "webhook-tls", "fluxwarden-webhook", registration)
    with pytest.raises(
        BootstrapError, match=r"Secret .*/webhook-tls not found; the webhook's init container creates it"
    ):
        renew(admin_api, target, Renewal(create=False))

    first = renew(admin_api, target)
    admission = client.AdmissionregistrationV1Api(admin_api)

    def versions() -> list[str]:
        secret = client.CoreV1Api(admin_api).read_namespaced_secret("webhook-tls", namespace)
        return [
            secret.metadata.resource_version,
            admission.read_mutating_webhook_configuration(registration).metadata.resource_version,
            admission.read_validating_webhook_configuration(registration).metadata.resource_version,
        ]

    before = versions()
    assert renew(admin_api, target, Renewal(create=False)) == first
    assert versions() == before, "a daily run on a fresh pair writes neither the Secret nor the configurations"

    forced = renew(admin_api, target, Renewal(renew_before=datetime.timedelta(days=400), create=False))
    assert forced["ca.crt"] == first["ca.crt"] and forced["tls.crt"] != first["tls.crt"]
    assert versions()[0] != before[0], "the renewed pair is stored"
    assert versions()[1:] == before[1:], "same CA: the caBundle is left as it is"
    assert bundles(admin_api, registration) == [ca_bundle(first["ca.crt"])] * 2


def test_waiting_for_a_mount_that_never_shows_the_pair_is_a_one_line_error(
    admin_api: client.ApiClient, namespace: str, registration: str, tmp_path: Path
) -> None:
    data = renew(admin_api, Target(namespace, "webhook-tls", "fluxwarden-webhook", registration))
    write_files({**data, "tls.crt": b"stale"}, tmp_path)
    with pytest.raises(BootstrapError, match=r"tls.crt does not hold the Secret's certificate after 0s; mount the"):
        wait_for_mount(data, tmp_path, timeout=0.3, interval=0.1)
    write_files(data, tmp_path)
    wait_for_mount(data, tmp_path, timeout=0.3, interval=0.1)
