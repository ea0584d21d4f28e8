"""One tenant with every kind of Flux object that the ``flux`` CLI reads, reconciled by fluxwarden.

The CLI compatibility tests (tests/e2e/test_flux_cli.py) share it per module: a config namespace with a
GitRepository ``repo``, Kustomizations ``apps`` (ConfigMaps into the target namespace), ``releases``
(applies the HelmRelease ``app`` from git), ``toggle`` (to suspend and resume), ``broken`` (a path not
in git: Ready=False) and ``paused`` (created suspended), an HTTPS HelmRepository ``charts``, a Bucket
``configs`` on versitygw, an OCIRepository ``manifests`` on a TLS+htpasswd registry, and a Receiver
``hook``. Expected values (commit shas, chart versions, digests) come from the servers, never from
fluxwarden.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from fluxwarden.controllers.notification.api import RECEIVER
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.source.api import BUCKET, OCI_REPOSITORY
from tests.support.buckets import flux_revision, md5
from tests.support.git_server import GitHttpServer, GitRepo
from tests.support.helm_tenants import HelmTenant, trust_charts
from tests.support.oci_artifacts import RegistryReader, fluxwarden_push, write_tree
from tests.support.oci_registry import OciRegistry
from tests.support.s3_server import S3Server
from tests.support.tenants import Tenant, configmap, grant
from tests.support.wait import until

SHARD_VALUE = "flux-cli"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
HEX = re.compile(r"\b[a-f0-9]{40,128}\b")
BUCKET_OBJECTS = {"deploy/cm.yaml": configmap("from-bucket", "1").encode(), "README.md": b"bucket\n"}
OCI_FILES: dict[str, str | bytes] = {"cm.yaml": configmap("from-oci", "1")}
OCI_REPO = "cli/manifests"


def short(text: str) -> str:
    """What the flux CLI prints for ``text``: every 40-128 digit hex run cut to 8 (its ``TruncateHex``)."""
    return HEX.sub(lambda m: m.group(0)[:8], text)


def helm_release_manifest(namespace: str, target: str, version: str) -> str:
    """The HelmRelease ``app`` as git holds it (applied by Kustomization ``releases``)."""
    return f"""\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: app
  namespace: {namespace}
  labels:
    sharding.fluxcd.io/key: {SHARD_VALUE}
spec:
  interval: 10m
  targetNamespace: {target}
  storageNamespace: {target}
  timeout: 30s
  chart:
    metadata:
      labels:
        sharding.fluxcd.io/key: {SHARD_VALUE}
    spec:
      chart: cms
      version: "{version}"
      interval: 10m
      sourceRef:
        kind: HelmRepository
        name: charts
"""


@dataclass
class Estate:
    """The shared tenant: kustomize side (``git``), helm side (``helm``), and the storage servers."""

    git: Tenant
    helm: HelmTenant
    s3: S3Server
    bucket: str
    registry: OciRegistry
    reader: RegistryReader

    @property
    def config(self) -> str:
        return self.git.config

    @property
    def target(self) -> str:
        return self.git.target

    @property
    def custom(self) -> client.CustomObjectsApi:
        return self.git.custom

    def head(self) -> str:
        """The commit the branch points at, read from the git repository itself."""
        return self.git.repo.rev_parse("HEAD")

    def get(self, resource: Resource, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            resource.group, resource.version, self.config, resource.plural, name
        )
        return obj

    def create(self, resource: Resource, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": resource.api_version, "kind": resource.kind, "spec": spec,
            "metadata": {"name": name, "namespace": self.config, "labels": self.git.labels()},
        }  # fmt: skip
        self.custom.create_namespaced_custom_object(
            resource.group, resource.version, self.config, resource.plural, body
        )

    def wait(
        self, resource: Resource, name: str, done: Callable[[dict[str, Any]], bool], what: str, timeout: float = 60
    ) -> dict[str, Any]:
        return until(lambda: self.get(resource, name), done, timeout=timeout, what=f"{resource.kind} {name} {what}")

    def request(self, resource: Resource, name: str) -> str:
        """Ask for a reconcile as the CLI does (``requestedAt``); return the token."""
        token = uuid.uuid4().hex[:12]
        self.custom.patch_namespaced_custom_object(
            resource.group, resource.version, self.config, resource.plural, name,
            {"metadata": {"annotations": {REQUESTED_AT: token}}}, _content_type="application/merge-patch+json",
        )  # fmt: skip
        return token

    def bucket_revision(self) -> str:
        """Flux's Bucket revision from what the test uploaded (sha256 over ``<key> <etag>`` lines)."""
        return flux_revision({key: md5(body) for key, body in BUCKET_OBJECTS.items()})

    def oci_revision(self) -> str:
        return f"latest@{self.reader.digest(OCI_REPO, 'latest')}"


