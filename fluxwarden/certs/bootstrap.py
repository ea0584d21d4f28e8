"""In-cluster certificate bootstrap and renewal: one Secret holds the webhook's CA and serving pair.

Every replica runs this at start (an init container): the first creates the Secret, the others
(and later restarts) reuse it. The renewer (a daily CronJob) runs it too, without the right to
create: a serving certificate near expiry is renewed with the same CA, so the ``caBundle`` stays
valid, and the webhook pods see the new pair through their Secret volume. Races are settled by the
API server (create, or update with a resourceVersion: the loser re-reads the winner's Secret).
"""

from __future__ import annotations

import base64
import datetime
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fluxwarden.certs.authority import KeyPair, ca_bundle, expiry, generate_ca, issue, serving_sans, write_pair
from fluxwarden.certs.files import RENEW_BEFORE, ServingFiles

logger = logging.getLogger("fluxwarden.certs")

KEYS = ("ca.crt", "ca.key", "tls.crt", "tls.key")


class BootstrapError(Exception):
    """The Secret or the webhook configurations could not be read or written; the message says which."""


@dataclass(frozen=True)
class Renewal:
    """When to renew (``renew_before`` the serving certificate expires), for how long, and whether
    a missing Secret may be created (the renewer's RBAC has no ``create``)."""

    renew_before: datetime.timedelta = RENEW_BEFORE
    days: int = 365
    create: bool = True


@dataclass(frozen=True)
class Target:
    """Where the pair lives and whom it serves."""

    namespace: str
    secret: str
    service: str
    webhook_configuration: str = "fluxwarden"


def _decode(secret: client.V1Secret) -> dict[str, bytes]:
    data = secret.data or {}
    return {k: base64.b64decode(v) for k, v in data.items() if k in KEYS}


def _fresh(data: dict[str, bytes], renewal: Renewal) -> bool:
    if not all(k in data for k in KEYS):
        return False
    left = expiry(data["tls.crt"]) - datetime.datetime.now(datetime.UTC)
    return left > renewal.renew_before


def _issue(target: Target, previous: dict[str, bytes], renewal: Renewal) -> dict[str, bytes]:
    if "ca.crt" in previous and "ca.key" in previous:
        ca = KeyPair(previous["ca.crt"], previous["ca.key"])
    else:
        ca = generate_ca()
    sans = serving_sans(target.service, target.namespace)
    leaf = issue(ca, f"{target.service}.{target.namespace}.svc", sans=sans, days=renewal.days)
    return {"ca.crt": ca.cert_pem, "ca.key": ca.key_pem, "tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem}


def _secret_body(target: Target, data: dict[str, bytes], resource_version: str | None) -> client.V1Secret:
    return client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=target.secret,
            namespace=target.namespace,
            resource_version=resource_version,
            labels={"app.kubernetes.io/name": "fluxwarden", "app.kubernetes.io/component": "webhook"},
        ),
        type="kubernetes.io/tls",
        data={k: base64.b64encode(v).decode() for k, v in data.items()},
    )


def ensure_secret(core: client.CoreV1Api, target: Target, renewal: Renewal = Renewal()) -> dict[str, bytes]:
    """The Secret's pair, created or renewed if needed; whoever wins a race, all replicas agree."""
    for _ in range(5):
        try:
            current = core.read_namespaced_secret(target.secret, target.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise BootstrapError(_api_error("read", f"Secret {target.namespace}/{target.secret}", exc)) from None
            current = None
            if not renewal.create:
                raise BootstrapError(
                    f"Secret {target.namespace}/{target.secret} not found; "
                    "the webhook's init container creates it (apply manifests/base)"
                ) from None
        previous = _decode(current) if current is not None else {}
        if _fresh(previous, renewal):
            return previous
        data = _issue(target, previous, renewal)
        try:
            if current is None:
                core.create_namespaced_secret(target.namespace, _secret_body(target, data, None))
            else:
                version = current.metadata.resource_version if current.metadata else None
                core.replace_namespaced_secret(target.secret, target.namespace, _secret_body(target, data, version))
            logger.info(
                "webhook certificate %s in Secret %s/%s",
                "renewed" if current else "created",
                target.namespace,
                target.secret,
            )
            return data
        except ApiException as exc:
            if exc.status != 409:  # 409: another replica wrote first; read theirs
                raise BootstrapError(_api_error("write", f"Secret {target.namespace}/{target.secret}", exc)) from None
    raise BootstrapError(f"Secret {target.namespace}/{target.secret} kept changing; retry the bootstrap")


def inject_ca_bundle(api: client.ApiClient, name: str, bundle: str) -> int:
    """Set ``caBundle`` on every webhook of the two configurations named ``name``; returns how many changed.

    Webhooks that already carry ``bundle`` are left alone, so a daily run writes nothing.
    """
    admission = client.AdmissionregistrationV1Api(api)
    kinds: list[tuple[str, Any, Any]] = [
        ("MutatingWebhookConfiguration", admission.read_mutating_webhook_configuration,
         admission.patch_mutating_webhook_configuration),
        ("ValidatingWebhookConfiguration", admission.read_validating_webhook_configuration,
         admission.patch_validating_webhook_configuration),
    ]  # fmt: skip
    patched = 0
    for kind, read, patch in kinds:
        try:
            current = read(name)
            ops = [
                {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": bundle}
                for i, hook in enumerate(current.webhooks or [])
                if hook.client_config.ca_bundle != bundle
            ]
            if ops:
                patch(name, ops)
                patched += len(ops)
        except ApiException as exc:
            raise BootstrapError(_api_error("patch caBundle of", f"{kind} {name}", exc)) from None
    return patched


def _api_error(verb: str, what: str, exc: ApiException) -> str:
    hint = {403: "grant this ServiceAccount its RBAC in manifests/base (rbac.yaml; renewer.yaml for the renewer)",
            404: "apply manifests/base first"}.get(exc.status or 0, "check the API server")  # fmt: skip
    return f"cannot {verb} {what}: {exc.status} {exc.reason}; {hint}"


def renew(api: client.ApiClient, target: Target, renewal: Renewal = Renewal()) -> dict[str, bytes]:
    """Get, create or renew the Secret and point the webhooks' caBundle at its CA; returns its keys."""
    data = ensure_secret(client.CoreV1Api(api), target, renewal)
    inject_ca_bundle(api, target.webhook_configuration, ca_bundle(data["ca.crt"]))
    return data


def write_files(data: dict[str, bytes], out: Path) -> ServingFiles:
    """The Secret's pair as files under ``out`` (for a webhook that is not given the Secret as a volume)."""
    files = ServingFiles(out)
    write_pair(KeyPair(data["ca.crt"], data["ca.key"]), files.ca_cert, files.ca_key)
    write_pair(KeyPair(data["tls.crt"], data["tls.key"]), files.tls_cert, files.tls_key)
    return files


def wait_for_mount(data: dict[str, bytes], mounted: Path, timeout: float, interval: float = 1.0) -> None:
    """Wait until the Secret volume at ``mounted`` serves this pair (kubelet refreshes it within a
    minute or so of a change), so the webhook container never starts on a missing or stale pair."""
    files = ServingFiles(mounted)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if files.tls_cert.read_bytes() == data["tls.crt"] and files.tls_key.read_bytes() == data["tls.key"]:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BootstrapError(
                f"{files.tls_cert} does not hold the Secret's certificate after {timeout:.0f}s; "
                "mount the Secret as a volume at that path"
            )
        time.sleep(interval)
