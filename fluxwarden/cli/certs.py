"""``fluxwarden certs generate|info|bootstrap``: a CA and a serving certificate for the webhook."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from fluxwarden.certs import ServingFiles, ca_bundle, ensure_serving_pair, expiry
from fluxwarden.certs.files import RENEW_BEFORE
from fluxwarden.webhook.registration import NAMESPACE, SERVICE


def _describe(files: ServingFiles) -> None:
    now = datetime.datetime.now(datetime.UTC)
    for label, path in (("ca", files.ca_cert), ("serving", files.tls_cert)):
        until = expiry(path.read_bytes())
        print(f"{label:8} {path}  expires {until:%Y-%m-%d %H:%M}Z ({(until - now).days} days)")


def generate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if not args.if_missing:
        for path in (ServingFiles(out).tls_cert, ServingFiles(out).tls_key):
            path.unlink(missing_ok=True)  # force a new serving certificate, keep the CA
    files = ensure_serving_pair(out, args.service, args.namespace, args.days)
    _describe(files)
    if args.print_ca_bundle:
        print(ca_bundle(files.ca_cert.read_bytes()))
    return 0


def info(args: argparse.Namespace) -> int:
    files = ServingFiles(Path(args.dir))
    if not files.tls_cert.exists():
        print(f"fluxwarden certs: no certificate in {args.dir}; run 'fluxwarden certs generate --out {args.dir}'")
        return 2
    _describe(files)
    return 0


def bootstrap_command(args: argparse.Namespace) -> int:
    # Imported here: only this subcommand needs the Kubernetes client.
    from fluxwarden.certs.bootstrap import BootstrapError, Renewal, Target, renew, wait_for_mount, write_files
    from fluxwarden.controllers.runtime.durations import parse_duration
    from fluxwarden.kubeclient import api_client

    try:
        renew_before = datetime.timedelta(seconds=parse_duration(args.renew_before))
    except ValueError as exc:
        print(f"fluxwarden certs bootstrap: --renew-before: {exc}", file=sys.stderr)
        return 2
    target = Target(args.namespace, args.secret, args.service, args.webhook_configuration)
    renewal = Renewal(renew_before=renew_before, days=args.days, create=args.create)
    try:
        with api_client(args.kubeconfig) as api:
            data = renew(api, target, renewal)
        if args.out:
            write_files(data, Path(args.out))
        if args.wait_for_mount:
            wait_for_mount(data, Path(args.wait_for_mount), args.mount_timeout)
    except BootstrapError as exc:
        print(f"fluxwarden certs bootstrap: {exc}", file=sys.stderr)
        return 1
    until = expiry(data["tls.crt"])
    print(f"serving  Secret {target.namespace}/{target.secret}  expires {until:%Y-%m-%d %H:%M}Z")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("certs", help="generate or inspect the webhook's certificates")
    sub = parser.add_subparsers(dest="certs_command", required=True)
    gen = sub.add_parser("generate", help="write ca.crt/ca.key and tls.crt/tls.key (SANs for the Service)")
    gen.add_argument("--out", default="certs", help="directory to write into")
    gen.add_argument("--service", default=SERVICE)
    gen.add_argument("--namespace", default=NAMESPACE)
    gen.add_argument("--days", type=int, default=365, help="validity of the serving certificate")
    gen.add_argument("--if-missing", action="store_true", help="keep a valid existing serving certificate")
    gen.add_argument("--print-ca-bundle", action="store_true", help="also print the base64 caBundle")
    gen.set_defaults(func=generate)
    boot = sub.add_parser(
        "bootstrap",
        help="in-cluster: get, create or renew the certificate Secret, inject the caBundle (init container, renewer)",
    )
    boot.add_argument("--namespace", default=NAMESPACE)
    boot.add_argument("--secret", default="fluxwarden-webhook-tls")
    boot.add_argument("--service", default=SERVICE)
    boot.add_argument("--webhook-configuration", default="fluxwarden", help="name of both webhook configurations")
    boot.add_argument(
        "--renew-before",
        default=f"{RENEW_BEFORE // datetime.timedelta(hours=1)}h",
        help="renew a serving certificate this close to expiry (default %(default)s)",
    )
    boot.add_argument("--days", type=int, default=365, help="validity of a new serving certificate")
    boot.add_argument(
        "--create",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="create the Secret when missing (--no-create: the renewer, which may only update it)",
    )
    boot.add_argument("--out", help="also write ca.crt, ca.key, tls.crt, tls.key into this directory")
    boot.add_argument("--wait-for-mount", help="wait until this Secret volume serves the pair (init container)")
    boot.add_argument("--mount-timeout", type=float, default=300.0, help="seconds --wait-for-mount waits")
    boot.add_argument("--kubeconfig", help="default: $KUBECONFIG, ~/.kube/config, then in-cluster")
    boot.set_defaults(func=bootstrap_command)
    show = sub.add_parser("info", help="print the certificates' expiry")
    show.add_argument("--dir", default="certs")
    show.set_defaults(func=info)
