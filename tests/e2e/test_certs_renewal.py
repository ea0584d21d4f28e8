"""The webhook's certificate renewed while the real API server keeps sending it admission requests.

Everything is what manifests/base ships, run locally against the real API server: the RBAC of the
webhook and of the renewer (applied for real; each command runs with its ServiceAccount's own token),
the init container's and the CronJob's ``fluxwarden certs bootstrap`` command lines, the server's
command line, and both webhook configurations (re-pointed at loopback, judging only this test's
namespace). The one stand-in is kubelet's refresh of the Secret volume (tests/support/kubelet.py).

Load: threads create Kustomizations through the API server, which calls the webhook for each; the
renewer replaces the serving certificate meanwhile. Not one request may fail, the webhook must serve
the new certificate, and the caBundle in both configurations must still verify it.
"""

from __future__ import annotations

import base64
import copy
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from tests.e2e.test_certs_bootstrap import bundles
from tests.support.control_plane import ControlPlane
from tests.support.kube import Kubectl
from tests.support.kubelet import SecretVolume
from tests.support.manifests import apply, built, by_kind, container_args, named, rbac_of
from tests.support.namespaces import ensure_namespace
from tests.support.tokens import service_account_token, token_kubeconfig
from tests.support.wait import until
from tests.support.webhook import WebhookProcess, free_port

NAMESPACE = "flux-system"
SECRET = "fluxwarden-webhook-tls"
REGISTRATION = "fluxwarden"  # the shipped name, which the shipped RBAC's resourceNames allow
FORCE_RENEWAL = "--renew-before=8761h"  # longer than a new certificate lives: renew now


@pytest.fixture(scope="module")
def base(kubectl: Kubectl) -> list[dict[str, Any]]:
    return built(kubectl, "manifests/base")


def _pod(base: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = named(base, "Deployment", "fluxwarden-webhook")["spec"]["template"]["spec"]
    return spec


def _renewer(base: list[dict[str, Any]]) -> dict[str, Any]:
    (cronjob,) = by_kind(base, "CronJob")
    spec: dict[str, Any] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def _mounted(container: dict[str, Any], volume: str) -> str:
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume]
    return str(mount["mountPath"])


def _at(args: list[str], mount: str, directory: Path) -> list[str]:
    """Command-line paths under the container's mount point, moved to the local directory."""
    return [a.replace(f"={mount}", f"={directory}") for a in args]


