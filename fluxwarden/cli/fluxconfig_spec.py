"""A FluxConfig and its protected-settings Secret from ``az k8s-configuration flux create``'s flags.

Pure: flags in, objects out, a :class:`FlagError` naming the flag for anything the Azure CLI refuses.
Durations are seconds (``600``) or Go durations (``10m``), as the Azure CLI takes them; the spec holds
seconds. Secret values go only into the Secret ``<name>-protected-parameters``, raw, under the ARM
names (``sshPrivateKey``, ``httpsKey``, ``bucketSecretKey``; for Azure Blob ``accountKey``, ``sasToken``,
``clientSecret``, ``clientCertificate``, ``clientCertificatePassword``); the FluxConfig only names it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from fluxwarden.controllers.fluxconfig.api import FLUX_CONFIG
from fluxwarden.controllers.fluxconfig.watches import WATCH_LABEL
from fluxwarden.controllers.runtime.durations import parse_duration
from fluxwarden.tenancy.fluxconfig import DEFAULT_SCOPE, SOURCE_FIELDS, url_kind
from fluxwarden.tenancy.fluxconfig_rules import is_dns_label

FLUXCONFIG = FLUX_CONFIG
MANAGED_BY = {"app.kubernetes.io/managed-by": "fluxwarden-cli"}
PROTECTED_SUFFIX = "-protected-parameters"
KINDS = {"git": "GitRepository", "bucket": "Bucket", "azblob": "AzureBlob", "oci": "OCIRepository"}
PROVIDERS = {"generic": "Generic", "azure": "Azure", "github": "GitHub"}

# The --kustomization keys, in the Azure CLI's spellings (azext k8s-configuration consts).
_DEPENDS = ("dependsOn", "depends_on", "dependencies", "depends")
_INTERVAL = ("syncInterval", "sync_interval", "interval")
_RETRY = ("retryInterval", "retry_interval")
_BOOLEANS = ("prune", "force", "wait")
_KEYS = ("name", "path", "timeout", "disable-health-check", *_DEPENDS, *_INTERVAL, *_RETRY, *_BOOLEANS)


class FlagError(ValueError):
    """A flag's value the Azure CLI would refuse; the message names the flag and the fix."""


@dataclass
class Flags:
    """What ``create fluxconfig`` was given (argparse's namespace, typed). File flags hold file contents."""

    name: str
    namespace: str
    scope: str = DEFAULT_SCOPE
    kind: str = "git"
    url: str | None = None
    branch: str | None = None
    tag: str | None = None
    semver: str | None = None
    commit: str | None = None
    digest: str | None = None
    interval: str | None = None
    timeout: str | None = None
    provider: str | None = None
    https_user: str | None = None
    https_key: str | None = None
    ssh_private_key: str | None = None
    known_hosts: str | None = None
    https_ca_cert: str | None = None
    local_auth_ref: str | None = None
    bucket_name: str | None = None
    bucket_access_key: str | None = None
    bucket_secret_key: str | None = None
    bucket_insecure: bool = False
    container_name: str | None = None
    sp_client_id: str | None = None
    sp_tenant_id: str | None = None
    sp_client_cert_send_chain: bool = False
    account_key: str | None = None
    sas_token: str | None = None
    sp_client_secret: str | None = None
    sp_client_cert: str | None = None
    sp_client_cert_password: str | None = None
    suspend: bool = False
    wait_for_reconciliation: bool = False
    reconciliation_wait_duration: str | None = None
    kustomizations: list[list[str]] = field(default_factory=list)


def seconds(flag: str, value: str) -> int:
    """Whole seconds from ``600`` or a Go duration (``10m``, ``1h30m``); at least 1."""
    text = value.strip()
    try:
        total = int(text) if text.isdigit() else parse_duration(text)
    except ValueError:
        raise FlagError(f"{flag}: '{value}' is not a duration; give seconds (600) or e.g. 10m, 1h30m") from None
    if total < 1 or total != int(total):
        raise FlagError(f"{flag}: '{value}' must be a whole number of seconds, at least 1")
    return int(total)


def _boolean(flag: str, value: str) -> bool:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise FlagError(f"{flag}: '{value}' is not true or false")


