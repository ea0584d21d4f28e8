"""The HelmRelease kind (helm.toolkit.fluxcd.io/v2) and a typed view of its spec, with Flux's defaults.

Field names, defaults and reasons are those of Flux's helm-controller v1.6; an invalid spec raises
``Stalling`` naming the field.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from fluxwarden.controllers.runtime.errors import Stalling
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.runtime.spec import duration, mapping
from fluxwarden.controllers.runtime.unsupported import Rule, Table
from fluxwarden.tenancy.kinds import HELM

HELM_RELEASE = Resource(HELM, "v2", "helmreleases", "HelmRelease")
FINALIZER = "finalizers.fluxcd.io"
FIELD_MANAGER = "helm-controller"  # the controller's own writes (the HelmChart template), as Flux's
# The helm CLI's server-side apply field manager (v4 fixes it in main). Drift repair applies as it, so
# helm and the repair own the same fields and never conflict.
HELM_FIELD_MANAGER = "helm"
NAME_LABEL = "helm.toolkit.fluxcd.io/name"
NAMESPACE_LABEL = "helm.toolkit.fluxcd.io/namespace"
FORCE_AT = "reconcile.fluxcd.io/forceAt"
RESET_AT = "reconcile.fluxcd.io/resetAt"
WATCH_LABEL = "reconcile.fluxcd.io/watch"
DRIFT_ANNOTATION = "helm.toolkit.fluxcd.io/driftDetection"  # 'disabled' on an object skips it

DEFAULT_TIMEOUT = 300.0
DEFAULT_MAX_HISTORY = 5
DEFAULT_RETRY_INTERVAL = 300.0
DEPENDENCY_REQUEUE = 30.0  # Flux's --requeue-dependency default

# Fields of Flux 2.9's HelmRelease (helm-controller v1.6.4) that fluxwarden does not implement:
# setting one stalls the object (reason UnsupportedField) instead of being silently ignored.
UNSUPPORTED = Table(
    "helm-controller",
    (
        Rule("spec.kubeConfig", skip_cleanup=True),  # a remote release: never uninstall a local namesake
        Rule("spec.chartRef.kind", ("HelmChart", "OCIRepository"), hint="use a HelmChart or an OCIRepository"),
        Rule("spec.chart.spec.verify"),
        Rule("spec.healthCheckExprs"),
        Rule("spec.dependsOn[].readyExpr"),
        Rule("spec.waitStrategy"),
        Rule("spec.driftDetection.ignore"),
        Rule("spec.upgrade.preserveValues", (False,)),
        # helm's CLI installs crds/ on install only and never replaces or upgrades them.
        Rule("spec.install.crds", ("Create", "Skip"), hint="use 'Create' or 'Skip'"),
        Rule("spec.upgrade.crds", ("Skip",), hint="use 'Skip' (the default)"),
        Rule("spec.valuesFrom[].literal", (False,)),
    ),
)


def owner_labels(obj: dict[str, Any]) -> dict[str, str]:
    """The labels the post-renderer puts on every rendered object, and drift checks select by."""
    return {NAME_LABEL: obj["metadata"]["name"], NAMESPACE_LABEL: obj["metadata"]["namespace"]}


RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def release_name(obj: dict[str, Any]) -> str:
    """``spec.releaseName``, else ``[<targetNamespace>-]<name>``; over 53 characters it is shortened as Flux does."""
    spec = mapping(obj.get("spec"))
    name = str(obj["metadata"]["name"])
    if spec.get("releaseName"):
        name = str(spec["releaseName"])
    elif spec.get("targetNamespace"):
        name = f"{spec['targetNamespace']}-{name}"
    if len(name) <= 53:
        return name
    return name[:40] + "-" + hashlib.sha256(name.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Remediation:
    """``install.remediation`` or ``upgrade.remediation``: retries (negative: forever) and the strategy."""

    action: str  # install, upgrade
    retries: int
    strategy: str  # uninstall (install's only one), rollback
    remediate_last_failure: bool
    ignore_test_failures: bool | None

    def failures(self, status: dict[str, Any]) -> int:
        return int(status.get(f"{self.action}Failures") or 0)

    def count_failure(self, status: dict[str, Any]) -> None:
        status[f"{self.action}Failures"] = self.failures(status) + 1

    def exhausted(self, status: dict[str, Any]) -> bool:
        return self.retries >= 0 and self.failures(status) > self.retries


@dataclass(frozen=True)
class Retry:
    """``strategy: RetryOnFailure``: no remediation, the action is retried every ``interval``."""

    interval: float


@dataclass(frozen=True)
class HelmReleaseSpec:
    namespace: str
    name: str
    release_name: str
    target_namespace: str
    interval: float
    timeout: float
    max_history: int
    service_account: str | None
    depends_on: tuple[tuple[str, str], ...]
    drift_mode: str  # disabled, warn, enabled
    raw: dict[str, Any]

    @classmethod
    def of(cls, obj: dict[str, Any]) -> HelmReleaseSpec:
        spec = mapping(obj.get("spec"))
        namespace = str(obj["metadata"]["namespace"])
        if not spec.get("chart") and not spec.get("chartRef"):
            raise Stalling("InvalidSpec", "spec.chart or spec.chartRef must be set")
        if spec.get("chart") and spec.get("chartRef"):
            raise Stalling("InvalidSpec", "spec.chart and spec.chartRef are mutually exclusive; set one")
        interval = duration(spec, "interval", 600.0)
        drift = str(mapping(spec.get("driftDetection")).get("mode") or "disabled")
        name = release_name(obj)
        if not RELEASE_NAME.match(name):
            raise Stalling(
                "InvalidSpec",
                f"release name '{name}' (spec.releaseName, or targetNamespace-name) is not valid: use lower case "
                "letters, digits, '-' and '.', starting and ending with a letter or digit",
            )
        return cls(
            namespace=namespace,
            name=str(obj["metadata"]["name"]),
            release_name=name,
            target_namespace=str(spec.get("targetNamespace") or namespace),
            interval=interval,
            timeout=duration(spec, "timeout", DEFAULT_TIMEOUT),
            max_history=int(spec["maxHistory"]) if spec.get("maxHistory") is not None else DEFAULT_MAX_HISTORY,
            service_account=str(spec["serviceAccountName"]) if spec.get("serviceAccountName") else None,
            depends_on=tuple(
                (str(d.get("namespace") or namespace), str(d.get("name")))
                for d in spec.get("dependsOn") or []
                if isinstance(d, dict)
            ),
            drift_mode=drift,
            raw=spec,
        )

    def block(self, action: str) -> dict[str, Any]:
        """``spec.install``, ``spec.upgrade``, ``spec.test``, ``spec.rollback`` or ``spec.uninstall``."""
        return mapping(self.raw.get(action))

    def action_timeout(self, action: str) -> float:
        block = self.block(action)
        return duration(block, "timeout", self.timeout) if block.get("timeout") else self.timeout

    def remediation(self, action: str) -> Remediation:
        block = mapping(self.block(action).get("remediation"))
        retries = int(block.get("retries") or 0)
        strategy = "uninstall" if action == "install" else str(block.get("strategy") or "rollback")
        last = block.get("remediateLastFailure")
        remediate_last = bool(last) if last is not None else (action == "upgrade" and retries > 0)
        ignore = block.get("ignoreTestFailures")
        return Remediation(action, retries, strategy, remediate_last, None if ignore is None else bool(ignore))

    def retry(self, action: str) -> Retry | None:
        strategy = mapping(self.block(action).get("strategy"))
        if strategy.get("name") != "RetryOnFailure":
            return None
        return Retry(duration(strategy, "retryInterval", DEFAULT_RETRY_INTERVAL))

    @property
    def tests_enabled(self) -> bool:
        return bool(self.block("test").get("enable"))

    def ignore_test_failures(self, remediation: Remediation | None) -> bool:
        default = bool(self.block("test").get("ignoreFailures"))
        if remediation is not None and remediation.ignore_test_failures is not None:
            return remediation.ignore_test_failures
        return default

    def storage_namespace(self) -> str:
        """Where helm keeps the release: always the target namespace (the CLI ties both to ``--namespace``).

        Flux defaults ``storageNamespace`` to the HelmRelease's namespace; any value other than the
        target namespace stalls, because the release would be found in neither place by helm users.
        """
        wanted = self.raw.get("storageNamespace")
        if wanted and wanted != self.target_namespace:
            raise Stalling(
                "UnsupportedField",
                f"spec.storageNamespace '{wanted}' is not supported by fluxwarden: the helm CLI stores a release "
                f"in the namespace it installs into, so set it to the target namespace '{self.target_namespace}' "
                "or remove it, or run Flux's helm-controller for this object",
            )
        return self.target_namespace
