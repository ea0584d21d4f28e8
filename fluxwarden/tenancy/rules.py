"""The tenancy rules: one function per rule, and :func:`evaluate` that runs them all.

Every rule takes a Kubernetes object (a dict), the namespace it lives in and the settings, and
returns findings. Nothing here reads a file or a socket. Rule ids are stable (they appear in
messages, metrics and ``check`` output): ``cross-namespace-ref``, ``service-account``, ``flux-v1``,
``deprecated-api``, ``cross-namespace-dependency``, ``remote-cluster``, and for FluxConfig
``cluster-scope`` and ``fluxconfig`` (:mod:`fluxconfig_rules`; never lifted by an exemption).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fluxwarden.tenancy.findings import Finding, finding_at
from fluxwarden.tenancy.fluxconfig import NEVER_EXEMPT_RULES
from fluxwarden.tenancy.fluxconfig_rules import cluster_scope, fluxconfig, fluxconfig_update
from fluxwarden.tenancy.kinds import FLUX_V1_GROUPS, RefField, kind_of, split_api_version
from fluxwarden.tenancy.paths import dotted, walk
from fluxwarden.tenancy.settings import Requester, Settings, is_exempt
from fluxwarden.tenancy.values import text

Rule = Callable[[dict[str, Any], str, Settings], Iterator[Finding]]


def object_namespace(obj: dict[str, Any], namespace: str | None = None) -> str:
    """The namespace an object lives in: the request's when given, else ``metadata.namespace``."""
    if namespace:
        return namespace
    meta = obj.get("metadata")
    return text(meta.get("namespace") or "") if isinstance(meta, dict) else ""


def cross_namespace_refs(
    obj: dict[str, Any], namespace: str, rule: str = "cross-namespace-ref"
) -> Iterator[tuple[RefField, tuple[str | int, ...], dict[str, Any]]]:
    """Every reference of ``obj`` judged by ``rule`` whose namespace is set and is not ``namespace``."""
    flux_kind = kind_of(obj)
    if flux_kind is None:
        return
    _, version = split_api_version(text(obj.get("apiVersion", "")))
    for ref_field in flux_kind.refs_for(version):
        if ref_field.rule != rule:
            continue
        for steps, ref in walk(obj, ref_field.path):
            if isinstance(ref, dict) and ref.get("namespace") and ref.get("namespace") != namespace:
                yield ref_field, steps, ref


def _ref_text(ref_field: RefField, ref: dict[str, Any]) -> str:
    kind = text(ref.get("kind") or ref_field.implied_kind or "object")
    return f"{kind} {text(ref.get('namespace'))}/{text(ref.get('name', ''))}"


def _refsfinding_at(obj: dict[str, Any], namespace: str, rule: str, reason: str) -> Iterator[Finding]:
    for ref_field, steps, ref in cross_namespace_refs(obj, namespace, rule):
        yield finding_at(
            rule, obj, namespace, steps,
            detail=f"{dotted(steps)} points to {_ref_text(ref_field, ref)}",
            fix=f"move the {ref_field.noun} into namespace {namespace} (or run 'fluxwarden fix')",
            reason=reason,
        )  # fmt: skip


def cross_namespace_ref(obj: dict[str, Any], namespace: str, settings: Settings) -> Iterator[Finding]:
    """Flux's ``--no-cross-namespace-refs``: a reference must stay in the object's namespace."""
    if settings.enforce:
        yield from _refsfinding_at(obj, namespace, "cross-namespace-ref", "cross-namespace references are blocked")


def cross_namespace_dependency(obj: dict[str, Any], namespace: str, settings: Settings) -> Iterator[Finding]:
    """Opt-in: ``dependsOn`` may not name objects in other namespaces."""
    if settings.enforce and settings.block_cross_namespace_dependencies:
        yield from _refsfinding_at(
            obj, namespace, "cross-namespace-dependency", "cross-namespace dependencies are blocked by policy"
        )


