"""``fluxwarden serve``: the admission webhook over TLS, with self-signed certificates when none are given."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fluxwarden import logs
from fluxwarden.certs import ca_bundle, ensure_serving_pair
from fluxwarden.cli.manifests import render_webhooks
from fluxwarden.cli.options import add_settings_flags, settings_from
from fluxwarden.webhook.app import REQUEST_TIMEOUT_SECONDS, WebhookConfig
from fluxwarden.webhook.server import ServeOptions, WebhookServer

DEFAULT_STATE_DIR = Path(os.environ.get("FLUXWARDEN_STATE_DIR", Path.home() / ".local/state/fluxwarden"))


def _program() -> str:
    """How the user started us (``.venv/bin/fluxwarden`` under ``make run``), for copy-paste commands."""
    invoked = sys.argv[0]
    return invoked if Path(invoked).name == "fluxwarden" else "fluxwarden"


def _next_steps(url: str, ca_file: Path, metrics_port: int) -> str:
    bundle = ca_bundle(ca_file.read_bytes())
    program = _program()
    return f"""\
fluxwarden webhook: serving {url} (POST /validate, /mutate; GET /healthz, /readyz)
metrics: http://127.0.0.1:{metrics_port}/metrics
certificates: {ca_file.parent} (self-signed CA; rotate with '{program} certs generate --out {ca_file.parent}')

Next:
  curl --cacert {ca_file} {url}/healthz
  curl --cacert {ca_file} -H 'Content-Type: application/json' --data @examples/review-legacy-helmrelease.json \\
       {url}/validate
  {program} check examples/      # the same rules, offline, over a repository
  {program} fix --diff examples/legacy-helmrelease.yaml   # the migration, as a patch

caBundle:
{bundle}

Register with an API server that can reach {url} (kubectl apply -f -):
---
{render_webhooks(url, ca_file)}"""


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    logs.configure(args.log_level)
    if args.tls_cert_file and args.tls_private_key_file:
        cert, key = Path(args.tls_cert_file), Path(args.tls_private_key_file)
    else:
        files = ensure_serving_pair(Path(args.cert_dir) if args.cert_dir else DEFAULT_STATE_DIR / "certs")
        cert, key = files.tls_cert, files.tls_key
        url = args.advertise_url or f"https://127.0.0.1:{args.port}"
        print(_next_steps(url, files.ca_cert, args.metrics_port), flush=True)
    options = ServeOptions(
        cert_file=cert,
        key_file=key,
        webhook=WebhookConfig(settings, request_timeout=args.request_timeout),
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        reload_interval=args.cert_reload_interval,
    )
    WebhookServer(options).run()
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("serve", help="run the admission webhook (TLS)")
    env = os.environ.get
    parser.add_argument("--host", default=env("FLUXWARDEN_HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(env("FLUXWARDEN_PORT", "8443")))
    parser.add_argument("--metrics-port", type=int, default=int(env("FLUXWARDEN_METRICS_PORT", "8080")))
    parser.add_argument("--tls-cert-file", default=env("FLUXWARDEN_TLS_CERT_FILE"))
    parser.add_argument("--tls-private-key-file", default=env("FLUXWARDEN_TLS_PRIVATE_KEY_FILE"))
    parser.add_argument(
        "--cert-dir",
        default=env("FLUXWARDEN_CERT_DIR"),
        help=f"self-signed certificates are made here when none are given (default {DEFAULT_STATE_DIR}/certs)",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=float(env("FLUXWARDEN_REQUEST_TIMEOUT", str(REQUEST_TIMEOUT_SECONDS))),
        help="seconds to receive a request body (the API server waits timeoutSeconds=5)",
    )
    parser.add_argument(
        "--cert-reload-interval",
        type=float,
        default=float(env("FLUXWARDEN_CERT_RELOAD_INTERVAL", "5")),
        help="seconds between checks of the certificate files for rotation",
    )
    parser.add_argument("--advertise-url", help="the URL printed in the webhook configuration")
    parser.add_argument("--log-level", default=env("FLUXWARDEN_LOG_LEVEL", "info"))
    add_settings_flags(parser)
    parser.set_defaults(func=run)
