"""The tenancy rules, pure: Flux kinds and their reference fields, verdicts, mutations, fixes.

No I/O: every function takes plain dicts (Kubernetes objects) and returns data. The webhook, the
controllers and the CLI are thin shells around this package; a rule is written here and only here.

Public surface:

- :data:`KINDS`, :func:`lookup`, :func:`kind_of` -- the Flux kinds, versions and reference fields;
- :class:`Settings`, :class:`Requester` -- what a platform team tunes, and who asks;
- :func:`evaluate` -> list of :class:`Finding` -- the verdicts (``old=``: the stored object of an UPDATE);
- :func:`mutate` -> :class:`Mutation` -- the admission-time JSON Patch and its warnings;
- :func:`remote_bases` -- remote ``resources`` in a kustomization.yaml;
- :func:`upgrade` -> :class:`Upgrade` -- a deprecated API version rewritten to the current one;
- :func:`legacy_fix` -> :class:`LegacyFix` -- every Flux object moved into the configuration namespace;
- :func:`text` -- a field's value as text, safe for any JSON (lists and objects are not printed);
- :func:`cut` -- text cut to a length, the cut marked;
- :func:`url_kind`, :func:`ssh_url`, :func:`cluster_scope_allowed`, :func:`iso_duration_seconds` -- FluxConfig
  URLs, scope and durations; rule ids :data:`CLUSTER_SCOPE_RULE`, :data:`FLUXCONFIG_RULE`.
"""

from fluxwarden.tenancy.findings import Finding, ObjectRef, Severity
from fluxwarden.tenancy.fluxconfig import (
    CLUSTER_SCOPE_RULE,
    FLUXCONFIG_RULE,
    UrlKind,
    cluster_scope_allowed,
    iso_duration_seconds,
    ssh_url,
    url_kind,
)
from fluxwarden.tenancy.kinds import FLUX_GROUPS, FLUX_V1_GROUPS, KINDS, FluxKind, RefField, kind_of, lookup
from fluxwarden.tenancy.kustomization import RemoteBase, remote_bases
from fluxwarden.tenancy.legacy import DEFAULT_CONFIG_NAMESPACE, LegacyFix, Skipped, legacy_fix
from fluxwarden.tenancy.mutation import Mutation, mutate
from fluxwarden.tenancy.rules import cross_namespace_refs, evaluate
from fluxwarden.tenancy.settings import Requester, Settings, is_exempt
from fluxwarden.tenancy.upgrade import Change, Upgrade, upgrade
from fluxwarden.tenancy.values import cut, text

__all__ = [
    "CLUSTER_SCOPE_RULE",
    "DEFAULT_CONFIG_NAMESPACE",
    "FLUXCONFIG_RULE",
    "FLUX_GROUPS",
    "FLUX_V1_GROUPS",
    "KINDS",
    "Change",
    "Finding",
    "FluxKind",
    "LegacyFix",
    "Mutation",
    "ObjectRef",
    "RefField",
    "RemoteBase",
    "Requester",
    "Settings",
    "Severity",
    "Skipped",
    "Upgrade",
    "UrlKind",
    "cluster_scope_allowed",
    "cross_namespace_refs",
    "cut",
    "evaluate",
    "is_exempt",
    "iso_duration_seconds",
    "kind_of",
    "legacy_fix",
    "lookup",
    "mutate",
    "remote_bases",
    "ssh_url",
    "text",
    "upgrade",
    "url_kind",
]
