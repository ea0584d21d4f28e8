"""``fluxwarden get|reconcile|suspend|resume``: the ``flux`` CLI verbs over our controllers' objects."""

from __future__ import annotations

import argparse
import os
import sys

from fluxwarden.cli.objects import (
    SOURCES,
    CommandError,
    request_reconcile,
    row_of,
    rows,
    set_suspend,
    table,
    wait_handled,
)
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.runtime.durations import parse_duration
from fluxwarden.controllers.runtime.kube import Kube, KubeError, Resource
from fluxwarden.kubeclient import api_client


def _kube(args: argparse.Namespace) -> Kube:
    return Kube(api_client(args.kubeconfig))


def _namespace(args: argparse.Namespace) -> str:
    return str(args.namespace or os.environ.get("FLUXWARDEN_NAMESPACE") or "flux-system")


def _resource(args: argparse.Namespace) -> Resource:
    return SOURCES[args.source_kind] if getattr(args, "source_kind", None) else KUSTOMIZATION


def get_sources(args: argparse.Namespace) -> int:
    kube = _kube(args)
    kinds = [args.source_kind] if args.source_kind != "all" else list(SOURCES)
    namespace = None if args.all_namespaces else _namespace(args)
    blocks = []
    for kind in kinds:
        found = rows(kube, SOURCES[kind], namespace)
        if found or len(kinds) == 1:
            blocks.append(table(found, args.all_namespaces))
    print("\n\n".join(blocks) if blocks else f"no sources found in {namespace or 'any namespace'}")
    return 0


def get_kustomizations(args: argparse.Namespace) -> int:
    namespace = None if args.all_namespaces else _namespace(args)
    print(table(rows(_kube(args), KUSTOMIZATION, namespace), args.all_namespaces))
    return 0


def reconcile(args: argparse.Namespace) -> int:
    kube, resource, namespace = _kube(args), _resource(args), _namespace(args)
    if getattr(args, "with_source", False):
        source = kube.get(resource, namespace, args.name).get("spec", {}).get("sourceRef", {})
        kind = {r.kind: alias for alias, r in SOURCES.items()}.get(source.get("kind"))
        if kind is None:
            raise CommandError(f"--with-source: sourceRef kind '{source.get('kind')}' is not a known source")
        source_args = argparse.Namespace(
            **{
                **vars(args),
                "source_kind": kind,
                "name": source.get("name"),
                "namespace": source.get("namespace") or namespace,
                "with_source": False,
            }
        )
        reconcile(source_args)
    print(f"► annotating {resource.kind} {args.name} in {namespace} namespace")
    stamp = request_reconcile(kube, resource, namespace, args.name)
    print(f"◎ waiting for {resource.kind} reconciliation")
    row = row_of(wait_handled(kube, resource, namespace, args.name, stamp, parse_duration(args.timeout)))
    if row.ready != "True":
        raise CommandError(f"{resource.kind} {namespace}/{args.name}: {row.message}")
    print(f"✔ {resource.kind} reconciliation completed\n✔ {row.message}")
    return 0


def suspend(args: argparse.Namespace) -> int:
    resource, namespace = _resource(args), _namespace(args)
    set_suspend(_kube(args), resource, namespace, args.name, args.suspend)
    print(f"✔ {resource.kind} {namespace}/{args.name} {'suspended' if args.suspend else 'resumed'}")
    return 0


def guarded(args: argparse.Namespace) -> int:
    """Run the verb; API and command failures become one line on stderr and exit 1."""
    try:
        code: int = args.verb(args)
    except (KubeError, CommandError) as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    return code


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", help="default: $FLUXWARDEN_NAMESPACE or flux-system")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    get = commands.add_parser("get", help="list Flux objects with their readiness").add_subparsers(
        dest="get_what", required=True
    )
    sources = get.add_parser("sources", help="GitRepositories, HelmRepositories, HelmCharts")
    sources.add_argument("source_kind", nargs="?", choices=["all", *SOURCES], default="all")
    sources.add_argument("-A", "--all-namespaces", action="store_true")
    _common(sources)
    sources.set_defaults(func=guarded, verb=get_sources)
    kustomizations = get.add_parser("kustomizations", aliases=["ks"], help="Kustomizations")
    kustomizations.add_argument("-A", "--all-namespaces", action="store_true")
    _common(kustomizations)
    kustomizations.set_defaults(func=guarded, verb=get_kustomizations)

    for verb, helptext in (("reconcile", "request a reconcile and wait for it"), ("suspend", "suspend"),
                           ("resume", "resume")):  # fmt: skip
        kinds = commands.add_parser(
            verb, help=f"{helptext} (source git|helm|chart NAME, kustomization NAME)"
        ).add_subparsers(dest=f"{verb}_what", required=True)
        source = kinds.add_parser("source")
        source.add_argument("source_kind", choices=list(SOURCES))
        source.add_argument("name")
        _common(source)
        kustomization = kinds.add_parser("kustomization", aliases=["ks"])
        kustomization.add_argument("name")
        _common(kustomization)
        if verb == "reconcile":
            source.add_argument("--timeout", default="2m")
            source.set_defaults(func=guarded, verb=reconcile)
            kustomization.add_argument("--timeout", default="5m")
            kustomization.add_argument("--with-source", action="store_true", help="reconcile the source first")
            kustomization.set_defaults(func=guarded, verb=reconcile)
        else:
            source.set_defaults(func=guarded, verb=suspend, suspend=verb == "suspend")
            kustomization.set_defaults(func=guarded, verb=suspend, suspend=verb == "suspend")
