"""fluxwarden's webhook behind a real kube-apiserver, driven by a real kubectl.

The API server calls ``fluxwarden serve`` on loopback through the same Mutating/Validating
WebhookConfigurations the manifests ship (``webhook_configurations``), with a loopback URL. One
registration name is re-pointed at whichever webhook process a test needs (deny mode, fix mode,
``--no-enforce``); a swap counts as done only once a probe request reached the new process on
both routes, so no test is judged by the previous setting.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fluxwarden.certs import ca_bundle
from fluxwarden.tenancy.kinds import FLUXCONFIG, KINDS, FluxKind
from fluxwarden.webhook.registration import Endpoint, webhook_configurations
from tests.support.kube import Kubectl
from tests.support.namespaces import ensure_namespace
from tests.support.reviews import legacy_helmrelease
from tests.support.webhook import WebhookProcess

REGISTRATION = "fluxwarden-e2e"
FIELD_MANAGER = "fluxwarden-e2e"
APPLY_PATCH = "application/apply-patch+yaml"
APPLIER = "flux-applier"
REGISTRATION_TIMEOUT = 30.0


@dataclass(frozen=True)
class Resource:
    """Where the API serves a custom resource."""

    group: str
    version: str
    plural: str


HELMRELEASES = Resource("helm.toolkit.fluxcd.io", "v2", "helmreleases")
KUSTOMIZATIONS = Resource("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")


def decisions(webhook: WebhookProcess, name: str) -> list[dict[str, Any]]:
    """The admission decisions a webhook process logged for objects called ``name``."""
    if not webhook.log_file.exists():
        return []
    found = []
    for line in webhook.log_file.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue  # the start-up banner is plain text
        record = json.loads(line)
        if record.get("msg") == "admission" and record.get("name") == name:
            found.append(record)
    return found


@dataclass
class Admission:
    """fluxwarden webhook processes, one per set of serve flags, and the registration that points at one.

    Every process shares one certificate directory, so one caBundle fits them all.
    """

    api: client.ApiClient
    workdir: Path
    probe_namespace: str
    processes: dict[tuple[str, ...], WebhookProcess] = field(default_factory=dict)
    registered: WebhookProcess | None = None

    @property
    def cert_dir(self) -> Path:
        return self.workdir / "certs"

    def webhook(self, *args: str) -> WebhookProcess:
        """The running ``fluxwarden serve <args>``, (re)started if need be, registered and in effect."""
        process = self.processes.get(args)
        exit_code = process.process.poll() if process is not None and process.process is not None else None
        if exit_code not in (None, 0):
            # Only a clean stop (a test taking the webhook down) is restarted; a crash is a failure.
            raise AssertionError(
                f"fluxwarden serve {args} exited {exit_code}:\n{process.log_tail() if process else ''}"
            )
        if process is None or exit_code == 0:
            process = WebhookProcess(self.cert_dir, self.workdir / f"serve-{uuid.uuid4().hex[:8]}.log", args)
            self.processes[args] = process.start()
        if self.registered is not process:
            self._register(process)
        return process

    def _register(self, webhook: WebhookProcess) -> None:
        bundle = ca_bundle(webhook.ca_file.read_bytes())
        mutating, validating = webhook_configurations(Endpoint(url=webhook.url), bundle, name=REGISTRATION)
        registration = client.AdmissionregistrationV1Api(self.api)
        # Server-side apply re-points the one registration: two webhook processes are never both in it.
        registration.patch_mutating_webhook_configuration(
            REGISTRATION, mutating, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY_PATCH
        )
        registration.patch_validating_webhook_configuration(
            REGISTRATION, validating, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY_PATCH
        )
        self.registered = None
        self._wait_until_called(webhook)
        self.registered = webhook

    def _wait_until_called(self, webhook: WebhookProcess) -> None:
        """The API server reads registrations from a cache: probe until both routes reach ``webhook``."""
        custom = client.CustomObjectsApi(self.api)
        deadline = time.monotonic() + REGISTRATION_TIMEOUT
        while True:
            probe = legacy_helmrelease(self.probe_namespace)
            probe["metadata"]["name"] = name = f"probe-{uuid.uuid4().hex[:8]}"
            with contextlib.suppress(ApiException):  # denied, or still sent to the previous webhook
                custom.create_namespaced_custom_object(
                    HELMRELEASES.group,
                    HELMRELEASES.version,
                    self.probe_namespace,
                    HELMRELEASES.plural,
                    probe,
                    dry_run="All",
                )
            if {record.get("route") for record in decisions(webhook, name)} >= {"mutate", "validate"}:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"registration not in effect after {REGISTRATION_TIMEOUT:.0f}s:\n{webhook.log_tail()}"
                )
            time.sleep(0.05)

    def close(self) -> None:
        """Unregister first (failurePolicy Fail would block later tests' Flux objects), then stop."""
        registration = client.AdmissionregistrationV1Api(self.api)
        for delete in (
            registration.delete_mutating_webhook_configuration,
            registration.delete_validating_webhook_configuration,
        ):
            try:
                delete(REGISTRATION)
            except ApiException as error:
                if error.status != 404:
                    raise
        for process in self.processes.values():
            process.terminate()  # all drain at once, then each is waited for
        for process in self.processes.values():
            process.stop()


@contextlib.contextmanager
def admission_registry(admin_api: client.ApiClient, work: Path, prefix: str) -> Iterator[Admission]:
    """Webhook registrations for one test module, with a probe namespace of its own; removed at the end."""
    probe_namespace = f"{prefix}-{uuid.uuid4().hex[:8]}"
    ensure_namespace(admin_api, probe_namespace)
    registry = Admission(admin_api, work, probe_namespace)
    try:
        yield registry
    finally:
        registry.close()
        client.CoreV1Api(admin_api).delete_namespace(probe_namespace, propagation_policy="Background")


@pytest.fixture(scope="module")
def admission(
    admin_api: client.ApiClient, flux_crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Admission]:
    with admission_registry(admin_api, tmp_path_factory.mktemp("webhooks"), "e2e-webhook-probe") as registry:
        yield registry


@pytest.fixture
def deny_webhook(admission: Admission) -> WebhookProcess:
    """The default settings: multi-tenancy enforced, cross-namespace references denied."""
    return admission.webhook()


@pytest.fixture
def fix_webhook(admission: Admission) -> WebhookProcess:
    return admission.webhook("--mode", "fix")


@pytest.fixture
def no_enforce_webhook(admission: Admission) -> WebhookProcess:
    return admission.webhook("--no-enforce")


Read = Callable[[Resource, str, str], dict[str, Any] | None]


def stored_object(api: client.ApiClient, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
    """The stored object, or None when nothing was stored."""
    try:
        found = client.CustomObjectsApi(api).get_namespaced_custom_object(
            resource.group, resource.version, namespace, resource.plural, name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    assert isinstance(found, dict)
    return found


@pytest.fixture
def read(admin_api: client.ApiClient) -> Read:
    """``read(resource, namespace, name)``: the stored object, or None when nothing was stored."""
    return functools.partial(stored_object, admin_api)


def manifests(*objects: dict[str, Any]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def kustomization(name: str, namespace: str, *, source_namespace: str | None = None) -> dict[str, Any]:
    """A Kustomization with no serviceAccountName; its GitRepository lives in ``source_namespace`` if given."""
    source_ref = {"kind": "GitRepository", "name": "platform"}
    if source_namespace:
        source_ref["namespace"] = source_namespace
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"interval": "10m", "path": "./apps", "prune": True, "sourceRef": source_ref},
    }


def helm_repository(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmRepository",
        "metadata": {"name": "bitnami", "namespace": namespace},
        "spec": {"interval": "1h", "url": "https://charts.bitnami.com/bitnami"},
    }


# -- deny mode (the default) ---------------------------------------------------------------------


def test_legacy_helmrelease_is_refused_with_fluxwardens_message(
    deny_webhook: WebhookProcess, kubectl: Kubectl, namespace: str, read: Read
) -> None:
    result = kubectl("apply", "-f", "-", input=manifests(legacy_helmrelease(namespace)), check=False)

    assert result.returncode != 0, result.stdout
    stderr = result.stderr
    assert 'admission webhook "validate.fluxwarden.dev" denied the request: cross-namespace-ref:' in stderr
    assert f"HelmRelease {namespace}/nginx" in stderr
    assert "HelmRepository flux-system/bitnami" in stderr
    assert read(HELMRELEASES, namespace, "nginx") is None


def test_fixed_manifests_are_accepted(
    deny_webhook: WebhookProcess, kubectl: Kubectl, namespace_factory: Callable[[], str], read: Read
) -> None:
    config, workload = namespace_factory(), namespace_factory()
    release = legacy_helmrelease(config, source_namespace=config)
    release["spec"]["targetNamespace"] = workload

    result = kubectl("apply", "-f", "-", input=manifests(helm_repository(config), release))

    assert "helmrepository.source.toolkit.fluxcd.io/bitnami created" in result.stdout
    assert "helmrelease.helm.toolkit.fluxcd.io/nginx created" in result.stdout
    stored = read(HELMRELEASES, config, "nginx")
    assert stored is not None
    assert stored["spec"]["chart"]["spec"]["sourceRef"]["namespace"] == config
    assert stored["spec"]["targetNamespace"] == workload
    assert stored["spec"]["serviceAccountName"] == APPLIER


def test_kustomization_without_service_account_is_stored_as_the_applier(
    deny_webhook: WebhookProcess, kubectl: Kubectl, namespace: str, read: Read
) -> None:
    result = kubectl("apply", "-f", "-", input=manifests(kustomization("apps", namespace)))

    assert "Warning:" in result.stderr
    assert f"service-account: set spec.serviceAccountName to '{APPLIER}'" in result.stderr
    stored = read(KUSTOMIZATIONS, namespace, "apps")
    assert stored is not None
    assert stored["spec"]["serviceAccountName"] == APPLIER


# Deprecated versions (a v1beta2 Kustomization) are not served by Flux 2.9's CRDs, which this suite runs on:
# the API server refuses them before any webhook. tests/integration/test_deprecated_versions.py covers them.


# The smallest spec each kind's Flux 2.9 schema accepts (its required fields and CEL rules).
MINIMAL_SPECS: dict[str, dict[str, Any]] = {
    "GitRepository": {"interval": "1m", "url": "https://example.com/repo.git"},
    "HelmRepository": {"url": "https://charts.example.com"},
    "HelmChart": {"chart": "nginx", "interval": "1m", "sourceRef": {"kind": "HelmRepository", "name": "charts"}},
    "Bucket": {"bucketName": "b", "endpoint": "minio.example.com", "interval": "1m"},
    "OCIRepository": {"interval": "1m", "url": "oci://ghcr.io/example/manifests"},
    "Kustomization": {"interval": "1m", "prune": True, "sourceRef": {"kind": "GitRepository", "name": "repo"}},
    "HelmRelease": {"interval": "1m", "chartRef": {"kind": "OCIRepository", "name": "chart"}},
    "Alert": {"eventSources": [{"kind": "GitRepository", "name": "*"}], "providerRef": {"name": "slack"}},
    "Provider": {"type": "generic"},
    "Receiver": {
        "type": "generic",
        "resources": [{"kind": "GitRepository", "name": "repo"}],
        "secretRef": {"name": "t"},
    },
    "ImageRepository": {"image": "ghcr.io/example/app", "interval": "1m"},
    "ImagePolicy": {"imageRepositoryRef": {"name": "app"}, "policy": {"semver": {"range": ">=1.0.0"}}},
    "ImageUpdateAutomation": {"interval": "1m", "sourceRef": {"kind": "GitRepository", "name": "repo"}},
}


@pytest.mark.parametrize("flux_kind", [k for k in KINDS if k.group != FLUXCONFIG], ids=lambda k: k.kind)
def test_every_flux_kind_at_its_served_version_reaches_both_routes(
    deny_webhook: WebhookProcess, admin_api: client.ApiClient, namespace: str, flux_kind: FluxKind
) -> None:
    """The registration is generated from the kinds table: each (group, plural) must select Flux's own CRD."""
    name = f"kind-{uuid.uuid4().hex[:8]}"
    obj = {
        "apiVersion": f"{flux_kind.group}/{flux_kind.current_version}",
        "kind": flux_kind.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": MINIMAL_SPECS[flux_kind.kind],
    }

    client.CustomObjectsApi(admin_api).create_namespaced_custom_object(
        flux_kind.group, flux_kind.current_version, namespace, flux_kind.plural, obj, dry_run="All"
    )

    routes = {(d["route"], d["allowed"]) for d in decisions(deny_webhook, name) if d["namespace"] == namespace}
    assert routes == {("mutate", True), ("validate", True)}


@pytest.mark.parametrize("exempt", ["flux-system", "kube-system"])
def test_platform_namespaces_are_never_judged(
    deny_webhook: WebhookProcess, kubectl: Kubectl, admin_api: client.ApiClient, read: Read, exempt: str
) -> None:
    ensure_namespace(admin_api, exempt)
    release = legacy_helmrelease(exempt, source_namespace="platform-sources")
    name = release["metadata"]["name"] = f"exempt-{uuid.uuid4().hex[:8]}"
    try:
        kubectl("apply", "-f", "-", input=manifests(release))

        stored = read(HELMRELEASES, exempt, name)
        assert stored is not None
        assert stored["spec"]["chart"]["spec"]["sourceRef"]["namespace"] == "platform-sources"
        assert "serviceAccountName" not in stored["spec"]  # the namespaceSelector kept the webhook out
        assert decisions(deny_webhook, name) == []
    finally:
        kubectl("delete", "helmrelease", name, "-n", exempt, "--ignore-not-found", "--wait=false")


def test_server_side_dry_run_is_judged_like_a_real_request(
    deny_webhook: WebhookProcess, kubectl: Kubectl, namespace: str, read: Read
) -> None:
    denied = kubectl(
        "apply", "--dry-run=server", "-f", "-", input=manifests(legacy_helmrelease(namespace)), check=False
    )
    assert denied.returncode != 0
    assert "cross-namespace-ref: HelmRelease" in denied.stderr
    assert read(HELMRELEASES, namespace, "nginx") is None
    judged = [d for d in decisions(deny_webhook, "nginx") if d["namespace"] == namespace and d["route"] == "validate"]
    assert [(d["dry_run"], d["allowed"]) for d in judged] == [(True, False)]

    previewed = kubectl(
        "apply", "--dry-run=server", "-o", "json", "-f", "-", input=manifests(kustomization("apps", namespace))
    )
    assert json.loads(previewed.stdout)["spec"]["serviceAccountName"] == APPLIER
    assert read(KUSTOMIZATIONS, namespace, "apps") is None


def test_webhook_down_blocks_flux_objects_only(
    deny_webhook: WebhookProcess, kubectl: Kubectl, admin_api: client.ApiClient, namespace: str, read: Read
) -> None:
    assert deny_webhook.stop() == 0

    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated", "namespace": namespace}}
    kubectl("apply", "-f", "-", input=manifests(configmap))

    blocked = kubectl("apply", "-f", "-", input=manifests(kustomization("apps", namespace)), check=False)
    assert blocked.returncode != 0
    assert 'failed calling webhook "mutate.fluxwarden.dev"' in blocked.stderr
    assert read(KUSTOMIZATIONS, namespace, "apps") is None

    # The platform can still repair itself: its own namespace is outside the registration.
    ensure_namespace(admin_api, "flux-system")
    name = f"repair-{uuid.uuid4().hex[:8]}"
    try:
        kubectl("apply", "-f", "-", input=manifests(kustomization(name, "flux-system")))
    finally:
        kubectl("delete", "kustomization", name, "-n", "flux-system", "--ignore-not-found", "--wait=false")


# -- other settings ------------------------------------------------------------------------------


def test_fix_mode_rewrites_a_cross_namespace_source_ref(
    fix_webhook: WebhookProcess, kubectl: Kubectl, namespace: str, read: Read
) -> None:
    tenant = kustomization("apps", namespace, source_namespace="flux-system")

    result = kubectl("apply", "-f", "-", input=manifests(tenant))

    assert "kustomization.kustomize.toolkit.fluxcd.io/apps created" in result.stdout
    # The new namespace comes first in the warning, so a long name survives the 119-character cut.
    assert f"Warning: cross-namespace-ref: set spec.sourceRef.namespace to {namespace}" in result.stderr
    stored = read(KUSTOMIZATIONS, namespace, "apps")
    assert stored is not None
    assert stored["spec"]["sourceRef"]["namespace"] == namespace
    assert stored["spec"]["serviceAccountName"] == APPLIER


def test_no_enforce_admits_legacy_manifests_unchanged(
    no_enforce_webhook: WebhookProcess, kubectl: Kubectl, namespace: str, read: Read
) -> None:
    result = kubectl("apply", "-f", "-", input=manifests(legacy_helmrelease(namespace)))

    assert "helmrelease.helm.toolkit.fluxcd.io/nginx created" in result.stdout
    stored = read(HELMRELEASES, namespace, "nginx")
    assert stored is not None
    assert stored["spec"]["chart"]["spec"]["sourceRef"]["namespace"] == "flux-system"
    assert "serviceAccountName" not in stored["spec"]
    judged = {d["route"] for d in decisions(no_enforce_webhook, "nginx") if d["namespace"] == namespace}
    assert judged == {"mutate", "validate"}  # consulted, and it let the object through untouched
