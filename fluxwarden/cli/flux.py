"""``fluxwarden get|reconcile|suspend|resume``: the ``flux`` CLI verbs over our controllers' objects."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from fluxwarden.cli import get_fluxconfigs, get_notification
from fluxwarden.cli.objects import (
    SOURCES,
    CommandError,
    is_static,
    request_reconcile,
    revision_of,
    row_of,
    rows,
    set_suspend,
    table,
    wait_handled,
)
from fluxwarden.controllers.helm.api import FORCE_AT, HELM_RELEASE, RESET_AT
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.notification.api import RECEIVER
from fluxwarden.controllers.runtime.durations import parse_duration
from fluxwarden.controllers.runtime.kube import Kube, KubeError, Resource
from fluxwarden.controllers.source.api import BUCKET, HELM_CHART, OCI_REPOSITORY
from fluxwarden.kubeclient import api_client


def _kube(args: argparse.Namespace) -> Kube:
    return Kube(api_client(args.kubeconfig))


def _namespace(args: argparse.Namespace) -> str:
    return str(args.namespace or os.environ.get("FLUXWARDEN_NAMESPACE") or "flux-system")


def _resource(args: argparse.Namespace) -> Resource:
    if getattr(args, "resource", None):
        return args.resource  # type: ignore[no-any-return]
    if getattr(args, "source_kind", None):
        return SOURCES[args.source_kind]
    return HELM_RELEASE if getattr(args, "helm_release", False) else KUSTOMIZATION


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


def get_helmreleases(args: argparse.Namespace) -> int:
    namespace = None if args.all_namespaces else _namespace(args)
    print(table(rows(_kube(args), HELM_RELEASE, namespace), args.all_namespaces))
    return 0


def get_listed(args: argparse.Namespace) -> int:
    """A kind whose lister (``args.lister``) prints its own table: the notification kinds."""
    namespace = None if args.all_namespaces else _namespace(args)
    print(args.lister(_kube(args), namespace))
    return 0


def _source_of(obj: dict[str, Any]) -> tuple[str | None, str, str]:
    """The ``(kind, namespace, name)`` that ``--with-source`` reconciles first, as ``flux`` picks it:
    a Kustomization's or HelmChart's sourceRef; a HelmRelease's chartRef, or its HelmChart template."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    if obj.get("kind") != HELM_RELEASE.kind:
        ref = spec.get("sourceRef") or {}
        return ref.get("kind"), ref.get("namespace") or meta["namespace"], ref.get("name") or ""
    if ref := spec.get("chartRef"):
        return ref.get("kind"), ref.get("namespace") or meta["namespace"], ref.get("name") or ""
    # The controller records the template it made as "<ns>/<name>"; before that, Flux's naming.
    recorded = str((obj.get("status") or {}).get("helmChart") or "")
    if "/" in recorded:
        chart_namespace, _, chart_name = recorded.partition("/")
        return HELM_CHART.kind, chart_namespace, chart_name
    ref = ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef") or {}
    return HELM_CHART.kind, ref.get("namespace") or meta["namespace"], f"{meta['namespace']}-{meta['name']}"


def _reconcile_source(args: argparse.Namespace, obj: dict[str, Any]) -> None:
    kind, namespace, name = _source_of(obj)
    alias = {r.kind: alias for alias, r in SOURCES.items()}.get(kind or "")
    if alias is None:
        raise CommandError(
            f"--with-source: {obj['kind']} {obj['metadata']['namespace']}/{obj['metadata']['name']} uses source "
            f"kind '{kind}', which fluxwarden does not reconcile; reconcile {kind} {namespace}/{name} with flux"
        )
    # A HelmChart's own source goes first too (flux reconciles a HelmRelease's chart "with source").
    source_args = {"source_kind": alias, "name": name, "namespace": namespace, "helm_release": False,
                   "with_source": alias == "chart", "force": False, "reset": False}  # fmt: skip
    reconcile(argparse.Namespace(**{**vars(args), **source_args}))


def _success(obj: dict[str, Any], message: str) -> str:
    if obj.get("kind") == HELM_RELEASE.kind:
        return f"applied revision {revision_of(obj)}"
    if obj.get("kind") in (BUCKET.kind, OCI_REPOSITORY.kind):
        return f"fetched revision {revision_of(obj)}"  # flux reconcile source bucket|oci
    return message


def reconcile(args: argparse.Namespace) -> int:
    kube, resource, namespace = _kube(args), _resource(args), _namespace(args)
    obj = kube.get(resource, namespace, args.name)
    if is_static(obj):
        print("✔ reconciliation not supported by the object")  # flux's answer for an OCI HelmRepository
        return 0
    if (obj.get("spec") or {}).get("suspend"):
        raise CommandError(f"{resource.kind} {namespace}/{args.name} is suspended; resume it to reconcile")
    if getattr(args, "with_source", False):
        _reconcile_source(args, obj)
    also = (FORCE_AT,) * bool(getattr(args, "force", False)) + (RESET_AT,) * bool(getattr(args, "reset", False))
    print(f"► annotating {resource.kind} {args.name} in {namespace} namespace")
    stamp = request_reconcile(kube, resource, namespace, args.name, also)
    print(f"✔ {resource.kind} annotated")
    return _wait(args, kube, resource, namespace, stamp)


