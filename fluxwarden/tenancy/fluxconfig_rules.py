"""The FluxConfig rules: ``cluster-scope`` (who may grant cluster-admin) and ``fluxconfig`` (the Azure CLI's checks).

Neither is lifted by exempt namespaces, users or groups, nor by ``enforce=False``:

- ``cluster-scope``: the controller applies it at reconcile time (a cluster may run without the
  webhook) and cannot see who wrote the object, so the namespace list
  (``Settings.cluster_scope_namespaces``) is its only exemption;
- ``fluxconfig``: a malformed FluxConfig is malformed wherever it lives and whoever wrote it.

Each finding names one field and its fix, in one line (FLUXCONFIG.md, "CLI validation worth copying").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fluxwarden.tenancy.findings import Finding, finding_at
from fluxwarden.tenancy.fluxconfig import (
    CLUSTER_SCOPE_RULE,
    DEFAULT_KUSTOMIZATION,
    DEFAULT_SCOPE,
    DEFAULT_SOURCE_KIND,
    FLUXCONFIG_RULE,
    SCOPES,
    SOURCE_FIELDS,
    cluster_scope_allowed,
    is_fluxconfig,
    iso_duration_seconds,
    scope_of,
    target_namespace,
    url_kind,
)
from fluxwarden.tenancy.paths import Step, dotted
from fluxwarden.tenancy.settings import Settings
from fluxwarden.tenancy.values import cut, text

NAME_LIMIT = 63  # a Kubernetes label value, and what the CLI allows for <config>-<kustomization>
SHOWN_LIMIT = 64  # characters of a bad value quoted in a message
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", re.ASCII)
_REFS = ("branch", "tag", "semver", "commit")
_SECONDS_FIELDS = ("timeoutInSeconds", "syncIntervalInSeconds")
_KUSTOMIZATION_SECONDS = (*_SECONDS_FIELDS, "retryIntervalInSeconds")
# Secret values that a spec must never hold: they come from a Secret (configurationProtectedSettingsRef
# or the source's localAuthRef). The ARM fields first, then the protected-settings keys written inline.
_INLINE_SECRETS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("azureBlob",), "accountKey"),
    (("azureBlob",), "sasToken"),
    (("azureBlob", "servicePrincipal"), "clientSecret"),
    (("azureBlob", "servicePrincipal"), "clientCertificate"),
    (("azureBlob", "servicePrincipal"), "clientCertificatePassword"),
    (("gitRepository",), "sshPrivateKey"),
    (("gitRepository",), "httpsKey"),
    (("bucket",), "bucketSecretKey"),
    (("bucket",), "secretKey"),
)
_BLOB_AUTH = ("servicePrincipal", "accountKey", "sasToken", "localAuthRef", "managedIdentity")
_SCHEMES_TEXT = {
    "git": "an http://, https://, ssh:// or git@host:path URL",
    "http": "an http:// or https:// URL",
    "oci": "an oci:// URL",
}

_MALFORMED = "the Azure CLI refuses it"
# user:password@ before the host, with or without a scheme (git@host:path has no password).
_URL_PASSWORD = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*://)?[^/@\s]*:[^/@\s]*@")


def _shown(value: Any) -> str:
    """A bad value as quoted in a message: strings in quotes, other values by their text, all short."""
    shown = cut(text(value), SHOWN_LIMIT)
    return repr(shown) if isinstance(value, str) else shown


def is_dns_label(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= NAME_LIMIT and _DNS_LABEL.fullmatch(value) is not None


SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})

# -- cluster-scope -------------------------------------------------------------------------------


def cluster_scope(obj: dict[str, Any], namespace: str, settings: Settings) -> Iterator[Finding]:
    """Scope ``cluster`` (the default) hands the repository cluster-admin: only in the listed namespaces.

    Not lifted by exempt namespaces or requesters, nor by ``enforce=False``: the controller judges
    it again at reconcile time without knowing who wrote the object, so the list is the only exemption.
    """
    if not is_fluxconfig(obj):
        return
    spec = obj.get("spec")
    if spec is not None and not isinstance(spec, dict):
        return  # a malformed spec: the fluxconfig rule reports it
    value = spec.get("scope") if spec else None
    where = namespace or target_namespace(obj)
    if cluster_scope_allowed(settings, where):
        return
    if where in SYSTEM_NAMESPACES:  # admin of kube-system can mint a token of any system account
        yield finding_at(
            CLUSTER_SCOPE_RULE, obj, namespace, ("metadata", "namespace"),
            detail=f"a FluxConfig of any scope in {where} makes flux-applier its admin",
            fix="create it in a tenant's namespace (or the platform lists this one)",
            reason="admin of a system namespace is cluster-admin",
        )  # fmt: skip
        return
    if value not in (None, DEFAULT_SCOPE):
        return  # namespace, or a bad value the fluxconfig rule reports
    listed = " or ".join(sorted(settings.cluster_scope_namespaces)) or "a namespace the platform lists"
    unset = " (the default when unset)" if value is None else ""
    yield finding_at(
        CLUSTER_SCOPE_RULE,
        obj,
        namespace,
        ("spec", "scope"),
        detail=f"spec.scope is cluster{unset} in namespace {where or '<none>'}",
        fix=f"set spec.scope: namespace, or ask the platform to create it in {listed}",
        reason="scope cluster grants the repository cluster-admin",
    )


# -- fluxconfig ----------------------------------------------------------------------------------


class _Checker:
    """Collects the ``fluxconfig`` findings of one object; one method per part of the spec."""

    def __init__(self, obj: dict[str, Any], namespace: str) -> None:
        self.obj = obj
        self.namespace = namespace
        self.findings: list[Finding] = []

    def deny(self, steps: tuple[Step, ...], detail: str, fix: str, reason: str = _MALFORMED) -> None:
        self.findings.append(finding_at(FLUXCONFIG_RULE, self.obj, self.namespace, steps, detail, fix, reason))

    def seconds(self, block: dict[str, Any], at: tuple[Step, ...], fields: tuple[str, ...]) -> None:
        for name in fields:
            value = block.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                where = dotted((*at, name))
                self.deny((*at, name), f"{where} is {_shown(value)}", "use a whole number of seconds above 0")

    def url(self, block: dict[str, Any], at: tuple[Step, ...], schemes: str) -> str | None:
        """The block's url when it has one of ``schemes`` ("git", "http", "oci"); else a finding and None."""
        value = block.get("url")
        where = dotted((*at, "url"))
        allowed = _SCHEMES_TEXT[schemes]
        if not isinstance(value, str) or not value:
            self.deny(
                (*at, "url"), f"{where} is {'missing' if value is None else _shown(value)}", f"set it to {allowed}"
            )
            return None
        if _URL_PASSWORD.match(value):
            # Never quoted: the value holds a secret (and the webhook logs its denials).
            self.deny(
                (*at, "url"),
                f"{where} carries a password",
                "remove it; keep the user in the spec (gitRepository.httpsUser) and the password in the Secret "
                "named by spec.configurationProtectedSettingsRef.name",
                "secrets never live in the spec",
            )
            return None
        kind = url_kind(value)
        ok = {"git": kind is not None, "http": kind in ("http", "https"), "oci": value.startswith("oci://")}
        if not ok[schemes] or (schemes == "oci" and value == "oci://"):
            self.deny((*at, "url"), f"{where} {_shown(value)} is not {allowed}", f"use {allowed}")
            return None
        return value

    # -- the parts ---------------------------------------------------------------------------------

    def check(self) -> list[Finding]:
        spec = self.obj.get("spec", {})
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            self.deny(
                ("spec",), f"spec is {_shown(spec)}", "make spec an object (the ARM FluxConfiguration properties)"
            )
            return self.findings
        self.names(spec)
        self.scope(spec)
        self.target_namespace(spec)
        self.secrets(spec)
        self.source(spec)
        self.kustomizations(spec)
        self.wait(spec)
        return self.findings

    def names(self, spec: dict[str, Any]) -> None:
        meta = self.obj.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if name is None:
            return  # generateName: the API server names it after the mutating webhooks
        if not is_dns_label(name):
            self.deny(
                ("metadata", "name"),
                f"metadata.name {_shown(name)} is not a DNS label",
                "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
                "it names the source and Kustomizations made from it",
            )
            return
        kustomizations = spec.get("kustomizations")
        if not kustomizations:  # one kustomization-1 is made
            made = f"{name}-{DEFAULT_KUSTOMIZATION}"
            if len(made) > NAME_LIMIT:
                self.deny(
                    ("metadata", "name"),
                    # The name is in the object ref already: repeating it would cut the fix off.
                    f"the default Kustomization <config>-{DEFAULT_KUSTOMIZATION} would be {len(made)} characters",
                    f"shorten metadata.name to at most {NAME_LIMIT - len(DEFAULT_KUSTOMIZATION) - 1} characters",
                    "names made from it are at most 63 characters",
                )

    def scope(self, spec: dict[str, Any]) -> None:
        value = spec.get("scope")
        if value is not None and value not in SCOPES:
            self.deny(
                ("spec", "scope"),
                f"spec.scope is {_shown(value)}",
                "use cluster or namespace (unset means cluster)",
                "scope is cluster or namespace",
            )

    def target_namespace(self, spec: dict[str, Any]) -> None:
        value = spec.get("namespace")
        if value is None:
            return
        if not is_dns_label(value):
            self.deny(
                ("spec", "namespace"), f"spec.namespace {_shown(value)} is not a namespace name", "use a DNS label"
            )
        elif self.namespace and value != self.namespace:
            self.deny(
                ("spec", "namespace"),
                f"spec.namespace is {value} but the FluxConfig is in namespace {self.namespace}",
                f"set spec.namespace to {self.namespace} or remove it (or create the FluxConfig in {value})",
                "a FluxConfig lives in the namespace it configures, as in Azure",
            )

    def secrets(self, spec: dict[str, Any]) -> None:
        ref_fix = "keep secrets in a Secret named by spec.configurationProtectedSettingsRef.name"
        if spec.get("configurationProtectedSettings") is not None:
            self.deny(
                ("spec", "configurationProtectedSettings"),
                "spec.configurationProtectedSettings holds secrets inline",
                "remove it; put sshPrivateKey, httpsKey or bucketSecretKey in a Secret named by "
                "spec.configurationProtectedSettingsRef.name",
                "secrets never live in the spec",
            )
        for path, name in _INLINE_SECRETS:
            block: Any = spec
            for step in path:
                block = block.get(step) if isinstance(block, dict) else None
            if isinstance(block, dict) and block.get(name) is not None:
                steps = ("spec", *path, name)
                self.deny(
                    steps,
                    f"{dotted(steps)} is a secret written inline",
                    f"remove it; {ref_fix} or spec.{path[0]}.localAuthRef",
                    "secrets never live in the spec",
                )
        ref = spec.get("configurationProtectedSettingsRef")
        if ref is not None and not (isinstance(ref, dict) and isinstance(ref.get("name"), str) and ref["name"]):
            steps = ("spec", "configurationProtectedSettingsRef", "name")
            self.deny(steps, f"{dotted(steps)} is missing", "name the Secret that holds the protected settings")

    def source(self, spec: dict[str, Any]) -> None:
        kind = spec.get("sourceKind")
        if kind is None:
            kind = DEFAULT_SOURCE_KIND
        if not isinstance(kind, str) or kind not in SOURCE_FIELDS:
            self.deny(
                ("spec", "sourceKind"), f"spec.sourceKind is {_shown(kind)}", f"use one of {', '.join(SOURCE_FIELDS)}"
            )
            return
        wanted = SOURCE_FIELDS[kind]
        default = " (the default)" if "sourceKind" not in spec else ""
        for other_kind, other in SOURCE_FIELDS.items():
            if other != wanted and spec.get(other) is not None:
                self.deny(
                    ("spec", other),
                    f"spec.{other} is set but spec.sourceKind is {kind}{default}",
                    f"remove spec.{other} or set spec.sourceKind: {other_kind}",
                    "a FluxConfig has one source",
                )
        block = spec.get(wanted)
        if not isinstance(block, dict):
            shown = "missing" if block is None else _shown(block)
            self.deny(
                ("spec", wanted), f"spec.{wanted} is {shown} for sourceKind {kind}", f"add spec.{wanted} with its url"
            )
            return
        at = ("spec", wanted)
        self.seconds(block, at, _SECONDS_FIELDS)
        if wanted == "gitRepository":
            self.git(spec, block)
        elif wanted == "ociRepository":
            self.url(block, at, "oci")
        else:
            self.url(block, at, "http")
            required = "bucketName" if wanted == "bucket" else "containerName"
            if not isinstance(block.get(required), str) or not block[required]:
                self.deny((*at, required), f"spec.{wanted}.{required} is missing", f"name the {required[:-4]}")
            if wanted == "azureBlob":
                self.blob_auth(block)

    def git(self, spec: dict[str, Any], block: dict[str, Any]) -> None:
        at: tuple[Step, ...] = ("spec", "gitRepository")
        url = self.url(block, at, "git")
        kind = url_kind(url) if url else None
        if kind is not None and kind != "ssh" and block.get("sshKnownHosts"):
            self.deny(
                (*at, "sshKnownHosts"),
                f"spec.gitRepository.sshKnownHosts is set but the url is {kind}",
                "remove sshKnownHosts or use an ssh:// or git@ URL",
                "known hosts are for ssh only",
            )
        if block.get("httpsUser"):
            if kind == "ssh":
                self.deny(
                    (*at, "httpsUser"),
                    "spec.gitRepository.httpsUser is set but the url is ssh",
                    "remove httpsUser or use an https:// URL",
                    "https credentials are for http(s) URLs only",
                )
            if spec.get("configurationProtectedSettingsRef") is None:
                self.deny(
                    ("spec", "configurationProtectedSettingsRef"),
                    "spec.gitRepository.httpsUser is set without spec.configurationProtectedSettingsRef",
                    "name the Secret holding httpsKey in spec.configurationProtectedSettingsRef.name",
                    "https user and key go together",
                )
        ref = block.get("repositoryRef")
        given = [k for k in _REFS if isinstance(ref, dict) and ref.get(k)]
        if len(given) == 1 or set(given) == {"branch", "commit"}:
            return
        self.deny(
            (*at, "repositoryRef"),
            f"spec.gitRepository.repositoryRef sets {', '.join(given) or 'none of branch, tag, semver, commit'}",
            "set exactly one of branch, tag, semver or commit (a commit may come with its branch)",
            "the source must know what to check out",
        )

    def blob_auth(self, block: dict[str, Any]) -> None:
        given = [k for k in _BLOB_AUTH if block.get(k) is not None]
        if len(given) > 1:
            self.deny(
                ("spec", "azureBlob", given[1]),
                f"spec.azureBlob sets {', '.join(given)}",
                "keep one way to authenticate",
                "the Azure CLI takes one",
            )

    def kustomizations(self, spec: dict[str, Any]) -> None:
        entries = spec.get("kustomizations")
        if entries is None:
            return
        at: tuple[Step, ...] = ("spec", "kustomizations")
        if not isinstance(entries, dict):
            self.deny(
                at, f"spec.kustomizations is {_shown(entries)}", "write it as a map: name -> {path, dependsOn, ...}"
            )
            return
        meta = self.obj.get("metadata")
        config = meta.get("name") if isinstance(meta, dict) else None
        graph: dict[str, list[str]] = {}
        for name, entry in entries.items():
            here = (*at, name)
            if not is_dns_label(name):
                self.deny(
                    here,
                    f"kustomization name {_shown(name)} is not a DNS label",
                    "use lowercase letters, digits and '-'",
                )
            elif is_dns_label(config) and len(f"{config}-{name}") > NAME_LIMIT:
                self.deny(
                    here,
                    f"Kustomization {config}-{name} is over {NAME_LIMIT} characters",
                    "shorten the kustomization or config name",
                    "<config>-<kustomization> must be at most 63 characters",
                )
            if entry is None:
                continue
            if not isinstance(entry, dict):
                self.deny(here, f"{dotted(here)} is {_shown(entry)}", "make it an object: {path, dependsOn, ...}")
                continue
            self.seconds(entry, here, _KUSTOMIZATION_SECONDS)
            graph[name] = self.depends_on(entries, name, entry, here)
        self.cycles(graph)

    def depends_on(
        self, entries: dict[str, Any], name: str, entry: dict[str, Any], here: tuple[Step, ...]
    ) -> list[str]:
        """The valid sibling names ``entry`` depends on; a finding for each bad one."""
        deps = entry.get("dependsOn")
        if deps is None:
            return []
        if not isinstance(deps, list):
            self.deny((*here, "dependsOn"), f"{dotted((*here, 'dependsOn'))} is {_shown(deps)}", "list sibling names")
            return []
        found = []
        for index, dep in enumerate(deps):
            steps = (*here, "dependsOn", index)
            # ARM 2022+ lists names; older API versions wrote {kustomizationName: name}.
            target = dep.get("kustomizationName") if isinstance(dep, dict) else dep
            if not isinstance(target, str) or not target:
                self.deny(steps, f"{dotted(steps)} is {_shown(dep)}", "name a kustomization of this FluxConfig")
            elif target == name:
                self.deny(
                    steps, f"{dotted(steps)} names {name} itself", "remove it", "a kustomization cannot wait for itself"
                )
            elif target not in entries:
                self.deny(
                    steps,
                    f"{dotted(steps)} names {target}, which this FluxConfig does not have",
                    f"use one of {', '.join(sorted(n for n in entries if n != name)) or 'its other kustomizations'}",
                    "dependsOn names sibling kustomizations",
                )
            else:
                found.append(target)
        return found

    def cycles(self, graph: dict[str, list[str]]) -> None:
        """One finding per dependency cycle, told from its alphabetically first kustomization.

        Not map order: the API server sorts map keys, so that order differs between a file and a review.
        """
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        reported: set[frozenset[str]] = set()
        for start in sorted(graph):
            if state.get(start):
                continue
            path: list[str] = [start]
            stack = [iter(graph[start])]
            state[start] = 1
            while stack:
                nxt = next(stack[-1], None)
                if nxt is None:
                    state[path.pop()] = 2
                    stack.pop()
                elif state.get(nxt) == 1:
                    loop = path[path.index(nxt) :]
                    first = loop.index(min(loop))
                    loop = loop[first:] + loop[:first]
                    if frozenset(loop) not in reported:
                        reported.add(frozenset(loop))
                        steps = ("spec", "kustomizations", loop[0], "dependsOn")
                        self.deny(
                            steps,
                            f"dependsOn forms a cycle: {' -> '.join([*loop, loop[0]])}",
                            "remove one of these dependsOn entries",
                            "a cycle never becomes ready",
                        )
                elif not state.get(nxt):
                    state[nxt] = 1
                    path.append(nxt)
                    stack.append(iter(graph.get(nxt, [])))

    def wait(self, spec: dict[str, Any]) -> None:
        value = spec.get("reconciliationWaitDuration")
        if value is not None and (not isinstance(value, str) or iso_duration_seconds(value) is None):
            self.deny(
                ("spec", "reconciliationWaitDuration"),
                f"spec.reconciliationWaitDuration is {_shown(value)}",
                "use an ISO-8601 duration in days, hours, minutes and seconds, such as PT10M",
            )


