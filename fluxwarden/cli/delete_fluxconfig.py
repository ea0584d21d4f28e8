"""``fluxwarden delete fluxconfig``: ``az k8s-configuration flux delete``.

The controller's finalizer deletes what the FluxConfig made first; the command waits for that (the
object gone) unless ``--no-wait``. The protected-settings Secret ``create fluxconfig`` made goes too.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fluxwarden.cli.flux import guarded
from fluxwarden.cli.fluxconfig_spec import FLUXCONFIG, MANAGED_BY, PROTECTED_SUFFIX
from fluxwarden.cli.objects import CommandError
from fluxwarden.controllers.runtime.durations import parse_duration
from fluxwarden.controllers.runtime.kube import Kube, NotFound, translate
from fluxwarden.kubeclient import api_client


def _delete_path(namespace: str, name: str) -> str:
    return f"/apis/{FLUXCONFIG.api_version}/namespaces/{namespace}/{FLUXCONFIG.plural}/{name}"


def wait_gone(
    kube: Kube, namespace: str, name: str, timeout: float, sleep: Callable[[float], None] = time.sleep
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            obj = kube.get(FLUXCONFIG, namespace, name)
        except NotFound:
            return
        if time.monotonic() > deadline:
            left = ", ".join(obj["metadata"].get("finalizers") or []) or "none"
            raise CommandError(
                f"FluxConfig {namespace}/{name} still there after {timeout:g}s (finalizers: {left}); "
                "is the fluxconfig controller running? (--no-wait returns at once)"
            )
        sleep(0.5)


def _delete_protected_settings(kube: Kube, namespace: str, name: str) -> bool:
    """The Secret ``create fluxconfig`` made for it (labelled so), never one of the user's own."""
    core = client.CoreV1Api(kube.api)
    secret = name + PROTECTED_SUFFIX
    try:
        found = core.read_namespaced_secret(secret, namespace)
        if not MANAGED_BY.items() <= (found.metadata.labels or {}).items():  # not ours: the user's own
            return False
        core.delete_namespaced_secret(secret, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise translate(exc, f"delete Secret {namespace}/{secret}") from None
    return True


def delete(args: argparse.Namespace) -> int:
    namespace = args.namespace or os.environ.get("FLUXWARDEN_NAMESPACE") or "default"
    kube = Kube(api_client(args.kubeconfig))
    print(f"► deleting FluxConfig {args.name} in {namespace} namespace")
    kube.request("DELETE", _delete_path(namespace, args.name), what=f"delete FluxConfig {namespace}/{args.name}")
    if not args.no_wait:
        print("◎ waiting for the objects it made to be deleted")
        wait_gone(kube, namespace, args.name, parse_duration(args.timeout))
    if _delete_protected_settings(kube, namespace, args.name):
        print(f"✔ Secret {namespace}/{args.name}{PROTECTED_SUFFIX} deleted")
    print(f"✔ FluxConfig {namespace}/{args.name} deleted" if not args.no_wait else "✔ deletion requested")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kinds = commands.add_parser("delete", help="delete objects (fluxconfig)").add_subparsers(
        dest="delete_what", required=True
    )
    parser = kinds.add_parser("fluxconfig", aliases=["fc"], help="a FluxConfig and, first, everything it made")
    parser.add_argument("name")
    parser.add_argument("-n", "--namespace", help="default: $FLUXWARDEN_NAMESPACE or default")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for the finalizer")
    parser.add_argument("--timeout", default="5m", help="how long to wait (default 5m)")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.set_defaults(func=guarded, verb=delete)