def _wait(args: argparse.Namespace, kube: Kube, resource: Resource, namespace: str, stamp: str) -> int:
    print(f"◎ waiting for {resource.kind} reconciliation")
    obj = wait_handled(kube, resource, namespace, args.name, stamp, parse_duration(args.timeout))
    row = row_of(obj)
    if row.ready != "True":
        raise CommandError(f"{resource.kind} {namespace}/{args.name}: {row.message}")
    print(f"✔ {resource.kind} reconciliation completed\n✔ {_success(obj, row.message)}")
    return 0


def suspend(args: argparse.Namespace) -> int:
    resource, namespace = _resource(args), _namespace(args)
    set_suspend(_kube(args), resource, namespace, args.name, True)
    print(f"✔ {resource.kind} {namespace}/{args.name} suspended")
    return 0


def resume(args: argparse.Namespace) -> int:
    """Unsuspend and request a reconcile in one patch, then wait for its outcome, as ``flux resume`` does."""
    kube, resource, namespace = _kube(args), _resource(args), _namespace(args)
    print(f"► resuming {resource.kind} {args.name} in {namespace} namespace")
    stamp = request_reconcile(kube, resource, namespace, args.name, spec={"suspend": False})
    print(f"✔ {resource.kind} resumed")
    return _wait(args, kube, resource, namespace, stamp)


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
    sources = get.add_parser("sources", help="OCIRepositories, Buckets, GitRepositories, HelmRepositories, HelmCharts")
    sources.add_argument("source_kind", nargs="?", choices=["all", *SOURCES], default="all")
    sources.add_argument("-A", "--all-namespaces", action="store_true")
    _common(sources)
    sources.set_defaults(func=guarded, verb=get_sources)
    kustomizations = get.add_parser("kustomizations", aliases=["ks"], help="Kustomizations")
    kustomizations.add_argument("-A", "--all-namespaces", action="store_true")
    _common(kustomizations)
    kustomizations.set_defaults(func=guarded, verb=get_kustomizations)
    helmreleases = get.add_parser("helmreleases", aliases=["hr", "helmrelease"], help="HelmReleases")
    helmreleases.add_argument("-A", "--all-namespaces", action="store_true")
    _common(helmreleases)
    helmreleases.set_defaults(func=guarded, verb=get_helmreleases)
    for what, (aliases, helptext, lister) in get_notification.KINDS.items():
        parser = get.add_parser(what, aliases=aliases, help=helptext)
        parser.add_argument("-A", "--all-namespaces", action="store_true")
        _common(parser)
        parser.set_defaults(func=guarded, verb=get_listed, lister=lister)
    get_fluxconfigs.register(get, guarded)

    verbs = {"reconcile": ("request a reconcile and wait for it", reconcile), "suspend": ("suspend", suspend),
             "resume": ("resume and wait for the reconcile", resume)}  # fmt: skip
    for verb, (helptext, run) in verbs.items():
        kinds = commands.add_parser(
            verb,
            help=f"{helptext} (source git|helm|chart|bucket|oci NAME, kustomization NAME, helmrelease NAME, "
            "receiver NAME)",
        ).add_subparsers(dest=f"{verb}_what", required=True)
        source = kinds.add_parser("source")
        source.add_argument("source_kind", choices=list(SOURCES))
        kustomization = kinds.add_parser("kustomization", aliases=["ks"])
        helmrelease = kinds.add_parser("helmrelease", aliases=["hr"])
        helmrelease.set_defaults(helm_release=True)
        receiver = kinds.add_parser("receiver")
        receiver.set_defaults(resource=RECEIVER)
        for parser, timeout in ((source, "2m"), (kustomization, "5m"), (helmrelease, "5m"), (receiver, "1m")):
            parser.add_argument("name")
            _common(parser)
            parser.set_defaults(func=guarded, verb=run)
            if verb != "suspend":
                parser.add_argument("--timeout", default=timeout, help=f"how long to wait (default {timeout})")
        if verb == "reconcile":
            kustomization.add_argument("--with-source", action="store_true", help="reconcile the source first")
            helmrelease.add_argument(
                "--with-source", action="store_true", help="reconcile the chart and its source first"
            )
            helmrelease.add_argument("--force", action="store_true", help="force a one-off install or upgrade")
            helmrelease.add_argument("--reset", action="store_true", help="reset the install/upgrade failure counts")