def _run_cli(args: list[str], kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "fluxwarden.cli.main", *args, f"--kubeconfig={kubeconfig}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _token_kubeconfig(admin_api: client.ApiClient, control_plane: ControlPlane, account: str, directory: Path) -> Path:
    token = service_account_token(admin_api, NAMESPACE, account)
    return token_kubeconfig(control_plane.kubeconfig, token, directory / f"{account}.kubeconfig")


def _served_certificate(port: int) -> x509.Certificate:
    """What a new TLS handshake with the webhook presents (verification is checked separately)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _verifies(bundle_b64: str, port: int) -> int:
    """Handshake as the API server does (the caBundle as the only root, the URL's host checked); the serial."""
    context = ssl.create_default_context(cadata=base64.b64decode(bundle_b64).decode())
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


@dataclass
class Load:
    """Threads creating Kustomizations through the API server; each answer must carry the webhook's mutation."""

    api: client.ApiClient
    namespace: str
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self) -> None:
        body = {
            "apiVersion": KUSTOMIZATION.api_version,
            "kind": "Kustomization",
            "metadata": {"name": f"load-{uuid.uuid4().hex[:10]}", "namespace": self.namespace},
            "spec": {
                "interval": "10m",
                "path": "./",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": "repo"},
            },
        }
        custom = client.CustomObjectsApi(self.api)
        try:
            made = custom.create_namespaced_custom_object(
                KUSTOMIZATION.group, KUSTOMIZATION.version, self.namespace, KUSTOMIZATION.plural, body
            )
            if made["spec"].get("serviceAccountName") != "flux-applier":
                raise AssertionError(f"not mutated by the webhook: {made['spec']}")
        except Exception as error:  # every failure counts; the test reports them all
            with self._lock:
                self.failures.append(f"{type(error).__name__}: {error}"[:300])
        finally:
            with self._lock:
                self.sent += 1

    def admitted(self) -> bool:
        """One request, alone: did it pass the webhook?"""
        self.failures.clear()
        self.create()
        return not self.failures

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.create()

    def add_threads(self, count: int) -> None:
        for _ in range(count):
            thread = threading.Thread(target=self._loop, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


@pytest.fixture
def registration(admin_api: client.ApiClient, base: list[dict[str, Any]], namespace: str) -> Iterator[int]:
    """The shipped webhook configurations pointed at a loopback port, judging only ``namespace``; the port."""
    port = free_port()
    admission = client.AdmissionregistrationV1Api(admin_api)
    paths = {"MutatingWebhookConfiguration": "/mutate", "ValidatingWebhookConfiguration": "/validate"}
    for kind, create, delete in (
        ("MutatingWebhookConfiguration", admission.create_mutating_webhook_configuration,
         admission.delete_mutating_webhook_configuration),
        ("ValidatingWebhookConfiguration", admission.create_validating_webhook_configuration,
         admission.delete_validating_webhook_configuration),
    ):  # fmt: skip
        config = copy.deepcopy(named(base, kind, REGISTRATION))
        for hook in config["webhooks"]:
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{paths[kind]}"}
            hook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
        try:
            delete(REGISTRATION)
        except ApiException as error:
            assert error.status == 404
        create(config)
    yield port
    admission.delete_mutating_webhook_configuration(REGISTRATION)
    admission.delete_validating_webhook_configuration(REGISTRATION)


@pytest.fixture
def fresh_secret(admin_api: client.ApiClient) -> Iterator[None]:
    """No certificate Secret before the test (a first start) and none after it."""
    core = client.CoreV1Api(admin_api)
    ensure_namespace(admin_api, NAMESPACE)

    def delete() -> None:
        try:
            core.delete_namespaced_secret(SECRET, NAMESPACE)
        except ApiException as error:
            assert error.status == 404

    delete()
    yield
    delete()


def _drop_bundles(api: client.ApiClient) -> None:
    admission = client.AdmissionregistrationV1Api(api)
    for read, patch in (
        (admission.read_mutating_webhook_configuration, admission.patch_mutating_webhook_configuration),
        (admission.read_validating_webhook_configuration, admission.patch_validating_webhook_configuration),
    ):
        count = len(read(REGISTRATION).webhooks)
        patch(REGISTRATION, [{"op": "remove", "path": f"/webhooks/{i}/clientConfig/caBundle"} for i in range(count)])


def _secret_version(api: client.ApiClient) -> str:
    return str(client.CoreV1Api(api).read_namespaced_secret(SECRET, NAMESPACE).metadata.resource_version)


def _secret(api: client.ApiClient) -> dict[str, bytes]:
    secret = client.CoreV1Api(api).read_namespaced_secret(SECRET, NAMESPACE)
    return {k: base64.b64decode(v) for k, v in secret.data.items()}


def test_renewal_under_load_fails_no_request(
    kubectl: Kubectl,
    admin_api: client.ApiClient,
    control_plane: ControlPlane,
    flux_crds: list[str],
    base: list[dict[str, Any]],
    namespace: str,
    registration: int,
    fresh_secret: None,
    tmp_path: Path,
) -> None:
    pod, renewer = _pod(base), _renewer(base)
    (init,), (server,), (renew,) = pod["initContainers"], pod["containers"], renewer["containers"]
    (volume,) = [v["secret"] for v in pod["volumes"] if v["name"] == "certs"]
    assert volume["secretName"] == SECRET, "the webhook reads the Secret itself, not a copy"
    apply(kubectl, rbac_of(base, pod["serviceAccountName"]) + rbac_of(base, renewer["serviceAccountName"]))
    env = {"POD_NAMESPACE": NAMESPACE}
    certs = tmp_path / "certs"
    webhook_config = _token_kubeconfig(admin_api, control_plane, pod["serviceAccountName"], tmp_path)
    renewer_config = _token_kubeconfig(admin_api, control_plane, renewer["serviceAccountName"], tmp_path)

    items = {item["key"]: item["path"] for item in volume["items"]}
    with SecretVolume(admin_api, NAMESPACE, SECRET, certs, items, volume["defaultMode"]) as kubelet:
        # First start: the init container creates the Secret and waits until the volume shows it.
        first = until(
            lambda: _run_cli(_at(container_args(init, env), _mounted(init, "certs"), certs), webhook_config),
            lambda done: done.returncode == 0 or " 403 " not in done.stderr,
            timeout=30,
            what="the init container's certs bootstrap (RBAC caches may lag a moment)",
        )
        assert first.returncode == 0, first.stderr
        assert set(kubelet.items.values()) == {p.name for p in certs.iterdir() if not p.name.startswith("..")}
        issued = _secret(admin_api)
        (ca_dir := tmp_path / "ca").mkdir()
        (ca_dir / "ca.crt").write_bytes(issued["ca.crt"])
        bundle = bundles(admin_api, REGISTRATION)[0]
        assert bundles(admin_api, REGISTRATION) == [bundle, bundle] and base64.b64decode(bundle) == issued["ca.crt"]

        serve_args = _at(container_args(server, env), _mounted(server, "certs"), certs)
        assert serve_args[0] == "serve"
        webhook = WebhookProcess(ca_dir, tmp_path / "serve.log", serve_args[1:], port=registration).start()
        try:
            load = Load(admin_api, namespace)
            until(load.admitted, bool, what="the API server calling the webhook (registrations are cached)")
            old_serial = _verifies(bundle, registration)
            assert old_serial == x509.load_pem_x509_certificate(issued["tls.crt"]).serial_number

            load.sent = 0
            load.add_threads(2)
            time.sleep(2)
            # The daily CronJob's command, forced to renew now.
            renew_args = [FORCE_RENEWAL if a.startswith("--renew-before=") else a for a in container_args(renew, env)]
            renewed = _run_cli(renew_args, renewer_config)
            assert renewed.returncode == 0, renewed.stderr
            after = _secret(admin_api)
            new_serial = x509.load_pem_x509_certificate(after["tls.crt"]).serial_number
            assert new_serial != old_serial and after["ca.crt"] == issued["ca.crt"], "same CA, new serving cert"
            until(
                lambda: _served_certificate(registration).serial_number,
                lambda serial: serial == new_serial,
                timeout=30,
                what="the webhook serving the renewed certificate",
            )
            sent_before_burst = load.sent
            load.add_threads(6)  # more concurrency: the API server opens new connections to the new certificate
            time.sleep(3)
            for current in bundles(admin_api, REGISTRATION):
                assert _verifies(current, registration) == new_serial, "each caBundle verifies the new cert"
        finally:
            load.stop()
            webhook.stop()

    assert load.failures == [], f"{len(load.failures)} of {load.sent} admission requests failed: {load.failures[:3]}"
    assert load.sent > sent_before_burst > 20, "requests ran before and after the renewal"
    print(f"admission requests: {load.sent} sent, {sent_before_burst} before the burst, 0 failed")
    assert "certificate reloaded" in webhook.log_file.read_text()
    assert kubelet.updates == 2, "the volume saw the first pair and the renewed one"
    assert bundles(admin_api, REGISTRATION) == [bundle, bundle], "the CA, and so the caBundle, did not change"

    # The daily run as shipped (no forced renewal) puts back a caBundle something dropped, with the
    # renewer's own rights (its patch rule: the renewal above had nothing to patch), and leaves the
    # fresh pair alone.
    _drop_bundles(admin_api)
    assert bundles(admin_api, REGISTRATION) == [None, None]
    secret_version = _secret_version(admin_api)
    daily = _run_cli(container_args(renew, env), renewer_config)
    assert daily.returncode == 0, daily.stderr
    assert bundles(admin_api, REGISTRATION) == [bundle, bundle], "the renewer re-injected the caBundle"
    assert _secret_version(admin_api) == secret_version, "a fresh pair is not rewritten"
