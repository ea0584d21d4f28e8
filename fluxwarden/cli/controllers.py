"""``fluxwarden controllers run``: the reconciler process (Flux's controllers, in one process)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import get_args

from fluxwarden import logs
from fluxwarden.cli.options import add_settings_flags, settings_from
from fluxwarden.controllers.app import CONTROLLERS, ControllersOptions, build
from fluxwarden.controllers.fluxconfig.api import FluxConfigOptions, KeyAlgorithm
from fluxwarden.controllers.helm.helmrelease import HelmOptions
from fluxwarden.controllers.kustomize.kustomization import KustomizeOptions
from fluxwarden.controllers.notification.api import NotificationOptions
from fluxwarden.controllers.runtime.durations import parse_duration
from fluxwarden.controllers.runtime.kube import Kube
from fluxwarden.controllers.runtime.manager import ManagerOptions
from fluxwarden.errors import UsageError
from fluxwarden.kubeclient import api_client

SSH_KEY_ALGORITHMS: tuple[KeyAlgorithm, ...] = get_args(KeyAlgorithm)


def options_from(args: argparse.Namespace) -> ControllersOptions:
    """The process's options from its flags (and their FLUXWARDEN_* variables)."""
    settings = settings_from(args)
    if args.ssh_key_algorithm not in SSH_KEY_ALGORITHMS:  # a FLUXWARDEN_SSH_KEY_ALGORITHM argparse did not check
        raise UsageError(f"--ssh-key-algorithm {args.ssh_key_algorithm!r}: choose {', '.join(SSH_KEY_ALGORITHMS)}")
    return ControllersOptions(
        controllers=tuple(c.strip() for c in args.controllers.split(",") if c.strip()),
        storage_path=Path(args.storage_path),
        storage_host=_host(args.storage_addr),
        storage_port=_port(args.storage_addr, "--storage-addr"),
        storage_adv_url=args.storage_adv_url,
        max_source_size=args.max_source_size,
        kustomize=KustomizeOptions(settings=settings, auto_fix_legacy=args.auto_fix_legacy, live_drift=args.live_drift),
        helm=HelmOptions(settings=settings),  # the same tenancy settings as the webhook and kustomize
        fluxconfig=FluxConfigOptions(settings=settings, ssh_key_algorithm=args.ssh_key_algorithm),
        notification=NotificationOptions(
            event_host=_host(args.event_server_addr),
            event_port=_port(args.event_server_addr, "--event-server-addr"),
            receiver_host=_host(args.receiver_addr),
            receiver_port=_port(args.receiver_addr, "--receiver-addr"),
            rate_limit_interval=_duration(args.rate_limit_interval, "--rate-limit-interval"),
            queue_size=args.event_queue_size,
            settings=settings,
        ),
        manager=ManagerOptions(
            concurrency=args.concurrency,
            namespace=args.watch_namespace,
            label_selector=args.watch_label_selector,
            events_addr=args.events_addr,
            leader_election=args.leader_elect,
            lease_namespace=args.lease_namespace,
            lease_name=args.lease_name,
            metrics_port=args.metrics_port,
            health_port=args.health_port,
        ),
    )


def _host(addr: str) -> str:
    return addr.rpartition(":")[0].strip("[]") or "0.0.0.0"


def _port(addr: str, flag: str) -> int:
    try:
        return int(addr.rpartition(":")[2])
    except ValueError:
        raise UsageError(f"{flag} {addr!r}: give host:port or :port (e.g. :9292)") from None


