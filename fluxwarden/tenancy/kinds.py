"""The Flux kinds fluxwarden knows: groups, served versions and the fields that reference objects.

This table is the one place that says which field of which kind may point into another namespace;
the rules, the mutation, the CLI and the reconciler all read it. See TENANCY.md, "Reference fields".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fluxwarden.tenancy.values import text

SOURCE = "source.toolkit.fluxcd.io"
KUSTOMIZE = "kustomize.toolkit.fluxcd.io"
HELM = "helm.toolkit.fluxcd.io"
NOTIFICATION = "notification.toolkit.fluxcd.io"
IMAGE = "image.toolkit.fluxcd.io"
FLUXCONFIG = "clusterconfig.azure.com"

# Flux v1 (end of life): refused with a migration message.
FLUX_V1_GROUPS = frozenset({"helm.fluxcd.io", "flux.weave.works"})

WILDCARD = "*"


@dataclass(frozen=True)
class RefField:
    """A field that names another object, possibly in another namespace.

    ``path`` walks the object from its root; ``*`` stands for every item of a list.
    ``implied_kind`` is the referenced kind when the reference itself carries no ``kind``.
    ``rule`` is the rule that judges it: ``cross-namespace-ref`` (blocked by Flux) or
    ``cross-namespace-dependency`` (allowed by Flux, blocked only when opted in).
    ``since`` is the first version of the group that has the field, when not all do.
    """

    path: tuple[str, ...]
    noun: str = "source"
    rule: str = "cross-namespace-ref"
    implied_kind: str | None = None
    since: str | None = None


@dataclass(frozen=True)
class FluxKind:
    """One kind: its group, every version Flux served (oldest first) and its reference fields."""

    group: str
    kind: str
    plural: str
    versions: tuple[str, ...]
    refs: tuple[RefField, ...] = ()
    applies_as_service_account: bool = False

    @property
    def current_version(self) -> str:
        return self.versions[-1]

    def is_deprecated(self, version: str) -> bool:
        return version in self.versions and version != self.current_version

    def refs_for(self, version: str) -> tuple[RefField, ...]:
        order = {v: i for i, v in enumerate(self.versions)}
        here = order.get(version, len(self.versions) - 1)
        return tuple(r for r in self.refs if r.since is None or order.get(r.since, 0) <= here)


_DEPENDS_ON = RefField(("spec", "dependsOn", WILDCARD), noun="dependency", rule="cross-namespace-dependency")
_SOURCE_VERSIONS = ("v1beta1", "v1beta2", "v1")
_IMAGE_VERSIONS = ("v1beta1", "v1beta2", "v1")

KINDS: tuple[FluxKind, ...] = (
    FluxKind(SOURCE, "GitRepository", "gitrepositories", _SOURCE_VERSIONS),
    FluxKind(SOURCE, "HelmRepository", "helmrepositories", _SOURCE_VERSIONS),
    FluxKind(SOURCE, "HelmChart", "helmcharts", _SOURCE_VERSIONS),
    FluxKind(SOURCE, "Bucket", "buckets", _SOURCE_VERSIONS),
    FluxKind(SOURCE, "OCIRepository", "ocirepositories", ("v1beta2", "v1")),
    FluxKind(
        KUSTOMIZE,
        "Kustomization",
        "kustomizations",
        ("v1beta1", "v1beta2", "v1"),
        refs=(RefField(("spec", "sourceRef")), _DEPENDS_ON),
        applies_as_service_account=True,
    ),
    FluxKind(
        HELM,
        "HelmRelease",
        "helmreleases",
        ("v2beta1", "v2beta2", "v2"),
        refs=(
            RefField(("spec", "chart", "spec", "sourceRef")),
            RefField(("spec", "chartRef"), since="v2beta2"),
            _DEPENDS_ON,
        ),
        applies_as_service_account=True,
    ),
    FluxKind(
        NOTIFICATION,
        "Alert",
        "alerts",
        ("v1beta1", "v1beta2", "v1beta3"),
        refs=(RefField(("spec", "eventSources", WILDCARD), noun="event source"),),
    ),
    FluxKind(NOTIFICATION, "Provider", "providers", ("v1beta1", "v1beta2", "v1beta3")),
    FluxKind(
        NOTIFICATION,
        "Receiver",
        "receivers",
        ("v1beta1", "v1beta2", "v1"),
        refs=(RefField(("spec", "resources", WILDCARD), noun="resource"),),
    ),
    FluxKind(IMAGE, "ImageRepository", "imagerepositories", _IMAGE_VERSIONS),
    FluxKind(
        IMAGE,
        "ImagePolicy",
        "imagepolicies",
        _IMAGE_VERSIONS,
        refs=(RefField(("spec", "imageRepositoryRef"), noun="image repository", implied_kind="ImageRepository"),),
    ),
    FluxKind(
        IMAGE,
        "ImageUpdateAutomation",
        "imageupdateautomations",
        _IMAGE_VERSIONS,
        refs=(RefField(("spec", "sourceRef"), implied_kind="GitRepository"),),
    ),
    FluxKind(FLUXCONFIG, "FluxConfig", "fluxconfigs", ("v1beta1",)),
)

_BY_GROUP_KIND = {(k.group, k.kind): k for k in KINDS}
FLUX_GROUPS = frozenset(k.group for k in KINDS)


def split_api_version(api_version: str) -> tuple[str, str]:
    """``"source.toolkit.fluxcd.io/v1"`` -> ``("source.toolkit.fluxcd.io", "v1")``; core -> ``("", v)``."""
    group, _, version = api_version.rpartition("/")
    return group, version


def lookup(group: str, kind: str) -> FluxKind | None:
    """The kind's entry, or ``None`` for a kind fluxwarden does not judge."""
    return _BY_GROUP_KIND.get((group, kind))


def kind_of(obj: dict[str, Any]) -> FluxKind | None:
    group, _ = split_api_version(text(obj.get("apiVersion", "")))
    return lookup(group, text(obj.get("kind", "")))
