"""Assemble the reconciler process: storage, artifact server, the chosen controllers, the manager."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fluxwarden.controllers.fluxconfig.api import FluxConfigOptions
from fluxwarden.controllers.fluxconfig.fluxconfig import FluxConfigReconciler
from fluxwarden.controllers.helm.helmrelease import HelmOptions, HelmReleaseReconciler
from fluxwarden.controllers.kustomize.kustomization import KustomizationReconciler, KustomizeOptions
from fluxwarden.controllers.notification.api import NotificationOptions
from fluxwarden.controllers.notification.receiver import ReceiverReconciler
from fluxwarden.controllers.notification.services import notification_services
from fluxwarden.controllers.runtime.controller import Controller
from fluxwarden.controllers.runtime.kube import Kube
from fluxwarden.controllers.runtime.manager import Manager, ManagerOptions
from fluxwarden.controllers.runtime.service import Service
from fluxwarden.controllers.source.bucket import BucketReconciler
from fluxwarden.controllers.source.gitrepository import DEFAULT_MAX_SIZE, GitRepositoryReconciler
from fluxwarden.controllers.source.helmchart import HelmChartReconciler
from fluxwarden.controllers.source.helmrepository import HelmRepositoryReconciler
from fluxwarden.controllers.source.oci.ocirepository import OCIRepositoryReconciler
from fluxwarden.controllers.source.storage import ArtifactServer, Storage

logger = logging.getLogger("fluxwarden.controllers")


@dataclass(frozen=True)
class ControllersOptions:
    controllers: tuple[str, ...] = ("source",)
    storage_path: Path = Path("/data")
    storage_host: str = "0.0.0.0"
    storage_port: int = 9090
    storage_adv_url: str | None = None  # how other controllers reach artifacts; default http://<host>:<port>
    max_source_size: int = DEFAULT_MAX_SIZE
    kustomize: KustomizeOptions = field(default_factory=KustomizeOptions)
    helm: HelmOptions = field(default_factory=HelmOptions)
    fluxconfig: FluxConfigOptions = field(default_factory=FluxConfigOptions)
    notification: NotificationOptions = field(default_factory=NotificationOptions)
    manager: ManagerOptions = field(default_factory=ManagerOptions)


@dataclass
class Reconcilers:
    """A wired set: the manager and the artifact server (already bound) it depends on."""

    manager: Manager
    artifacts: ArtifactServer
    storage: Storage

    def start(self) -> None:
        self.manager.start()

    def service_url(self, name: str) -> str:
        """Where a running service listens (``event-server``, ``receiver-server``); KeyError if not run."""
        return next(s.url for s in self.manager.services if s.name == name)

    def stop(self) -> None:
        self.manager.stop()
        self.artifacts.stop()


def _source(kube: Kube, storage: Storage, options: ControllersOptions) -> list[Controller]:
    return [
        GitRepositoryReconciler(storage, options.max_source_size),
        HelmRepositoryReconciler(storage, options.max_source_size),
        HelmChartReconciler(storage, options.max_source_size),
        BucketReconciler(storage, options.max_source_size),
        OCIRepositoryReconciler(storage, options.max_source_size),
    ]


def _kustomize(kube: Kube, storage: Storage, options: ControllersOptions) -> list[Controller]:
    work_dir = Path(tempfile.gettempdir()) / "fluxwarden-kustomize"  # not under the served storage
    return [KustomizationReconciler(kube, options.kustomize, work_dir, options.max_source_size)]


def _helm(kube: Kube, storage: Storage, options: ControllersOptions) -> list[Controller]:
    work_dir = Path(tempfile.mkdtemp(prefix="fluxwarden-helm-"))  # private (0700): kubeconfig, values, charts
    return [HelmReleaseReconciler(kube, options.helm, work_dir, options.max_source_size)]


def _fluxconfig(kube: Kube, storage: Storage, options: ControllersOptions) -> list[Controller]:
    return [FluxConfigReconciler(kube, options.fluxconfig)]


def _notification(kube: Kube, storage: Storage, options: ControllersOptions) -> list[Controller]:
    return [ReceiverReconciler(kube, options.notification)]


CONTROLLERS: dict[str, Callable[[Kube, Storage, ControllersOptions], list[Controller]]] = {
    "source": _source,
    "kustomize": _kustomize,
    "helm": _helm,
    "notification": _notification,
    "fluxconfig": _fluxconfig,
}

# Servers beside the reconcilers: the notification controller's event and receiver servers.
SERVICES: dict[str, Callable[[Kube, ControllersOptions], list[Service]]] = {
    "notification": lambda kube, options: notification_services(kube, options.notification, options.manager),
}


def build(kube: Kube, options: ControllersOptions) -> Reconcilers:
    """Bind the artifact server (its address is part of every artifact URL) and wire the controllers.

    Unknown controller names raise ``ValueError``; nothing is reconciled until ``start()``.
    """
    unknown = [name for name in options.controllers if name not in CONTROLLERS]
    if unknown:
        raise ValueError(f"unknown controllers {', '.join(unknown)}; choose from {', '.join(CONTROLLERS)}")
    options.storage_path.mkdir(parents=True, exist_ok=True)
    artifacts = ArtifactServer(Storage(options.storage_path, ""), options.storage_host, options.storage_port)
    artifacts.start()
    local = artifacts.url.replace("0.0.0.0", "127.0.0.1")
    storage = Storage(options.storage_path, options.storage_adv_url or local)
    controllers = [c for name in options.controllers for c in CONTROLLERS[name](kube, storage, options)]
    services = [s for name in options.controllers if name in SERVICES for s in SERVICES[name](kube, options)]
    return Reconcilers(Manager(kube, controllers, options.manager, services), artifacts, storage)
