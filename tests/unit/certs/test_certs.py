"""Certificates: what a TLS client and the API server check, made by fluxwarden.certs."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from fluxwarden.certs import (
    ServingFiles,
    ensure_serving_pair,
    expiry,
    generate_ca,
    issue,
    load_pair,
    serving_sans,
    write_pair,
)
from fluxwarden.tenancy import Settings
from fluxwarden.webhook.app import WebhookConfig
from fluxwarden.webhook.server import ServeOptions, WebhookServer


def test_serving_certificate_names_and_chain(tmp_path: Path) -> None:
    ca = generate_ca()
    leaf = issue(ca, "fluxwarden-webhook.flux-system.svc", sans=serving_sans("fluxwarden-webhook", "flux-system"))
    sans = leaf.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "fluxwarden-webhook.flux-system.svc" in sans.get_values_for_type(x509.DNSName)
    assert "fluxwarden-webhook.flux-system.svc.cluster.local" in sans.get_values_for_type(x509.DNSName)
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    leaf.certificate.verify_directly_issued_by(ca.certificate)


def test_long_common_name_is_cut_to_the_x509_limit() -> None:
    leaf = issue(generate_ca(), "x" * 100, sans=("a.example",))
    (cn,) = leaf.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert cn.value == "x" * 64


def test_client_certificate_carries_user_and_groups() -> None:
    admin = issue(generate_ca(), "admin", organizations=("system:masters",), client=True)
    subject = admin.certificate.subject
    assert subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    usage = admin.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage


def test_ensure_serving_pair_reuses_then_renews_near_expiry(tmp_path: Path) -> None:
    files = ensure_serving_pair(tmp_path)
    first = files.tls_cert.read_bytes()
    assert ensure_serving_pair(tmp_path).tls_cert.read_bytes() == first
    ca = files.ca_cert.read_bytes()
    short = issue(load_pair(files.ca_cert, files.ca_key), "soon", sans=("localhost",), days=5)
    write_pair(short, files.tls_cert, files.tls_key)
    renewed = ensure_serving_pair(tmp_path)
    assert renewed.ca_cert.read_bytes() == ca, "renewal keeps the CA, so the caBundle stays valid"
    assert expiry(renewed.tls_cert.read_bytes()) - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=300)
    assert (files.tls_key.stat().st_mode & 0o777) == 0o600 and (files.ca_key.stat().st_mode & 0o777) == 0o600


def test_the_servers_tls_context_refuses_below_1_2(tmp_path: Path) -> None:
    """The context uvicorn serves with, as the webhook configures it (the wire test is in integration)."""
    files: ServingFiles = ensure_serving_pair(tmp_path)
    server = WebhookServer(ServeOptions(files.tls_cert, files.tls_key, WebhookConfig(Settings()), port=0))
    context = server._uvicorn_config().ssl
    assert context is not None and context.minimum_version == ssl.TLSVersion.TLSv1_2
