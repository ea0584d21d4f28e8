"""``fluxwarden create fluxconfig``: ``az k8s-configuration flux create``, against the cluster itself.

The flags are the Azure CLI's. The FluxConfig and, when secret values are given, the Secret
``<name>-protected-parameters`` are server-side applied (field manager ``fluxwarden-cli``); the
command then waits, as az does, until the controller provisioned the generation (``--no-wait`` not).
Secret values are read from files (or, as az allows, the command line) and are never printed:
``--export`` prints the FluxConfig and says which Secret to make, without its values.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from fluxwarden.cli.fluxconfig_spec import FLUXCONFIG, KINDS, PROVIDERS, FlagError, Flags, build, seconds
from fluxwarden.cli.objects import CommandError
from fluxwarden.controllers.runtime.kube import APPLY_PATCH, Kube, KubeError
from fluxwarden.kubeclient import api_client
from fluxwarden.tenancy.fluxconfig import DEFAULT_SCOPE, SCOPES

FIELD_MANAGER = "fluxwarden-cli"
# Flags whose value is a file to read: (flag, Flags field). The ssh key only ever from a file.
_FILES = (("ssh_private_key_file", "ssh_private_key"), ("known_hosts_file", "known_hosts"),
          ("https_ca_cert_file", "https_ca_cert"), ("https_key_file", "https_key"),
          ("bucket_secret_key_file", "bucket_secret_key"), ("account_key_file", "account_key"),
          ("sas_token_file", "sas_token"), ("sp_client_secret_file", "sp_client_secret"),
          ("sp_client_cert_file", "sp_client_cert"),
          ("sp_client_cert_password_file", "sp_client_cert_password"))  # fmt: skip
# Every other Flags field is a flag of the same name (if the parser has one).
_PLAIN = tuple(f.name for f in fields(Flags) if f.name not in ("name", "namespace", "kustomizations"))


def _read(flag: str, path: str) -> str:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise FlagError(f"--{flag.replace('_', '-')}: cannot read {path}: {exc.strerror}") from None
    if not text.strip():
        raise FlagError(f"--{flag.replace('_', '-')}: {path} is empty")
    return text


def flags_from(args: argparse.Namespace) -> Flags:
    """The typed flags, files read; a file flag and its inline twin together is an error."""
    values: dict[str, Any] = {k: getattr(args, k) for k in _PLAIN if getattr(args, k, None) is not None}
    for flag, field_name in _FILES:
        path = getattr(args, flag, None)
        if path is None:
            continue
        if values.get(field_name):
            raise FlagError(f"--{flag.replace('_', '-')} and --{field_name.replace('_', '-')}: give one")
        values[field_name] = _read(flag, path)
    namespace = args.namespace or os.environ.get("FLUXWARDEN_NAMESPACE") or "default"
    return Flags(name=args.name, namespace=namespace, kustomizations=args.kustomization or [], **values)


def _apply(kube: Kube, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    if obj["kind"] == "Secret":
        path = f"/api/v1/namespaces/{meta['namespace']}/secrets/{meta['name']}"
    else:
        path = f"/apis/{FLUXCONFIG.api_version}/namespaces/{meta['namespace']}/{FLUXCONFIG.plural}/{meta['name']}"
    query = {"fieldManager": FIELD_MANAGER, "force": "true"}  # the CLI owns what it sets, as `az` does
    what = f"apply {obj['kind']} {meta['namespace']}/{meta['name']}"
    return kube.request("PATCH", path, query=query, body=obj, content_type=APPLY_PATCH, what=what)


def wait_provisioned(
    kube: Kube, namespace: str, name: str, generation: int, timeout: float, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Until the controller observed ``generation`` and provisioning is over (Succeeded or Failed)."""
    deadline = time.monotonic() + timeout
    while True:
        obj = kube.get(FLUXCONFIG, namespace, name)
        status = obj.get("status") or {}
        observed = int(status.get("observedGeneration") or 0) >= generation
        if observed and status.get("provisioningState") in ("Succeeded", "Failed"):
            return obj
        if time.monotonic() > deadline:
            state = status.get("provisioningState") or "not provisioned"
            raise CommandError(
                f"FluxConfig {namespace}/{name} is {state} after {timeout:g}s; is the fluxconfig controller "
                "running? (--no-wait returns at once)"
            )
        sleep(0.5)


def export(config: dict[str, Any], secret: dict[str, Any] | None) -> str:
    """The FluxConfig as YAML; the protected-settings Secret only named, with the command that makes it."""
    text = yaml.safe_dump(config, sort_keys=False)
    if secret is None:
        return text
    meta = secret["metadata"]
    keys = " ".join(f"--from-file={k}=<file>" for k in secret["data"])
    return (
        f"# Secret {meta['name']} (keys {', '.join(secret['data'])}) is not printed. Make it with:\n"
        f"#   kubectl create secret generic {meta['name']} -n {meta['namespace']} {keys}\n"
        f"#   kubectl label secret {meta['name']} -n {meta['namespace']} reconcile.fluxcd.io/watch=Enabled\n"
    ) + text


