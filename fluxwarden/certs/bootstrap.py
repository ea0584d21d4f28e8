"""In-cluster certificate bootstrap: one Secret holds the webhook's CA and serving pair.

Every replica runs this at start (an init container): the first creates the Secret, the others
(and later restarts) reuse it; a serving certificate near expiry is renewed with the same CA, so
the ``caBundle`` stays valid. Races between replicas are settled by the API server (create or
update with a resourceVersion: the loser re-reads the winner's Secret).
"""

from __future__ import annotations

import base64
import datetime
import logging
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
class Target:
    """Where the pair lives and whom it serves."""

    namespace: str
    secret: str
    service: str
    webhook_configuration: str = "fluxwarden"


def _decode(secret: client.V1Secret) -> dict[str, bytes]:
    data = secret.data or {}
    return {k: base64.b64decode(v) for k, v in data.items() if k in KEYS}


def _fresh(data: dict[str, bytes]) -> bool:
    if not all(k in data for k in KEYS):
        return False
    left = expiry(data["tls.crt"]) - datetime.datetime.now(datetime.UTC)
    return left > RENEW_BEFORE


def _issue(target: Target, previous: dict[str, bytes]) -> dict[str, bytes]:
    if "ca.crt" in previous and "ca.key" in previous:
        ca = KeyPair(previous["ca.crt"], previous["ca.key"])
    else:
        ca = generate_ca()
    leaf = issue(ca, f"{target.service}.{target.namespace}.svc", sans=serving_sans(target.service, target.namespace))
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


def ensure_secret(core: client.CoreV1Api, target: Target) -> dict[str, bytes]:
    """The Secret's pair, created or renewed if needed; whoever wins a race, all replicas agree."""
    for _ in range(5):
        try:
            current = core.read_namespaced_secret(target.secret, target.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise BootstrapError(_api_error("read", f"Secret {target.namespace}/{target.secret}", exc)) from None
            current = None
        previous = _decode(current) if current is not None else {}
        if _fresh(previous):
            return previous
        data = _issue(target, previous)
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
    """Set ``caBundle`` on every webhook of the two configurations named ``name``; returns how many."""
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
                for i, _ in enumerate(current.webhooks or [])
            ]
            if ops:
                patch(name, ops)
                patched += len(ops)
        except ApiException as exc:
            raise BootstrapError(_api_error("patch caBundle of", f"{kind} {name}", exc)) from None
    return patched


def _api_error(verb: str, what: str, exc: ApiException) -> str:
    hint = {403: "grant the webhook's ServiceAccount the RBAC in manifests/base/rbac.yaml",
            404: "apply manifests/base first"}.get(exc.status or 0, "check the API server")  # fmt: skip
    return f"cannot {verb} {what}: {exc.status} {exc.reason}; {hint}"


def bootstrap(api: client.ApiClient, target: Target, out: Path) -> ServingFiles:
    """Get or create the Secret, write the pair to ``out``, and point the webhooks' caBundle at its CA."""
    data = ensure_secret(client.CoreV1Api(api), target)
    files = ServingFiles(out)
    write_pair(KeyPair(data["ca.crt"], data["ca.key"]), files.ca_cert, files.ca_key)
    write_pair(KeyPair(data["tls.crt"], data["tls.key"]), files.tls_cert, files.tls_key)
    inject_ca_bundle(api, target.webhook_configuration, ca_bundle(data["ca.crt"]))
    return files