def _namespaces(api: client.ApiClient, count: int) -> list[str]:
    core = client.CoreV1Api(api)
    names = [f"e2e-flux-cli-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    for name in names:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return names


def _secret(api: client.ApiClient, namespace: str, name: str, data: dict[str, bytes], type_: str = "Opaque") -> None:
    encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), data=encoded, type=type_)
    client.CoreV1Api(api).create_namespaced_secret(namespace, body)


def build(
    api: client.ApiClient,
    git_server: GitHttpServer,
    charts_url: str,
    charts_ca: bytes,
    s3: S3Server,
    registry: OciRegistry,
    reader: RegistryReader,
    work: Path,
) -> Estate:
    """Create every object (namespaces, RBAC, sources, Kustomizations, Receiver); do not wait for them."""
    config, target, other = _namespaces(api, 3)
    client.CoreV1Api(api).create_namespaced_service_account(config, {"metadata": {"name": "flux-applier"}})
    grant(api, config, config)
    grant(api, target, config)
    repo_name = f"cli-{uuid.uuid4().hex[:8]}"
    git_server.create_repo(repo_name)
    git = Tenant(api, config, target, other, SHARD_VALUE, GitRepo(work / "git"), git_server, repo_name)
    helm = HelmTenant(api, config, target, other, SHARD_VALUE, repo_url=charts_url)
    trust_charts(api, config, charts_ca)
    helm.helm_repository()

    bucket = f"cli-{uuid.uuid4().hex[:8]}"
    s3.client().create_bucket(Bucket=bucket)
    for key, body in BUCKET_OBJECTS.items():
        s3.client().put_object(Bucket=bucket, Key=key, Body=body)
    pushed = fluxwarden_push(registry, registry.oci_url(OCI_REPO) + ":latest", write_tree(work / "oci", OCI_FILES))
    assert pushed.returncode == 0, pushed.stderr

    estate = Estate(git, helm, s3, bucket, registry, reader)
    git.push(
        {
            "apps/a.yaml": configmap("app-a", "1"),
            "apps/b.yaml": configmap("app-b", "1"),
            "toggle/t.yaml": configmap("toggle", "1"),
            "releases/app.yaml": helm_release_manifest(config, target, "1.x"),
        }
    )
    git.git_repository()
    git.kustomization("apps", path="./apps", targetNamespace=target)
    git.kustomization("releases", path="./releases")
    git.kustomization("toggle", path="./toggle", targetNamespace=target)
    git.kustomization("broken", path="./not-in-git", targetNamespace=target)
    git.kustomization("paused", path="./apps", targetNamespace=target, suspend=True)

    _secret(api, config, "s3-keys", {k: v.encode() for k, v in s3.secret_data().items()})
    estate.create(BUCKET, "configs", {"bucketName": bucket, "endpoint": s3.endpoint, "interval": "10m",
                                      "insecure": True, "secretRef": {"name": "s3-keys"}})  # fmt: skip
    _secret(api, config, "login", {".dockerconfigjson": registry.dockerconfigjson().encode()},
            "kubernetes.io/dockerconfigjson")  # fmt: skip
    _secret(api, config, "registry-ca", {"ca.crt": registry.ca_pem or b""})
    estate.create(OCI_REPOSITORY, "manifests", {"url": registry.oci_url(OCI_REPO), "interval": "10m",
                                                "secretRef": {"name": "login"},
                                                "certSecretRef": {"name": "registry-ca"}})  # fmt: skip
    _secret(api, config, "hook-token", {"token": uuid.uuid4().hex.encode()})
    estate.create(RECEIVER, "hook", {"type": "generic", "secretRef": {"name": "hook-token"},
                                     "resources": [{"kind": "GitRepository", "name": "repo"}]})  # fmt: skip
    return estate


def ready(obj: dict[str, Any]) -> bool:
    """Ready=True at the current generation, as ``flux`` waits for it."""
    status: dict[str, Any] = obj.get("status") or {}
    found: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    return found.get("status") == "True" and status.get("observedGeneration") == obj["metadata"]["generation"]
