"""A tenant for the helm controller's e2e tests: config and target namespaces, an HTTPS chart repository.

As the seed's fixed manifest has it: the HelmRepository (its own CA through ``certSecretRef``) and the
HelmRelease live in the configuration namespace, whose ``flux-applier`` may write there and to the
target namespace only; ``other`` is another tenant's namespace.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from fluxwarden.controllers.helm.api import HELM_RELEASE
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.source.api import HELM_CHART, HELM_REPOSITORY
from fluxwarden.tenancy import cut
from tests.support.tenants import Namespaces, condition, grant

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
RESET_AT = "reconcile.fluxcd.io/resetAt"


def release_name(name: str, target: str | None) -> str:
    """Flux's default release name: ``[<targetNamespace>-]<name>``; over 53 characters, the first 40,
    ``-`` and the first 12 hex digits of its sha256 (helm-controller's ``release.ShortenName``)."""
    full = f"{target}-{name}" if target else name
    if len(full) <= 53:
        return full
    return f"{full[:40]}-{hashlib.sha256(full.encode()).hexdigest()[:12]}"


@dataclass
class HelmTenant(Namespaces):
    """Namespaces and the URL of the chart repository (HelmRepository ``charts`` in config)."""

    repo_url: str

    def create(self, resource: Resource, name: str, spec: dict[str, Any], namespace: str | None = None) -> None:
        body = {
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": name, "namespace": namespace or self.config, "labels": self.labels()},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(
            resource.group, resource.version, namespace or self.config, resource.plural, body
        )

    def helm_repository(self, name: str = "charts", namespace: str | None = None, **spec: Any) -> None:
        """The chart repository over HTTPS, trusted through ``certSecretRef`` (Secret ``charts-ca``)."""
        base = {"url": self.repo_url, "interval": "1m", "certSecretRef": {"name": "charts-ca"}}
        self.create(HELM_REPOSITORY, name, {**base, **spec}, namespace)

    def release(
        self,
        name: str,
        chart: str = "cms",
        version: str = "1.0.0",
        namespace: str | None = None,
        repository: str = "charts",
        source_namespace: str | None = None,
        **spec: Any,
    ) -> str:
        """Create a HelmRelease (target namespace, short timeouts); return its release name."""
        source = {"kind": "HelmRepository", "name": repository}
        if source_namespace:
            source["namespace"] = source_namespace
        chart_spec = {"chart": chart, "version": version, "sourceRef": source, "interval": "1m"}
        base: dict[str, Any] = {
            "interval": "10m",
            "targetNamespace": self.target,
            "timeout": "30s",
            "chart": {"spec": chart_spec, "metadata": {"labels": self.labels()}},
        }
        self.create(HELM_RELEASE, name, {**base, **spec}, namespace)
        given = {**base, **spec}
        return str(given.get("releaseName") or release_name(name, given.get("targetNamespace")))

    def get(self, name: str, resource: Resource = HELM_RELEASE, namespace: str | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            resource.group, resource.version, namespace or self.config, resource.plural, name
        )
        return obj

    def patch(self, name: str, body: dict[str, Any], resource: Resource = HELM_RELEASE) -> None:
        self.custom.patch_namespaced_custom_object(
            resource.group, resource.version, self.config, resource.plural, name, body,
            _content_type="application/merge-patch+json",
        )  # fmt: skip

    def request(self, name: str, resource: Resource = HELM_RELEASE, annotations: dict[str, str] | None = None) -> str:
        """Ask for a reconcile (``requestedAt`` plus ``annotations``, where ``"token"`` means it); return the token."""
        token = uuid.uuid4().hex[:12]
        extra = {key: token if value == "token" else value for key, value in (annotations or {}).items()}
        self.patch(name, {"metadata": {"annotations": {REQUESTED_AT: token, **extra}}}, resource)
        return token

    def wait(
        self,
        name: str,
        done: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float,
        namespace: str | None = None,
        resource: Resource = HELM_RELEASE,
    ) -> dict[str, Any]:
        """Poll ``resource`` (a HelmRelease) ``name`` until ``done``; on timeout say which conditions it had,
        not the whole object."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.get(name, resource, namespace)
            if done(obj):
                return obj
            if time.monotonic() > deadline:
                status = obj.get("status") or {}
                seen = [(c.get("type"), c.get("status"), c.get("reason"), cut(str(c.get("message")), 300))
                        for c in status.get("conditions") or []]  # fmt: skip
                seen_at = {k: status.get(k) for k in ("observedGeneration", "lastHandledReconcileAt")}
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {resource.kind} {name} {what}; "
                    f"conditions: {seen}; {seen_at}"
                )
            time.sleep(0.1)

    def handled(self, name: str, token: str, timeout: float = 60, resource: Resource = HELM_RELEASE) -> dict[str, Any]:
        """Wait until the controller handled the request ``token`` (``status.lastHandledReconcileAt``)."""
        return self.wait(
            name,
            lambda o: (o.get("status") or {}).get("lastHandledReconcileAt") == token,
            f"to handle {token}",
            timeout,
            resource=resource,
        )

    def ready(self, name: str, reason: str | None = None, timeout: float = 90) -> dict[str, Any]:
        """Ready=True at the current generation (and with ``reason``, if given)."""

        def done(obj: dict[str, Any]) -> bool:
            ready = condition(obj)
            current = (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
            return ready.get("status") == "True" and current and (reason is None or ready.get("reason") == reason)

        return self.wait(name, done, f"Ready {reason or ''}", timeout)

    def failed(self, name: str, reason: str, timeout: float = 90, type_: str = "Ready") -> dict[str, Any]:
        """``type_`` (Ready) False with ``reason`` at the current generation."""

        def done(obj: dict[str, Any]) -> bool:
            cond = condition(obj, type_)
            current = (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
            return cond.get("status") == "False" and cond.get("reason") == reason and current

        return self.wait(name, done, f"{type_}=False {reason}", timeout)

    def stalled(self, name: str, reason: str, timeout: float = 90) -> dict[str, Any]:
        def done(obj: dict[str, Any]) -> bool:
            stalled = condition(obj, "Stalled")
            return stalled.get("status") == "True" and stalled.get("reason") == reason

        return self.wait(name, done, f"Stalled {reason}", timeout)

    def configmaps(self, namespace: str | None = None) -> dict[str, dict[str, str]]:
        return {
            c.metadata.name: dict(c.data or {})
            for c in self.core.list_namespaced_config_map(namespace or self.target).items
            if c.metadata.name != "kube-root-ca.crt"
        }

    def events(self, reason: str | None = None, name: str | None = None) -> list[str]:
        """Messages of the Events about HelmReleases in the config namespace (of ``reason`` and HelmRelease
        ``name``, if given), oldest first."""
        found = [
            e
            for e in self.core.list_namespaced_event(self.config).items
            if e.involved_object.kind == "HelmRelease"
            and (reason is None or e.reason == reason)
            and (name is None or e.involved_object.name == name)
        ]
        found.sort(key=lambda e: str(e.first_timestamp or e.event_time or e.metadata.creation_timestamp))
        return [e.message or "" for e in found]

    def helm_chart(self, name: str) -> dict[str, Any] | None:
        """The HelmChart the HelmRelease ``name`` made from its template (``<ns>-<name>``), or None."""
        listed = self.custom.list_namespaced_custom_object(
            HELM_CHART.group, HELM_CHART.version, self.config, HELM_CHART.plural
        )
        wanted = f"{self.config}-{name}"
        return next((c for c in listed["items"] if c["metadata"]["name"] == wanted), None)


def trust_charts(api: client.ApiClient, namespace: str, ca_pem: bytes) -> None:
    """Secret ``charts-ca`` (``ca.crt``): what a HelmRepository's ``certSecretRef`` names to trust the server."""
    client.CoreV1Api(api).create_namespaced_secret(
        namespace, {"metadata": {"name": "charts-ca"}, "stringData": {"ca.crt": ca_pem.decode()}}
    )


def make_helm_tenant(
    api: client.ApiClient, namespace_factory: Callable[[], str], repo_url: str, ca_pem: bytes, shard: str
) -> HelmTenant:
    """Config, target and other namespaces; flux-applier of config may write to config and target only;
    the HTTPS HelmRepository ``charts`` in config, trusted through ``charts-ca``."""
    config, target, other = namespace_factory(), namespace_factory(), namespace_factory()
    client.CoreV1Api(api).create_namespaced_service_account(config, {"metadata": {"name": "flux-applier"}})
    grant(api, config, config)
    grant(api, target, config)
    trust_charts(api, config, ca_pem)
    tenant = HelmTenant(api, config, target, other, shard, repo_url=repo_url)
    tenant.helm_repository()
    return tenant
