"""The HelmRelease kind, its labels and annotations, as Flux's helm-controller v1.6 names them."""

from __future__ import annotations

from fluxwarden.controllers.runtime.kube import Resource

HELM_RELEASE = Resource("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease")
FINALIZER = "finalizers.fluxcd.io"
FIELD_MANAGER = "helm-controller"
NAME_LABEL = "helm.toolkit.fluxcd.io/name"
NAMESPACE_LABEL = "helm.toolkit.fluxcd.io/namespace"
FORCE_AT = "reconcile.fluxcd.io/forceAt"
RESET_AT = "reconcile.fluxcd.io/resetAt"
WATCH_LABEL = "reconcile.fluxcd.io/watch"
