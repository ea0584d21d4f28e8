"""FluxConfig objects for the admission tests: valid ones, and one case per ``fluxconfig`` rule.

The unit tests (tests/unit/tenancy/test_fluxconfig_rules.py) judge every case with ``evaluate``; the
end-to-end module (tests/e2e/test_fluxconfig_webhook.py) sends the ones the API server's schema lets
through to the webhook. Each bad case breaks one field of a valid object, so it gets exactly one finding,
and its expected text is written out here, not computed from the rules.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

API_VERSION = "clusterconfig.azure.com/v1beta1"
GROUP, VERSION = API_VERSION.split("/")
PLURAL = "fluxconfigs"
NAME = "apps"
URL = "https://git.example.com/org/fleet.git"


def fluxconfig(namespace: str, spec: Any, name: str = NAME) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "FluxConfig",
        "metadata": {"name": name, "namespace": namespace},
        "spec": copy.deepcopy(spec),
    }


def git(**repository: Any) -> dict[str, Any]:
    """A valid scope-namespace git spec (the Azure tutorial's infra and apps); ``repository`` overrides fields."""
    source: dict[str, Any] = {"url": URL, "repositoryRef": {"branch": "main"}}
    source.update(repository)
    return {
        "scope": "namespace",
        "sourceKind": "GitRepository",
        "gitRepository": {k: v for k, v in source.items() if v is not None},
        "kustomizations": {
            "infra": {"path": "./infrastructure", "prune": True},
            "apps": {"path": "./apps/staging", "dependsOn": ["infra"]},
        },
    }


def bucket(**source: Any) -> dict[str, Any]:
    block = {"url": "https://minio.example.com", "bucketName": "fleet", **source}
    return {"scope": "namespace", "sourceKind": "Bucket", "bucket": {k: v for k, v in block.items() if v is not None}}


def azure_blob(**source: Any) -> dict[str, Any]:
    block = {"url": "https://fleet.blob.core.windows.net", "containerName": "fleet", **source}
    return {
        "scope": "namespace",
        "sourceKind": "AzureBlob",
        "azureBlob": {k: v for k, v in block.items() if v is not None},
    }


def oci(**source: Any) -> dict[str, Any]:
    block = {"url": "oci://ghcr.io/org/fleet", **source}
    return {"scope": "namespace", "sourceKind": "OCIRepository", "ociRepository": block}


def changed(spec: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """``spec`` with top-level ``fields`` set (None removes one)."""
    out = copy.deepcopy(spec)
    for key, value in fields.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def kustomizations(**entries: Any) -> dict[str, Any]:
    return changed(git(), kustomizations=entries)


PROTECTED = {"configurationProtectedSettingsRef": {"name": "apps-protected"}}
# The secret values the bad cases write inline: no message, warning or log may show them.
SECRET = "hunter2-f1b2"
SECRET_B64 = "aHVudGVyMi1mMWIy"  # base64 of SECRET

VALID: dict[str, dict[str, Any]] = {
    "https-branch": git(),
    "http-url": git(url="http://git.example.com/org/fleet.git"),
    "ssh-url-with-known-hosts": git(url="ssh://git@git.example.com/org/fleet.git", sshKnownHosts="Z2l0IGtleQ=="),
    "scp-like-url": git(url="git@github.com:org/fleet.git"),
    "ssh-url-with-user-and-port": git(url="ssh://git@git.example.com:2222/org/fleet.git"),
    "https-url-with-user-only": git(url="https://bot@dev.azure.com/org/project/_git/fleet"),
    "https-user-with-protected-ref": {**git(httpsUser="bot"), **PROTECTED},
    "tag": git(repositoryRef={"tag": "v1.0.0"}),
    "semver": git(repositoryRef={"semver": ">=1.0.0"}),
    "commit": git(repositoryRef={"commit": "0ba6f0d"}),
    "commit-with-branch": git(repositoryRef={"branch": "main", "commit": "0ba6f0d"}),
    "source-kind-unset": changed(git(), sourceKind=None),
    "no-kustomizations": changed(git(), kustomizations=None),
    "empty-kustomizations": changed(git(), kustomizations={}),
    "depends-on-objects": kustomizations(infra={}, apps={"dependsOn": [{"kustomizationName": "infra"}]}),
    "seconds": git(timeoutInSeconds=60, syncIntervalInSeconds=30),
    "wait-duration": changed(git(), waitForReconciliation=True, reconciliationWaitDuration="PT10M"),
    "bucket": bucket(accessKey="minio-user", timeoutInSeconds=600),
    "azure-blob-managed-identity": azure_blob(managedIdentity={"clientId": "1234"}),
    "azure-blob-local-auth": azure_blob(localAuthRef="blob-auth"),
    "oci": oci(),
    "suspend": changed(git(), suspend=True),
}
# The FluxConfig CRD's schema types dependsOn items as strings: the older object form only reaches a webhook
# through a permissive schema, so only the unit tests send it.
VALID_UNIT_ONLY = frozenset({"depends-on-objects"})


Schema = Literal["refuse", "prune"]


@dataclass(frozen=True)
class Denied:
    """A spec with one bad field: the finding's field, its detail and a part of its fix.

    ``{namespace}`` in ``detail`` and ``fix`` stands for the namespace the object is created in.
    ``schema`` says what a structural CRD schema (the FluxConfig CRD with enums, patterns, minimums
    and no unknown fields) may do before any validating webhook sees the object: ``refuse`` it, or
    ``prune`` the field (an inline secret the schema does not know is then never stored).
    ``e2e=False``: no served schema lets it through (a wrong type), so only the unit tests send it.
    """

    id: str
    spec: Any
    field: str
    detail: str
    fix: str
    name: str = NAME
    schema: Schema | None = None
    e2e: bool = True


def inline_secret(id_: str, spec: Any, field: str, fix: str) -> Denied:
    """A secret written inline at ``field``: the schema prunes it (never stored) unless the webhook names it."""
    return Denied(id_, spec, field, f"{field} is a secret written inline", fix, schema="prune")


LONG_NAME = "a" * 48  # 48 + len("-kustomization-1") = 64

DENIED: tuple[Denied, ...] = (
    Denied(
        "scope-unknown",
        changed(git(), scope="Cluster"),
        "spec.scope",
        "spec.scope is 'Cluster'",
        "use cluster or namespace",
        schema="refuse",
    ),
    Denied(
        "namespace-differs",
        changed(git(), namespace="elsewhere"),
        "spec.namespace",
        "spec.namespace is elsewhere but the FluxConfig is in namespace {namespace}",
        "set spec.namespace to {namespace} or remove it",
    ),
    Denied(
        "namespace-not-a-name",
        changed(git(), namespace="Team_A"),
        "spec.namespace",
        "spec.namespace 'Team_A' is not a namespace name",
        "use a DNS label",
        schema="refuse",
    ),
    Denied(
        "protected-settings-inline",
        changed(git(), configurationProtectedSettings={"httpsKey": SECRET_B64}),
        "spec.configurationProtectedSettings",
        "spec.configurationProtectedSettings holds secrets inline",
        "in a Secret named by spec.configurationProtectedSettingsRef.name",
        schema="prune",
    ),
    inline_secret(
        "https-key-inline",
        {**git(httpsUser="bot", httpsKey=SECRET), **PROTECTED},
        "spec.gitRepository.httpsKey",
        "or spec.gitRepository.localAuthRef",
    ),
    inline_secret(
        "blob-account-key-inline",
        azure_blob(accountKey=SECRET_B64),
        "spec.azureBlob.accountKey",
        "spec.configurationProtectedSettingsRef.name or spec.azureBlob.localAuthRef",
    ),
    inline_secret(
        "blob-sas-token-inline", azure_blob(sasToken=f"sv=2024&sig={SECRET}"), "spec.azureBlob.sasToken", "remove it"
    ),
    *(
        inline_secret(
            f"blob-client-{kind}-inline",
            azure_blob(servicePrincipal={"clientId": "1", "tenantId": "2", key: value}),
            f"spec.azureBlob.servicePrincipal.{key}",
            "remove it",
        )
        for kind, key, value in (("secret", "clientSecret", SECRET), ("certificate", "clientCertificate", SECRET_B64))
    ),
    Denied(
        "protected-ref-without-name",
        changed(git(), configurationProtectedSettingsRef={}),
        "spec.configurationProtectedSettingsRef.name",
        "spec.configurationProtectedSettingsRef.name is missing",
        "name the Secret",
        schema="refuse",
    ),
    Denied(
        "source-kind-unknown",
        changed(git(), sourceKind="HelmRepository"),
        "spec.sourceKind",
        "spec.sourceKind is 'HelmRepository'",
        "use one of GitRepository, Bucket, AzureBlob, OCIRepository",
        schema="refuse",
    ),
    Denied(
        "second-source-block",
        {**bucket(), "gitRepository": {"url": URL, "repositoryRef": {"branch": "main"}}},
        "spec.gitRepository",
        "spec.gitRepository is set but spec.sourceKind is Bucket",
        "remove spec.gitRepository or set spec.sourceKind: GitRepository",
    ),
    Denied(
        "source-block-missing",
        {"scope": "namespace", "sourceKind": "OCIRepository"},
        "spec.ociRepository",
        "spec.ociRepository is missing for sourceKind OCIRepository",
        "add spec.ociRepository with its url",
    ),
    Denied(
        "git-url-missing",
        git(url=None),
        "spec.gitRepository.url",
        "spec.gitRepository.url is missing",
        "set it to an http://, https://, ssh:// or git@host:path URL",
    ),
    Denied(
        "git-url-scheme",
        git(url="ftp://git.example.com/fleet"),
        "spec.gitRepository.url",
        "spec.gitRepository.url 'ftp://git.example.com/fleet' is not an http://, https://, ssh:// or git@host:path URL",
        "use an http://",
    ),
    Denied(
        "git-url-scp-without-path",
        git(url="git@github.com"),
        "spec.gitRepository.url",
        "spec.gitRepository.url 'git@github.com' is not an http://, https://, ssh:// or git@host:path URL",
        "git@host:path",
    ),
    Denied(
        "git-url-with-password",
        git(url=f"https://bot:{SECRET}@git.example.com/org/fleet.git"),
        "spec.gitRepository.url",
        "spec.gitRepository.url carries a password",
        "keep the user in the spec (gitRepository.httpsUser) and the password in the Secret",
    ),
    Denied(
        "bucket-url-with-password",
        bucket(url=f"https://minio:{SECRET}@minio.example.com"),
        "spec.bucket.url",
        "spec.bucket.url carries a password",
        "remove it",
    ),
    Denied(
        "known-hosts-with-https",
        git(sshKnownHosts="Z2l0IGtleQ=="),
        "spec.gitRepository.sshKnownHosts",
        "spec.gitRepository.sshKnownHosts is set but the url is https",
        "remove sshKnownHosts or use an ssh:// or git@ URL",
    ),
    Denied(
        "https-user-with-ssh",
        {**git(url="git@github.com:org/fleet.git", httpsUser="bot"), **PROTECTED},
        "spec.gitRepository.httpsUser",
        "spec.gitRepository.httpsUser is set but the url is ssh",
        "remove httpsUser or use an https:// URL",
    ),
    Denied(
        "https-user-without-key",
        git(httpsUser="bot"),
        "spec.configurationProtectedSettingsRef",
        "spec.gitRepository.httpsUser is set without spec.configurationProtectedSettingsRef",
        "name the Secret holding httpsKey",
    ),
    Denied(
        "no-repository-ref",
        git(repositoryRef=None),
        "spec.gitRepository.repositoryRef",
        "spec.gitRepository.repositoryRef sets none of branch, tag, semver, commit",
        "set exactly one of branch, tag, semver or commit",
    ),
    Denied(
        "branch-and-tag",
        git(repositoryRef={"branch": "main", "tag": "v1"}),
        "spec.gitRepository.repositoryRef",
        "spec.gitRepository.repositoryRef sets branch, tag",
        "(a commit may come with its branch)",
    ),
    Denied(
        "tag-and-commit",
        git(repositoryRef={"tag": "v1", "commit": "0ba6f0d"}),
        "spec.gitRepository.repositoryRef",
        "spec.gitRepository.repositoryRef sets tag, commit",
        "set exactly one",
    ),
    Denied(
        "git-timeout-zero",
        git(timeoutInSeconds=0),
        "spec.gitRepository.timeoutInSeconds",
        "spec.gitRepository.timeoutInSeconds is 0",
        "use a whole number of seconds above 0",
        schema="refuse",
    ),
    Denied(
        "bucket-interval-negative",
        bucket(syncIntervalInSeconds=-5),
        "spec.bucket.syncIntervalInSeconds",
        "spec.bucket.syncIntervalInSeconds is -5",
        "above 0",
        schema="refuse",
    ),
    Denied(
        "bucket-url-ssh",
        bucket(url="git@minio.example.com:fleet"),
        "spec.bucket.url",
        "spec.bucket.url 'git@minio.example.com:fleet' is not an http:// or https:// URL",
        "use an http:// or https:// URL",
    ),
    Denied(
        "bucket-name-missing",
        bucket(bucketName=None),
        "spec.bucket.bucketName",
        "spec.bucket.bucketName is missing",
        "name the bucket",
    ),
    Denied(
        "blob-url-scheme",
        azure_blob(url="blob://fleet"),
        "spec.azureBlob.url",
        "spec.azureBlob.url 'blob://fleet' is not an http:// or https:// URL",
        "use an http:// or https:// URL",
    ),
    Denied(
        "blob-container-missing",
        azure_blob(containerName=None),
        "spec.azureBlob.containerName",
        "spec.azureBlob.containerName is missing",
        "name the container",
    ),
    Denied(
        "blob-two-auth-methods",
        azure_blob(localAuthRef="blob-auth", managedIdentity={"clientId": "1234"}),
        "spec.azureBlob.managedIdentity",
        "spec.azureBlob sets localAuthRef, managedIdentity",
        "keep one way to authenticate",
    ),
    Denied(
        "oci-url-scheme",
        oci(url="https://ghcr.io/org/fleet"),
        "spec.ociRepository.url",
        "spec.ociRepository.url 'https://ghcr.io/org/fleet' is not an oci:// URL",
        "use an oci:// URL",
    ),
    Denied(
        "config-name-not-a-label",
        git(),
        "metadata.name",
        "metadata.name 'apps.v2' is not a DNS label",
        "use at most 63 lowercase letters, digits and '-'",
        name="apps.v2",
    ),
    Denied(
        "config-name-too-long-for-the-default",
        changed(git(), kustomizations=None),
        "metadata.name",
        "the default Kustomization <config>-kustomization-1 would be 64 characters",
        "shorten metadata.name to at most 47 characters",
        name=LONG_NAME,
    ),
    Denied(
        "kustomization-name-not-a-label",
        kustomizations(Infra_1={"path": "./infra"}),
        "spec.kustomizations.Infra_1",
        "kustomization name 'Infra_1' is not a DNS label",
        "use lowercase letters, digits and '-'",
    ),
    Denied(
        "kustomization-name-too-long",
        kustomizations(**{"k" * 59: {"path": "./infra"}}),
        f"spec.kustomizations.{'k' * 59}",
        f"Kustomization apps-{'k' * 59} is over 63 characters",
        "shorten the kustomization or config name",
    ),
    Denied(
        "depends-on-itself",
        kustomizations(infra={"dependsOn": ["infra"]}),
        "spec.kustomizations.infra.dependsOn[0]",
        "spec.kustomizations.infra.dependsOn[0] names infra itself",
        "remove it",
    ),
    Denied(
        "depends-on-a-stranger",
        kustomizations(infra={}, apps={"dependsOn": ["infra", "databases"]}),
        "spec.kustomizations.apps.dependsOn[1]",
        "spec.kustomizations.apps.dependsOn[1] names databases, which this FluxConfig does not have",
        "use one of infra",
    ),
    Denied(
        "depends-on-cycle",
        kustomizations(infra={"dependsOn": ["apps"]}, apps={"dependsOn": ["infra"]}, extra={"dependsOn": ["apps"]}),
        "spec.kustomizations.apps.dependsOn",
        "dependsOn forms a cycle: apps -> infra -> apps",
        "remove one of these dependsOn entries",
    ),
    Denied(
        "depends-on-not-a-name",
        kustomizations(infra={}, apps={"dependsOn": [7]}),
        "spec.kustomizations.apps.dependsOn[0]",
        "spec.kustomizations.apps.dependsOn[0] is 7",
        "name a kustomization of this FluxConfig",
        schema="refuse",
    ),
    Denied(
        "kustomization-retry-zero",
        kustomizations(infra={"retryIntervalInSeconds": 0}),
        "spec.kustomizations.infra.retryIntervalInSeconds",
        "spec.kustomizations.infra.retryIntervalInSeconds is 0",
        "use a whole number of seconds above 0",
        schema="refuse",
    ),
    Denied(
        "wait-duration-go-style",
        changed(git(), reconciliationWaitDuration="10m"),
        "spec.reconciliationWaitDuration",
        "spec.reconciliationWaitDuration is '10m'",
        "use an ISO-8601 duration",
        schema="refuse",
    ),
    Denied(
        "wait-duration-months",
        changed(git(), reconciliationWaitDuration="P1M"),
        "spec.reconciliationWaitDuration",
        "spec.reconciliationWaitDuration is 'P1M'",
        "such as PT10M",
        schema="refuse",
    ),
    # The schema of manifests/crds/fluxconfig.yaml types these fields, so only the unit tests send them.
    Denied(
        "kustomizations-a-list",
        changed(git(), kustomizations=[{"name": "infra", "path": "./infra"}]),
        "spec.kustomizations",
        "spec.kustomizations is <list>",
        "write it as a map: name -> {path, dependsOn, ...}",
        e2e=False,
    ),
    Denied(
        "seconds-as-text",
        git(syncIntervalInSeconds="600"),
        "spec.gitRepository.syncIntervalInSeconds",
        "spec.gitRepository.syncIntervalInSeconds is '600'",
        "use a whole number of seconds",
        e2e=False,
    ),
    Denied("spec-not-an-object", ["not", "a", "map"], "spec", "spec is <list>", "make spec an object", e2e=False),
)