def service_account(obj: dict[str, Any], namespace: str, settings: Settings) -> Iterator[Finding]:
    """A tenant may impersonate only the applier (or an allowed account), never a stronger one."""
    flux_kind = kind_of(obj)
    if not settings.enforce or flux_kind is None or not flux_kind.applies_as_service_account:
        return
    spec = obj.get("spec")
    value = spec.get("serviceAccountName") if isinstance(spec, dict) else None
    name = text(value) if value else ""
    if name and not settings.service_account_allowed(name):
        allowed = ", ".join(sorted({settings.applier, *settings.allowed_service_accounts}))
        yield finding_at(
            "service-account",
            obj,
            namespace,
            ("spec", "serviceAccountName"),
            detail=f"spec.serviceAccountName is '{name}'",
            fix=f"use {allowed} or leave it empty",
            reason="tenants reconcile only as the applier service account",
        )


def remote_cluster(obj: dict[str, Any], namespace: str, settings: Settings) -> Iterator[Finding]:
    """Opt-in: no ``spec.kubeConfig``, so a tenant cannot reach past this cluster's RBAC."""
    flux_kind = kind_of(obj)
    if not (settings.enforce and settings.block_remote_clusters and flux_kind and flux_kind.applies_as_service_account):
        return
    spec = obj.get("spec")
    if isinstance(spec, dict) and spec.get("kubeConfig"):
        yield finding_at(
            "remote-cluster",
            obj,
            namespace,
            ("spec", "kubeConfig"),
            detail="spec.kubeConfig targets a remote cluster",
            fix="remove spec.kubeConfig",
            reason="remote clusters are blocked by policy",
        )


def flux_v1(obj: dict[str, Any], namespace: str, settings: Settings) -> Iterator[Finding]:
    """Flux v1 objects are refused whatever the settings: nothing reconciles them any more."""
    group, version = split_api_version(text(obj.get("apiVersion", "")))
    if group in FLUX_V1_GROUPS:
        yield finding_at(
            "flux-v1",
            obj,
            namespace,
            ("apiVersion",),
            detail=f"apiVersion {group}/{version} is Flux v1, which is end of life",
            fix="migrate it to helm.toolkit.fluxcd.io/v2 HelmRelease with a HelmRepository source",
            reason="Flux v1 objects are refused",
        )


def deprecated_api(obj: dict[str, Any], namespace: str, settings: Settings) -> Iterator[Finding]:
    """A warning for API versions Flux removes (2.7 to 2.9); ``fluxwarden fix`` rewrites them."""
    flux_kind = kind_of(obj)
    group, version = split_api_version(text(obj.get("apiVersion", "")))
    if flux_kind is not None and flux_kind.is_deprecated(version):
        yield finding_at(
            "deprecated-api",
            obj,
            namespace,
            ("apiVersion",),
            detail=f"{group}/{version} {flux_kind.kind} is deprecated",
            fix=f"use {flux_kind.current_version} (run 'fluxwarden fix')",
            reason="Flux removes deprecated API versions",
            severity="warn",
        )


RULES: tuple[Rule, ...] = (
    flux_v1,
    cross_namespace_ref,
    service_account,
    cross_namespace_dependency,
    remote_cluster,
    deprecated_api,
    cluster_scope,
    fluxconfig,
)


def evaluate(
    obj: dict[str, Any],
    settings: Settings,
    *,
    namespace: str | None = None,
    requester: Requester | None = None,
    old: dict[str, Any] | None = None,
) -> list[Finding]:
    """All findings for ``obj``; ``old`` is the stored object on an UPDATE (for the immutable fields).

    Exempt namespaces and requesters keep warnings and are denied only by the FluxConfig rules
    (``cluster-scope``, ``fluxconfig``), which no exemption lifts.
    """
    ns = object_namespace(obj, namespace)
    findings = [finding for rule in RULES for finding in rule(obj, ns, settings)]
    if old is not None:
        findings.extend(fluxconfig_update(obj, old, ns, settings))
    if is_exempt(settings, ns, requester):
        findings = [f for f in findings if not f.denies or f.rule in NEVER_EXEMPT_RULES]
    return findings