def _duration(text: str, flag: str) -> float:
    try:
        return parse_duration(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: give a Go duration such as 5m or 30s") from None


def run(args: argparse.Namespace) -> int:
    logs.configure(args.log_level)
    options = options_from(args)
    try:
        reconcilers = build(Kube(api_client(args.kubeconfig)), options)
    except ValueError as exc:
        print(f"fluxwarden controllers: {exc}", file=sys.stderr)
        return 2
    try:
        reconcilers.manager.run()
    finally:
        reconcilers.artifacts.stop()
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("controllers", help="run the reconciler (Flux-compatible controllers)")
    sub = parser.add_subparsers(dest="controllers_command", required=True)
    start = sub.add_parser("run", help="run the chosen controllers until SIGTERM")
    env = os.environ.get
    start.add_argument(
        "--controllers",
        default=env("FLUXWARDEN_CONTROLLERS", "source,kustomize"),
        help=f"comma list of {','.join(CONTROLLERS)} (default source,kustomize; manifests/controllers runs all)",
    )
    start.add_argument("--kubeconfig", default=env("KUBECONFIG"), help="default: ~/.kube/config, then in-cluster")
    start.add_argument("--concurrency", type=int, default=int(env("FLUXWARDEN_CONCURRENCY", "4")))
    start.add_argument("--watch-namespace", default=env("FLUXWARDEN_WATCH_NAMESPACE"), help="default: all")
    start.add_argument(
        "--watch-label-selector", default=env("FLUXWARDEN_WATCH_LABEL_SELECTOR"), help="sharding.fluxcd.io/key=..."
    )
    start.add_argument("--storage-path", default=env("FLUXWARDEN_STORAGE_PATH", "/data"))
    start.add_argument("--storage-addr", default=env("FLUXWARDEN_STORAGE_ADDR", "0.0.0.0:9090"))
    start.add_argument("--storage-adv-url", default=env("FLUXWARDEN_STORAGE_ADV_URL"), help="artifact base URL")
    start.add_argument("--max-source-size", type=int, default=int(env("FLUXWARDEN_MAX_SOURCE_SIZE", str(512 << 20))))
    start.add_argument(
        "--events-addr",
        default=env("FLUXWARDEN_EVENTS_ADDR"),
        help="where controllers post Flux events (the notification-controller Service's URL)",
    )
    start.add_argument(
        "--event-server-addr",
        default=env("FLUXWARDEN_EVENT_SERVER_ADDR", ":9091"),
        help="notification: where the event server listens (Flux's :9090 is the artifact server's here)",
    )
    start.add_argument(
        "--receiver-addr",
        default=env("FLUXWARDEN_RECEIVER_ADDR", ":9292"),
        help="notification: where Receivers' webhooks are served (Flux's --receiverAddr)",
    )
    start.add_argument(
        "--rate-limit-interval",
        default=env("FLUXWARDEN_RATE_LIMIT_INTERVAL", "5m"),
        help="notification: the same event within this interval is sent once (429 after)",
    )
    start.add_argument(
        "--event-queue-size",
        type=int,
        default=int(env("FLUXWARDEN_EVENT_QUEUE_SIZE", "10000")),
        help="notification: deliveries that may wait; beyond, events get 429 and nothing is kept",
    )
    start.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=False)
    start.add_argument("--lease-namespace", default=env("FLUXWARDEN_LEASE_NAMESPACE", "flux-system"))
    start.add_argument(
        "--lease-name",
        default=env("FLUXWARDEN_LEASE_NAME", "fluxwarden-controllers"),
        help="one lease per Deployment (manifests/fluxconfig: fluxwarden-fluxconfig)",
    )
    start.add_argument(
        "--ssh-key-algorithm",
        choices=SSH_KEY_ALGORITHMS,
        default=env("FLUXWARDEN_SSH_KEY_ALGORITHM", "rsa"),
        help="the key pair fluxconfig generates for an ssh URL without a key (rsa: 4096 bits; "
        "Azure DevOps accepts only RSA)",
    )
    start.add_argument("--metrics-port", type=int, default=int(env("FLUXWARDEN_METRICS_PORT", "8080")))
    start.add_argument("--health-port", type=int, default=int(env("FLUXWARDEN_HEALTH_PORT", "9440")))
    start.add_argument("--log-level", default=env("FLUXWARDEN_LOG_LEVEL", "info"))
    start.add_argument(
        "--auto-fix-legacy",
        action=argparse.BooleanOptionalAction,
        default=env("FLUXWARDEN_AUTO_FIX_LEGACY", "false").lower() == "true",
        help="move built Flux objects into the Kustomization's namespace (TENANCY.md's legacy fix)",
    )
    start.add_argument(
        "--live-drift",
        action=argparse.BooleanOptionalAction,
        default=env("FLUXWARDEN_LIVE_DRIFT", "false").lower() == "true",
        help="watch applied kinds (metadata only) and repair a hand edit or deletion within seconds; "
        "needs list/watch on every applied kind",
    )
    add_settings_flags(start)
    start.set_defaults(func=run)