def fluxconfig(obj: dict[str, Any], namespace: str, settings: Settings) -> Iterator[Finding]:
    """The Azure CLI's validation of a fluxConfiguration, one finding per bad field."""
    if is_fluxconfig(obj):
        yield from _Checker(obj, namespace).check()


def fluxconfig_update(
    obj: dict[str, Any], old: dict[str, Any], namespace: str, settings: Settings
) -> Iterator[Finding]:
    """``spec.scope`` and ``spec.namespace`` are immutable (as in Azure); a stored bad value may be fixed.

    Bad stored values: a scope that is not cluster or namespace, scope cluster where ``cluster-scope``
    refuses it (narrowing it to namespace is allowed), a namespace other than the object's.
    """
    if not (is_fluxconfig(obj) and is_fluxconfig(old)):
        return
    was_scope, scope = scope_of(old), scope_of(obj)
    refused = was_scope == DEFAULT_SCOPE and scope == "namespace" and not cluster_scope_allowed(settings, namespace)
    if was_scope in SCOPES and scope != was_scope and not refused:
        yield finding_at(
            FLUXCONFIG_RULE,
            obj,
            namespace,
            ("spec", "scope"),
            detail=f"spec.scope changed from '{was_scope}' to {_shown(scope)}",
            fix=f"keep {was_scope}, or delete the FluxConfig and create it anew",
            reason="spec.scope is immutable",
        )
    was_target, target = target_namespace(old, namespace), target_namespace(obj, namespace)
    if was_target == namespace and target != was_target:
        yield finding_at(
            FLUXCONFIG_RULE,
            obj,
            namespace,
            ("spec", "namespace"),
            detail=f"spec.namespace changed from '{was_target}' to {_shown(target)}",
            fix=f"keep {was_target}, or delete the FluxConfig and create it in the other namespace",
            reason="spec.namespace is immutable",
        )
