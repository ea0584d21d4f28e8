"""``fluxwarden manifests webhooks``: print the webhook configurations, for a Service or a URL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from fluxwarden.certs import ca_bundle
from fluxwarden.webhook.registration import Endpoint, webhook_configurations


def render_webhooks(url: str | None, ca_file: Path | None) -> str:
    bundle = ca_bundle(ca_file.read_bytes()) if ca_file else None
    objects = webhook_configurations(Endpoint(url=url), bundle)
    return yaml.safe_dump_all(objects, sort_keys=False)


def run(args: argparse.Namespace) -> int:
    try:
        sys.stdout.write(render_webhooks(args.url, Path(args.ca_file) if args.ca_file else None))
    except OSError as exc:
        print(f"fluxwarden manifests: cannot read --ca-file {args.ca_file}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("manifests", help="print manifests generated from the rules")
    sub = parser.add_subparsers(dest="manifests_command", required=True)
    hooks = sub.add_parser("webhooks", help="Mutating/ValidatingWebhookConfiguration")
    hooks.add_argument("--url", help="reach the webhook at this URL instead of the in-cluster Service")
    hooks.add_argument("--ca-file", help="CA certificate to put in caBundle")
    hooks.set_defaults(func=run)