def run(args: argparse.Namespace) -> int:
    try:
        config, secret = build(flags_from(args))
        wait_for = seconds("--wait-timeout", args.wait_timeout)
    except FlagError as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 2
    if args.export:
        sys.stdout.write(export(config, secret))
        return 0
    namespace, name = config["metadata"]["namespace"], config["metadata"]["name"]
    try:
        kube = Kube(api_client(args.kubeconfig))
        if secret is not None:
            _apply(kube, secret)
            print(f"✔ Secret {namespace}/{secret['metadata']['name']} applied (keys {', '.join(secret['data'])})")
        applied = _apply(kube, config)
        print(f"✔ FluxConfig {namespace}/{name} applied")
        if args.no_wait:
            return 0
        print("◎ waiting for the FluxConfig to be provisioned")
        obj = wait_provisioned(kube, namespace, name, int(applied["metadata"].get("generation") or 1), wait_for)
    except (KubeError, CommandError) as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    status = obj.get("status") or {}
    if status.get("provisioningState") == "Failed":
        print(f"✗ FluxConfig {namespace}/{name} failed: {status.get('errorMessage') or 'no message'}", file=sys.stderr)
        return 1
    print(f"✔ FluxConfig {namespace}/{name} provisioned; compliance {status.get('complianceState', 'Unknown')}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    create = commands.add_parser("create", help="create or update objects (fluxconfig)").add_subparsers(
        dest="create_what", required=True
    )
    p = create.add_parser(
        "fluxconfig", aliases=["fc"], help="a FluxConfig, with az k8s-configuration flux create's flags"
    )
    p.add_argument("name")
    p.add_argument("-n", "--namespace", help="metadata.namespace and spec.namespace (default: default, as az)")
    p.add_argument("--scope", choices=SCOPES, default=DEFAULT_SCOPE)
    p.add_argument("--kind", choices=list(KINDS), default="git", help="the source kind (default git)")
    p.add_argument("-u", "--url", required=True)
    p.add_argument(
        "--kustomization",
        "-k",
        nargs="+",
        action="append",
        metavar="KEY=VALUE",
        help="name=NAME path=PATH dependsOn=a,b prune=true force=false wait=true syncInterval=10m timeout=600 "
        "retryInterval=1m (repeat the flag for each)",
    )
    ref = p.add_argument_group("the ref (git: one of branch, tag, semver, commit; oci: tag, semver or digest)")
    for flag in ("branch", "tag", "semver", "commit", "digest"):
        ref.add_argument(f"--{flag}")
    timing = p.add_argument_group("the source's timing: seconds or a Go duration")
    timing.add_argument("--interval", "--sync-interval", dest="interval", help="default 600 (10m)")
    timing.add_argument("--timeout", help="default 600 (10m)")
    auth = p.add_argument_group("credentials (secret values go to Secret NAME-protected-parameters only)")
    auth.add_argument("--ssh-private-key-file", help="an ssh private key (ssh:// or git@ URL)")
    auth.add_argument("--known-hosts-file", help="known_hosts for an ssh URL (stored base64 in sshKnownHosts)")
    auth.add_argument("--https-user")
    auth.add_argument("--https-key-file", help="the https password or token, read from a file")
    auth.add_argument("--https-key", help="as az; on a command line it is seen by ps: prefer --https-key-file")
    auth.add_argument("--https-ca-cert-file", help="a PEM CA certificate (stored base64 in httpsCACert)")
    auth.add_argument("--local-auth-ref", "--local-ref", dest="local_auth_ref",
                      help="a Secret of your own in the namespace, in Flux's format, used as given")  # fmt: skip
    auth.add_argument("--provider", choices=list(PROVIDERS), help="git: generic (default), azure, github")
    other = p.add_argument_group("bucket, azblob and oci")
    other.add_argument("--bucket-name")
    other.add_argument("--bucket-access-key")
    other.add_argument("--bucket-secret-key-file")
    other.add_argument("--bucket-secret-key", help="as az; prefer --bucket-secret-key-file")
    other.add_argument("--bucket-insecure", action="store_true", default=None)
    other.add_argument("--container-name")
    other.add_argument("--sp-client-id")
    other.add_argument("--sp-tenant-id")
    other.add_argument("--sp-client-cert-send-chain", action="store_true", default=None)
    for flag in ("account-key", "sas-token", "sp-client-secret", "sp-client-cert-password"):
        other.add_argument(f"--{flag}-file", help="azblob: read from a file, stored in the protected settings")
        other.add_argument(f"--{flag}", help=f"as az; prefer --{flag}-file")
    other.add_argument("--sp-client-cert-file", help="azblob: a PEM client certificate (protected settings)")
    p.add_argument("--suspend", action="store_true", default=None)
    p.add_argument("--wait-for-reconciliation", action="store_true", default=None)
    p.add_argument("--reconciliation-wait-duration", help="seconds or a Go duration (stored ISO-8601, PT10M)")
    p.add_argument("--export", action="store_true", help="print the FluxConfig YAML and touch no cluster")
    p.add_argument("--no-wait", action="store_true", help="do not wait until it is provisioned")
    p.add_argument("--wait-timeout", default="5m", help="how long to wait (default 5m)")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p.set_defaults(func=run)
