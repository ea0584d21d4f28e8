"""The release actions of the state machine: install, upgrade, test, rollback, uninstall, unlock and
drift correction, each one helm run (or none) whose outcome lands in ``Released``, ``Remediated``,
``TestSuccess`` or ``Drifted``, ``status.history`` and the failure counters, with Flux's messages.

The request a reconcile builds (:class:`Request`) and the conditions helpers live here too; the
decisions (which action, when to stop) are :mod:`.machine`'s.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fluxwarden.controllers.apply import inventory
from fluxwarden.controllers.apply.applier import Applier, ApplyError, Change
from fluxwarden.controllers.apply.drift import Applied
from fluxwarden.controllers.apply.redact import Redactor
from fluxwarden.controllers.helm import commands, history
from fluxwarden.controllers.helm.api import (
    DRIFT_ANNOTATION,
    HELM_FIELD_MANAGER,
    HelmReleaseSpec,
    Remediation,
    Retry,
    owner_labels,
)
from fluxwarden.controllers.helm.chart import Chart
from fluxwarden.controllers.helm.runner import Helm, HelmError, Identity
from fluxwarden.controllers.helm.storage import Release, ReleaseStorage, StorageError
from fluxwarden.controllers.helm.values import Values, config_digest
from fluxwarden.controllers.runtime import conditions
from fluxwarden.controllers.runtime.controller import Context
from fluxwarden.controllers.runtime.errors import Failure
from fluxwarden.controllers.runtime.events import NORMAL, WARNING
from fluxwarden.controllers.runtime.kube import Kube, KubeError
from fluxwarden.controllers.runtime.restmapper import RestMapper

RELEASED = "Released"
REMEDIATED = "Remediated"
TEST_SUCCESS = "TestSuccess"
DRIFTED = "Drifted"

RELEASE, REMEDIATE, TEST, UNLOCK, DRIFT = "release", "remediate", "test", "unlock", "drift"
KIND = {"install": RELEASE, "upgrade": RELEASE, "rollback": REMEDIATE, "uninstall": REMEDIATE, "test": TEST,
        "unlock": UNLOCK, "correct": DRIFT}  # fmt: skip
MAX_TURNS = 8


@dataclass
class Request:
    """What one reconcile of one HelmRelease works with."""

    obj: dict[str, Any]
    spec: HelmReleaseSpec
    chart: Chart
    values: Values
    storage: ReleaseStorage
    identity: Identity
    tenant: Kube
    force: bool  # an unhandled ``forceAt``: one release action even when in sync or out of retries
    post_render: Callable[[Path], tuple[list[str], dict[str, str], Path]]  # args, env, the plugin's error file
    applied: dict[str, Applied] = field(default_factory=dict)
    # The storage namespace the last writer of status recorded, when not ours: another controller (upstream
    # Flux) kept the release there, and its status.history digests are its own, not comparable with ours.
    adopted_from: str = ""

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.obj["status"]
        return status

    @property
    def generation(self) -> int | None:
        generation = self.obj["metadata"].get("generation")
        return int(generation) if generation is not None else None


@dataclass(frozen=True)
class State:
    name: str  # absent, locked, unmanaged, failed, outofsync, untested, drifted, insync
    reason: str = ""
    latest: Release | None = None
    drift: tuple[Change, ...] = ()


def active_remediation(req: Request) -> Remediation | None:
    action = req.status.get("lastAttemptedReleaseAction")
    if action not in ("install", "upgrade") or req.spec.retry(str(action)) is not None:
        return None
    return req.spec.remediation(str(action))


def active_retry(req: Request) -> Retry | None:
    action = req.status.get("lastAttemptedReleaseAction")
    return req.spec.retry(str(action)) if action in ("install", "upgrade") else None


class Actions:
    """Runs release actions for one request; :class:`.machine.Machine` decides which."""

    def __init__(self, ctx: Context, req: Request, helm: Helm, mapper: RestMapper, secrets: Redactor) -> None:
        self.ctx = ctx
        self.req = req
        self.helm = helm
        self.mapper = mapper
        self.secrets = secrets

    # -- conditions --------------------------------------------------------------------------

    def mark(self, type_: str, value: bool | None, reason: str, message: str) -> None:
        status = self.req.status
        if value is None:
            conditions.set_condition(status, type_, False, reason, message, self.req.generation)
            for condition in status.get("conditions") or []:
                if condition.get("type") == type_:
                    condition["status"] = "Unknown"
            return
        conditions.set_condition(status, type_, value, reason, message, self.req.generation)

    def event(self, kind: str, reason: str, message: str, snap: dict[str, Any] | None = None) -> None:
        metadata = {}
        if snap:
            metadata = {"helm.toolkit.fluxcd.io/revision": str(snap.get("chartVersion")),
                        "helm.toolkit.fluxcd.io/token": str(snap.get("configDigest"))}  # fmt: skip
        self.ctx.events.record(self.req.obj, kind, reason, self.secrets(message), metadata)

    def summary(self) -> tuple[bool, str, str]:
        """Ready from Remediated (False when present), then TestSuccess (when tests count), then Released."""
        status = self.req.status
        spec = self.req.spec
        order = [REMEDIATED, RELEASED]
        if spec.tests_enabled and not spec.block("test").get("ignoreFailures"):
            order = [REMEDIATED, TEST_SUCCESS, RELEASED]
        if not spec.tests_enabled:
            conditions.drop(status, TEST_SUCCESS)
        for type_ in order:
            found = conditions.get(status, type_)
            if found is None:
                continue
            ok = found.get("status") == "True" and type_ != REMEDIATED
            return ok, str(found.get("reason")), str(found.get("message"))
        return False, "Progressing", "reconciliation in progress"

    # -- actions -------------------------------------------------------------------------------

    def perform(self, action: str, state: State) -> None:
        timeout = self.req.spec.action_timeout(action) if KIND[action] in (RELEASE, REMEDIATE, TEST) else 0
        message = f"Running '{action}' action" + (f" with timeout of {go_duration(timeout)}" if timeout else "")
        status, generation = self.req.status, self.req.generation
        conditions.set_condition(status, conditions.RECONCILING, True, "Progressing", message, generation)
        if KIND[action] == RELEASE:
            self.mark(conditions.READY, None, "Progressing", message)
        self._show_progress()
        getattr(self, f"_{action}")(state)

    def _show_progress(self) -> None:
        """Write the conditions before a helm run that may take minutes, as Flux does."""
        self.ctx.progress(self.req.obj, {"conditions": self.req.status["conditions"]})

    def _run(self, args: list[str], action: str, env: dict[str, str] | None = None) -> None:
        try:
            self.helm.run(args, self.req.identity, self.req.spec.action_timeout(action), env, self.secrets)
        finally:
            self.req.storage.changed()  # helm wrote records, or may have: read them again

    def _values_file(self, scratch: Path) -> Path:
        """The merged values as JSON (valid YAML, every string quoted, so helm types nothing anew)."""
        path = scratch / "values.yaml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(self.req.values.merged, out, default=str)
        return path

    def _release(self, action: str) -> None:
        req, status = self.req, self.req.status
        before = req.storage.latest()
        status["lastAttemptedReleaseAction"] = action
        if action == "install":
            status.pop("history", None)
        conditions.drop(status, TEST_SUCCESS)
        conditions.drop(status, REMEDIATED)
        with self.helm.scratch() as scratch_dir:
            scratch = Path(scratch_dir)
            values = self._values_file(scratch)
            post_render, env, plugin_error = req.post_render(scratch)
            if action == "install":
                replace = before is not None and before.status in ("uninstalled", "failed")
                args = commands.install(req.spec, req.chart.path, values, post_render, replace)
            else:
                method = before.apply_method if before is not None else None
                args = commands.upgrade(req.spec, req.chart.path, values, post_render, method)
            started = time.monotonic()
            try:
                self._run(args, action, env)
                error = None
            except HelmError as exc:
                error = exc
                if plugin_error.exists() and (said := plugin_error.read_text().strip()):
                    error = HelmError(self.secrets(" ".join(said.split())))  # helm drops a plugin's stderr
            status["lastAttemptedReleaseActionDuration"] = go_duration(time.monotonic() - started)
        after = req.storage.latest()
        made = after is not None and (
            before is None or (after.version, after.status) != (before.version, before.status)
        )
        if made and after is not None:
            history.record(status, history.snapshot(after, action))
            self._inventory(after)
        req.applied.clear()  # helm wrote the objects: the drift baseline starts again
        title = "install" if action == "install" else "upgrade"
        if error is not None:
            message = (
                f"Helm {title} failed for release {req.spec.target_namespace}/{req.spec.release_name} "
                f"with chart {req.chart.display}: {error.message}"
            )
            status["failures"] = int(status.get("failures") or 0) + 1
            reason = "InstallFailed" if action == "install" else "UpgradeFailed"
            self.mark(RELEASED, False, reason, message)
            self.event(WARNING, reason, message)
            if not made:
                raise Failure(reason, self.secrets(message))  # nothing was recorded: retried, not counted
            req.spec.remediation(action).count_failure(status)
            return
        assert after is not None
        current = history.latest(status) or history.snapshot(after, action)
        message = f"Helm {title} succeeded for release {described(current)}"
        reason = "InstallSucceeded" if action == "install" else "UpgradeSucceeded"
        self.mark(RELEASED, True, reason, message)
        if req.spec.tests_enabled:
            self.mark(
                TEST_SUCCESS,
                None,
                "AwaitingTests",
                f"Helm release {described(current)} is awaiting tests",
            )
        if req.spec.retry(action) is not None:
            clear_failures(status)
        self._observe_render()
        self.event(NORMAL, reason, message, current)

    def _install(self, state: State) -> None:
        self._release("install")

    def _upgrade(self, state: State) -> None:
        self._release("upgrade")

    def _observe_render(self) -> None:
        status, spec = self.req.status, self.req.spec.raw
        for key, name in (
            ("observedPostRenderersDigest", "postRenderers"),
            ("observedCommonMetadataDigest", "commonMetadata"),
        ):
            if spec.get(name) is None:
                status.pop(key, None)
            else:
                status[key] = spec_digest(spec.get(name))

    def _test(self, state: State) -> None:
        req, status = self.req, self.req.status
        current = history.latest(status) or {}
        before = req.storage.latest()
        try:
            self._run(commands.test(req.spec), "test")
            error = None
        except HelmError as exc:
            error = exc
        latest = req.storage.latest()
        ran = latest is not None and (before is None or latest.digest != before.digest)  # helm recorded the hooks
        if error is not None and not ran:  # nothing ran (the API failing, say): retried, never counted
            raise Failure(
                "TestFailed", self.secrets(f"Helm test failed for release {full_name(current)}: {error.message}")
            )
        if latest is not None and latest.version == current.get("version"):
            filters = [f for f in req.spec.block("test").get("filters") or [] if isinstance(f, dict)]
            snap = history.snapshot(latest, current.get("action"), tested=True, filters=filters)
            history.record(status, snap)
            current = snap
        if error is None:
            hooks = len(current.get("testHooks") or {})
            summary = (
                "no test hooks"
                if hooks == 0
                else f"{hooks} test {'hook' if hooks == 1 else 'hooks'} completed successfully"
            )
            message = f"Helm test succeeded for release {described(current)}: {summary}"
            self.mark(TEST_SUCCESS, True, "TestSucceeded", message)
            self.event(NORMAL, "TestSucceeded", message, current)
            return
        message = f"Helm test failed for release {described(current)}: {error.message}"
        self.mark(TEST_SUCCESS, False, "TestFailed", message)
        self.event(WARNING, "TestFailed", message, current)
        status["failures"] = int(status.get("failures") or 0) + 1
        remediation = active_remediation(req)
        if remediation is not None and not req.spec.ignore_test_failures(remediation):
            remediation.count_failure(status)

    def _rollback(self, state: State) -> None:
        req, status = self.req, self.req.status
        remediation = active_remediation(req)
        ignore = req.spec.ignore_test_failures(remediation) if remediation else False
        target = history.previous_deployed(status, ignore) or {}
        try:
            latest = req.storage.latest()
            method = latest.apply_method if latest is not None else None
            self._run(commands.rollback(req.spec, int(target.get("version") or 0), method), "rollback")
            error = None
        except HelmError as exc:
            error = exc
        latest = req.storage.latest()
        current = history.latest(status) or {}
        if latest is not None and latest.version != current.get("version"):
            history.record(status, history.snapshot(latest, "rollback"))
            self._inventory(latest)
        req.applied.clear()
        if error is None:
            message = f"Helm rollback to previous release {described(target)} succeeded"
            self.mark(REMEDIATED, True, "RollbackSucceeded", message)
            self.event(NORMAL, "RollbackSucceeded", message, target)
            return
        message = f"Helm rollback to previous release {described(target)} failed: {error.message}"
        status["failures"] = int(status.get("failures") or 0) + 1
        self.mark(REMEDIATED, False, "RollbackFailed", message)
        self.event(WARNING, "RollbackFailed", message, target)

    def _uninstall(self, state: State) -> None:
        req, status = self.req, self.req.status
        current = history.latest(status) or {}
        try:
            self._run(commands.uninstall(req.spec), "uninstall")
            error = None
        except HelmError as exc:
            error = exc
        if error is None:
            message = f"Helm uninstall remediation for release {described(current)} succeeded"
            self.mark(REMEDIATED, True, "UninstallSucceeded", message)
            self.event(NORMAL, "UninstallSucceeded", message, current)
            latest = req.storage.latest()
            if latest is not None and latest.version == current.get("version"):
                history.record(status, history.snapshot(latest, current.get("action")))
            return
        where = f"{described(current)}"
        message = f"Helm uninstall remediation for release {where} failed: {error.message}"
        status["failures"] = int(status.get("failures") or 0) + 1
        self.mark(REMEDIATED, False, "UninstallFailed", message)
        self.event(WARNING, "UninstallFailed", message, current)

    def _unlock(self, state: State) -> None:
        assert state.latest is not None
        latest = state.latest
        req = self.req
        where = f"{latest.display} with chart {latest.chart_display} in {latest.status} state"
        try:
            req.storage.mark_failed(latest, f"Release unlocked from stale '{latest.status}' state")
        except StorageError as exc:
            failed = f"Unlock of Helm release {where} failed: {exc}"
            self.mark(RELEASED, False, "PendingRelease", failed)
            raise Failure("PendingRelease", self.secrets(failed)) from None
        message = f"Unlocked Helm release {where}"
        unlocked = req.storage.latest()
        current = history.latest(req.status)
        if unlocked is not None and current is not None and current.get("version") == unlocked.version:
            history.record(req.status, history.snapshot(unlocked, current.get("action")))
        self.mark(RELEASED, False, "PendingRelease", message)
        self.event(NORMAL, "PendingRelease", message)

    def _correct(self, state: State) -> None:
        assert state.latest is not None
        try:
            changes = self.drift(state.latest, repair=True)
        except (ApplyError, KubeError) as exc:
            message = f"Failed to correct cluster state of release {state.latest.display}: {exc}"
            self.event(WARNING, "DriftCorrectionFailed", message)
            raise Failure("DriftCorrectionFailed", self.secrets(message)) from None
        moved = [str(c) for c in changes if c.action in ("created", "configured")]
        if moved:
            self.event(
                NORMAL, "DriftCorrected",
                f"Cluster state of release {state.latest.display} has been corrected:\n" + "\n".join(moved),
                history.latest(self.req.status),
            )  # fmt: skip

    def _inventory(self, release: Release) -> None:
        """``status.inventory``: the objects of the release's manifest, in Flux's id format."""
        inventory.write(self.req.status, [inventory.Entry.of(o) for o in self.objects(release, all_objects=True)])

    # -- drift ---------------------------------------------------------------------------------

    def objects(self, release: Release, all_objects: bool = False) -> list[dict[str, Any]]:
        """The release's manifest as objects, each with its namespace (helm puts unset ones in the release's).

        Objects annotated ``helm.toolkit.fluxcd.io/driftDetection: disabled`` are left out unless ``all_objects``.
        """
        found = []
        try:
            documents = list(yaml.safe_load_all(release.manifest))
        except yaml.YAMLError:
            return []  # helm wrote it; a manifest it cannot have written is nothing to compare
        for doc in documents:
            if not isinstance(doc, dict) or not doc.get("kind"):
                continue
            annotations = (doc.get("metadata") or {}).get("annotations") or {}
            if not all_objects and str(annotations.get(DRIFT_ANNOTATION, "")).lower() == "disabled":
                continue
            meta = doc.setdefault("metadata", {})
            # What helm sets on every object it applies (not in the manifest), as Flux's diff adds it too:
            # without it a dry-run as helm's field manager would drop it, and every object look drifted.
            meta["labels"] = {**(meta.get("labels") or {}), "app.kubernetes.io/managed-by": "Helm"}
            meta["annotations"] = {
                **(meta.get("annotations") or {}),
                "meta.helm.sh/release-name": release.name,
                "meta.helm.sh/release-namespace": release.namespace,
            }
            try:
                namespaced = self.mapper.resource_for(str(doc.get("apiVersion")), str(doc["kind"])).namespaced
            except KubeError:
                namespaced = True
            if namespaced and not meta.get("namespace"):
                meta["namespace"] = release.namespace
            found.append(doc)
        return found

    def drift(self, release: Release, repair: bool) -> list[Change]:
        """What of the release differs from the cluster (``removed``, ``changed``); with ``repair``, re-applied."""
        owner = owner_labels(self.req.obj)
        applier = Applier(self.req.tenant, self.mapper, owner, HELM_FIELD_MANAGER, repair=repair)
        changes = applier.apply_all(self.objects(release), self.req.applied, False)
        return [c for c in changes if c.action not in ("unchanged", "skipped")]


def go_duration(seconds: float) -> str:
    """A Go ``time.Duration`` string (``1m2.5s``, ``850ms``), as Kubernetes' metav1.Duration is written."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(round(seconds, 3), 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def spec_digest(value: Any) -> str:
    """The digest of a spec field whose change must trigger an upgrade (post-renderers, common metadata)."""
    return "" if value is None else config_digest({"value": value})


def described(snap: dict[str, Any]) -> str:
    """``<ns>/<name>.v<N> with chart <chart>@<version>``, as Flux's messages name a release."""
    return f"{full_name(snap)} with chart {chart_name(snap)}"


def full_name(snap: dict[str, Any]) -> str:
    return f"{snap.get('namespace')}/{snap.get('name')}.v{snap.get('version')}"


def chart_name(snap: dict[str, Any]) -> str:
    return f"{snap.get('chartName')}@{snap.get('chartVersion')}"


def clear_failures(status: dict[str, Any]) -> None:
    for key in ("failures", "installFailures", "upgradeFailures"):
        status.pop(key, None)