def dependencies(value: str) -> list[str]:
    """``infra``, ``infra,base`` or ``[infra,base]`` (the Azure CLI strips the brackets); quotes dropped."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [name.strip().strip("'\"") for name in text.split(",") if name.strip().strip("'\"")]


def kustomization(items: list[str]) -> tuple[str, dict[str, Any]]:
    """One ``--kustomization key=value ...``: its name and its ARM KustomizationDefinition."""
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise FlagError(f"--kustomization: '{item}' is not key=value (e.g. name=infra path=./infrastructure)")
        if key not in _KEYS:
            raise FlagError(f"--kustomization: unknown key '{key}'; use {', '.join(_KEYS[:6])}, prune, force, wait")
        if key in found:
            raise FlagError(f"--kustomization: '{key}' given twice")
        found[key] = value
    name = found.pop("name", "")
    flag = f"--kustomization name={name}" if name else "--kustomization"
    if not is_dns_label(name):
        raise FlagError(f"{flag}: name is required, a DNS label (lowercase letters, digits, '-')")
    definition: dict[str, Any] = {}
    for key, value in found.items():
        if key == "path":
            definition["path"] = value
        elif key in _DEPENDS:
            definition["dependsOn"] = dependencies(value)
        elif key in _INTERVAL:
            definition["syncIntervalInSeconds"] = seconds(f"{flag} {key}", value)
        elif key in _RETRY:
            definition["retryIntervalInSeconds"] = seconds(f"{flag} {key}", value)
        elif key == "timeout":
            definition["timeoutInSeconds"] = seconds(f"{flag} timeout", value)
        elif key == "disable-health-check":
            definition["wait"] = not _boolean(f"{flag} disable-health-check", value)
        else:
            definition[key] = _boolean(f"{flag} {key}", value)
    return name, definition


def kustomizations(given: list[list[str]], config: str) -> dict[str, dict[str, Any]]:
    made: dict[str, dict[str, Any]] = {}
    for items in given:
        name, definition = kustomization(items)
        if name in made:
            raise FlagError(f"--kustomization name={name}: given twice")
        if len(f"{config}-{name}") > 63:
            raise FlagError(f"--kustomization name={name}: '{config}-{name}' is longer than 63 characters")
        made[name] = definition
    for name, definition in made.items():
        for dep in definition.get("dependsOn", []):
            if dep not in made:
                raise FlagError(f"--kustomization name={name}: dependsOn '{dep}' is not a --kustomization name")
    return made


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _source_timing(flags: Flags) -> dict[str, int]:
    timing = {}
    if flags.timeout:
        timing["timeoutInSeconds"] = seconds("--timeout", flags.timeout)
    if flags.interval:
        timing["syncIntervalInSeconds"] = seconds("--interval", flags.interval)
    return timing


def _refs(flags: Flags, allowed: tuple[str, ...]) -> dict[str, str]:
    given = {k: v for k in ("branch", "tag", "semver", "commit", "digest") if (v := getattr(flags, k))}
    for key in given:
        if key not in allowed:
            raise FlagError(f"--{key} is not for --kind {flags.kind}; use {' or '.join('--' + a for a in allowed)}")
    return given


def _git(flags: Flags) -> dict[str, Any]:
    url = flags.url or ""
    kind = url_kind(url)
    if kind is None:
        raise FlagError("--url: a git URL starts with http://, https://, ssh:// or git@")
    refs = _refs(flags, ("branch", "tag", "semver", "commit"))
    if not refs:
        raise FlagError("--kind git needs one of --branch, --tag, --semver or --commit")
    if len(refs) > 1 and set(refs) != {"branch", "commit"}:
        raise FlagError(f"give one of --branch, --tag, --semver, --commit (got {', '.join('--' + r for r in refs)})")
    ssh = kind == "ssh"
    if ssh and (flags.https_user or flags.https_key or flags.https_ca_cert):
        raise FlagError("--https-user, --https-key and --https-ca-cert-file are for an http(s) --url")
    if not ssh and (flags.ssh_private_key or flags.known_hosts):
        raise FlagError("--ssh-private-key-file and --known-hosts-file are for an ssh:// or git@ --url")
    if bool(flags.https_user) != bool(flags.https_key):
        raise FlagError("--https-user and --https-key go together")
    spec: dict[str, Any] = {"url": url, "repositoryRef": refs}
    if flags.known_hosts:
        spec["sshKnownHosts"] = _b64(flags.known_hosts)
    if flags.https_user:
        spec["httpsUser"] = flags.https_user
    if flags.https_ca_cert:
        spec["httpsCACert"] = _b64(flags.https_ca_cert)
    if flags.provider:
        spec["provider"] = PROVIDERS[flags.provider]
    return spec


def _http_url(flags: Flags, what: str) -> None:
    if url_kind(flags.url or "") not in ("http", "https"):
        raise FlagError(f"--url: {what} URL starts with http:// or https://")


def _bucket(flags: Flags) -> dict[str, Any]:
    _http_url(flags, "a bucket")
    if not flags.bucket_name:
        raise FlagError("--kind bucket needs --bucket-name")
    if bool(flags.bucket_access_key) != bool(flags.bucket_secret_key):
        raise FlagError("--bucket-access-key and --bucket-secret-key go together")
    spec: dict[str, Any] = {"url": flags.url, "bucketName": flags.bucket_name}
    if flags.bucket_access_key:
        spec["accessKey"] = flags.bucket_access_key
    if flags.bucket_insecure:
        spec["insecure"] = True
    return spec


def _azure_blob(flags: Flags) -> dict[str, Any]:
    _http_url(flags, "an Azure Blob")
    if not flags.container_name:
        raise FlagError("--kind azblob needs --container-name")
    spec: dict[str, Any] = {"url": flags.url, "containerName": flags.container_name}
    principal: dict[str, Any] = {k: v for k, v in (("clientId", flags.sp_client_id),
                                                   ("tenantId", flags.sp_tenant_id)) if v}  # fmt: skip
    if flags.sp_client_cert_send_chain:
        principal["clientCertificateSendChain"] = True
    if principal:
        spec["servicePrincipal"] = principal
    return spec


def _oci(flags: Flags) -> dict[str, Any]:
    if not (flags.url or "").startswith("oci://"):
        raise FlagError("--url: an OCI repository URL starts with oci://")
    refs = _refs(flags, ("tag", "semver", "digest"))
    if len(refs) > 1:
        raise FlagError(f"give one of --tag, --semver, --digest (got {', '.join('--' + r for r in refs)})")
    spec: dict[str, Any] = {"url": flags.url}
    if refs:
        spec["repositoryRef"] = refs
    return spec


_SOURCES = {"git": _git, "bucket": _bucket, "azblob": _azure_blob, "oci": _oci}  # --kind -> its block's flags


def protected_settings(flags: Flags) -> dict[str, str]:
    """The secret values given, by their ARM names (raw)."""
    values = {"sshPrivateKey": flags.ssh_private_key, "httpsKey": flags.https_key,
              "bucketSecretKey": flags.bucket_secret_key, "accountKey": flags.account_key,
              "sasToken": flags.sas_token, "clientSecret": flags.sp_client_secret,
              "clientCertificate": flags.sp_client_cert,
              "clientCertificatePassword": flags.sp_client_cert_password}  # fmt: skip
    return {k: v for k, v in values.items() if v}


def build(flags: Flags) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The FluxConfig, and the protected-settings Secret when a secret value was given (else None)."""
    if not is_dns_label(flags.name):
        raise FlagError(f"NAME '{flags.name}': a DNS label of at most 63 characters (lowercase, digits, '-')")
    if not is_dns_label(flags.namespace):
        raise FlagError(f"--namespace '{flags.namespace}': not a namespace name")
    if flags.kind != "git" and (flags.ssh_private_key or flags.known_hosts or flags.https_user or flags.https_key):
        raise FlagError(f"--ssh-*, --known-hosts-file and --https-* are for --kind git, not {flags.kind}")
    if flags.kind != "bucket" and (flags.bucket_secret_key or flags.bucket_access_key):
        raise FlagError(f"--bucket-access-key and --bucket-secret-key are for --kind bucket, not {flags.kind}")
    blob_secrets = (flags.account_key, flags.sas_token, flags.sp_client_secret, flags.sp_client_cert,
                    flags.sp_client_cert_password)  # fmt: skip
    if flags.kind != "azblob" and any(blob_secrets):
        raise FlagError(f"--account-key, --sas-token and --sp-client-* are for --kind azblob, not {flags.kind}")
    source = _SOURCES[flags.kind]
    spec: dict[str, Any] = {"scope": flags.scope, "namespace": flags.namespace, "sourceKind": KINDS[flags.kind]}
    if flags.suspend:
        spec["suspend"] = True
    block = {**source(flags), **_source_timing(flags)}
    if flags.local_auth_ref:
        block["localAuthRef"] = flags.local_auth_ref
    spec[SOURCE_FIELDS[KINDS[flags.kind]]] = block
    if flags.kustomizations:
        spec["kustomizations"] = kustomizations(flags.kustomizations, flags.name)
    if flags.wait_for_reconciliation:
        spec["waitForReconciliation"] = True
    if flags.reconciliation_wait_duration:
        spec["reconciliationWaitDuration"] = iso8601(seconds("--reconciliation-wait-duration",
                                                             flags.reconciliation_wait_duration))  # fmt: skip
    secret = None
    if settings := protected_settings(flags):
        if flags.local_auth_ref:
            raise FlagError("--local-auth-ref names the credentials Secret: give no --ssh/--https/--bucket secret too")
        secret_name = flags.name + PROTECTED_SUFFIX
        spec["configurationProtectedSettingsRef"] = {"name": secret_name}
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": secret_name,
                "namespace": flags.namespace,
                "labels": {WATCH_LABEL: "Enabled", **MANAGED_BY},  # the controller sees an edit at once
            },
            "type": "Opaque",
            "data": {k: _b64(v) for k, v in settings.items()},
        }
    config = {
        "apiVersion": FLUXCONFIG.api_version,
        "kind": FLUXCONFIG.kind,
        "metadata": {"name": flags.name, "namespace": flags.namespace},
        "spec": spec,
    }
    return config, secret


def iso8601(total: int) -> str:
    """``PT1H30M`` for 5400 seconds: ARM's reconciliationWaitDuration."""
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs else "")
    return "PT" + parts
