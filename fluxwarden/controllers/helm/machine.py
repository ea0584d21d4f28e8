"""The release state machine (Flux's atomic release): decide from the stored release, act, repeat.

Each turn reads the stored release and ``status.history``, names the state (absent, locked,
unmanaged, failed, out of sync, untested, drifted, in sync) and runs the one action it calls for:
install, upgrade, test, rollback, uninstall, unlock or drift correction. A reconcile runs each kind
of action at most once and stops after a remediation, as Flux's clean-release strategy does, so a
failing chart is retried at the next reconcile, not in a tight loop. The actions (:mod:`.actions`)
set ``Released``, ``Remediated``, ``TestSuccess`` and ``Drifted``; Ready is derived from them here.
"""

from __future__ import annotations

from fluxwarden.controllers.apply.applier import ApplyError
from fluxwarden.controllers.helm import history
from fluxwarden.controllers.helm.actions import (
    DRIFTED,
    KIND,
    MAX_TURNS,
    RELEASED,
    REMEDIATE,
    REMEDIATED,
    Actions,
    Request,
    State,
    active_remediation,
    active_retry,
    described,
    spec_digest,
)
from fluxwarden.controllers.helm.storage import PENDING, Release
from fluxwarden.controllers.helm.values import config_digest
from fluxwarden.controllers.runtime import conditions
from fluxwarden.controllers.runtime.controller import Success
from fluxwarden.controllers.runtime.errors import Failure, Stalling, Waiting
from fluxwarden.controllers.runtime.events import WARNING
from fluxwarden.controllers.runtime.kube import KubeError


def in_sync(release: Release, req: Request) -> str:
    """Why ``release`` differs from what the spec asks for; empty when it does not."""
    chart = release.chart
    if chart.get("name") != req.chart.name or str(chart.get("version")) != req.chart.version:
        return "release chart has changed"
    if config_digest(release.config) != req.values.digest:
        return "release config values have changed"
    return ""


class Machine(Actions):
    """The state machine for one request; owns nothing between reconciles."""

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> Success:
        done: set[str] = set()
        for _ in range(MAX_TURNS):
            state = self.determine()
            action = self.action_for(state)
            if action is None:
                return self.finish()
            kind = KIND[action]
            if kind in done:
                return self.requeue()
            self.perform(action, state)
            if kind == REMEDIATE:
                return self.after_remediation()
            done.add(kind)
        return self.requeue()

    def finish(self) -> Success:
        ok, reason, message = self.summary()
        conditions.drop(self.req.status, conditions.RECONCILING)
        if ok:
            return Success(self.secrets(message), reason=reason)
        remediation = active_remediation(self.req)
        if remediation is not None and remediation.exhausted(self.req.status):
            raise self.retries_exceeded()
        # Nothing left to do although not Ready (a failed test, no remediation): back at the interval, as Flux.
        raise Waiting(reason, self.secrets(message), self.req.spec.interval)

    def requeue(self) -> Success:
        ok, reason, message = self.summary()
        if retry := active_retry(self.req):
            raise Waiting(reason, self.secrets(message), retry.interval)
        remediation = active_remediation(self.req)
        if remediation is not None and remediation.exhausted(self.req.status):
            raise self.retries_exceeded()
        if ok:
            return Success(self.secrets(message), reason=reason)
        raise Failure(reason, self.secrets(message))

    def after_remediation(self) -> Success:
        _, reason, message = self.summary()
        if retry := active_retry(self.req):
            raise Waiting(reason, self.secrets(message), retry.interval)
        remediation = active_remediation(self.req)
        uninstall_after_upgrade = (
            remediation is not None and remediation.action == "upgrade" and (remediation.strategy == "uninstall")
        )
        if remediation is None or not remediation.exhausted(self.req.status) or uninstall_after_upgrade:
            raise Failure(reason, self.secrets(message))
        raise self.retries_exceeded()

    def retries_exceeded(self) -> Stalling:
        remediation = active_remediation(self.req)
        count = remediation.failures(self.req.status) if remediation else 0
        action = self.req.status.get("lastAttemptedReleaseAction")
        return self._stalled(f"Failed to {action} after {count} attempt(s)")

    def _ready(self) -> tuple[str, str]:
        """Ready's reason and message from the release conditions (kept when the object stalls)."""
        _, reason, message = self.summary()
        return reason, self.secrets(message)

    def _stalled(self, message: str) -> Stalling:
        """Stalled ``RetriesExceeded``; Ready keeps what the release conditions say (the last failure)."""
        return Stalling("RetriesExceeded", message, self._ready())

    # -- state ---------------------------------------------------------------------------------

    def determine(self) -> State:
        req = self.req
        latest = req.storage.latest()
        if latest is None:
            return State("absent", "no release in storage for object")
        if latest.status in PENDING:
            return State("locked", f"release with status '{latest.status}'", latest)
        current = history.latest(req.status)
        if current is None:
            if latest.status == "uninstalled":
                return State("absent", "found uninstalled release in storage", latest)
            return State("unmanaged", "found existing release in storage", latest)
        if (current.get("name"), current.get("version")) != (latest.name, latest.version):
            return State("unmanaged", "release not observed to be made for object", latest)
        if current.get("digest") != latest.digest:
            return State("unmanaged", "release digest verification failed", latest)
        if latest.status == "failed":
            return State("failed", "", latest)
        if latest.status == "uninstalled":
            return State("absent", "found uninstalled release in storage", latest)
        if latest.status != "deployed":
            raise Failure(
                "StateError", f"Could not determine release state: unexpected release status '{latest.status}'"
            )
        if why := in_sync(latest, req):
            return State("outofsync", why, latest)
        if req.obj["status"].get("observedGeneration") != req.generation and (why := self._render_changed()):
            return State("outofsync", why, latest)
        if req.spec.tests_enabled:
            if not history.tested(current):
                return State("untested", "", latest)
            remediation = active_remediation(req)
            if (
                remediation is not None
                and not req.spec.ignore_test_failures(remediation)
                and history.failed_test(current)
            ):
                return State("failed", "release has test in failed phase", latest)
        if req.spec.drift_mode in ("warn", "enabled"):
            try:
                drift = self.drift(latest, repair=False)
            except (ApplyError, KubeError) as exc:
                raise Failure(
                    "StateError", f"Could not determine release state: unable to determine cluster state: {exc}"
                ) from None
            if drift:
                return State("drifted", "", latest, tuple(drift))
        return State("insync", "", latest)

    def _render_changed(self) -> str:
        status, spec = self.req.status, self.req.spec.raw
        if (status.get("observedPostRenderersDigest") or "") != spec_digest(spec.get("postRenderers")):
            return "postrenderers digest has changed"
        if (status.get("observedCommonMetadataDigest") or "") != spec_digest(spec.get("commonMetadata")):
            return "common metadata digest has changed"
        return ""

    def action_for(self, state: State) -> str | None:
        req, status = self.req, self.req.status
        if state.name == "insync":
            if req.force:
                req.force = False
                return "upgrade"
            if conditions.get(status, REMEDIATED) and conditions.is_true({"status": status}, REMEDIATED):
                self._replace_remediated()
            self._released_in_sync()
            if req.spec.drift_mode in ("warn", "enabled"):
                self.mark(DRIFTED, False, "NoDriftDetected", "No drift detected against the cluster state")
            else:
                conditions.drop(status, DRIFTED)
            return None
        if state.name == "locked":
            return "unlock"
        if state.name == "absent":
            return self._release_action("install")
        if state.name == "unmanaged":
            assert state.latest is not None
            # Adoption (a release Flux or a person made): observe it instead of upgrading an equal release.
            # A release whose history another controller wrote (in another storage namespace) is one too:
            # its digests are that controller's, so only our snapshot of the same version replaces its own.
            first_look = history.latest(status) is None or bool(req.adopted_from)
            if first_look and state.latest.status == "deployed" and not in_sync(state.latest, req) and not req.force:
                history.record(status, history.snapshot(state.latest))
                self._inventory(state.latest)
                self._observe_render()
                if not conditions.is_true({"status": status}, RELEASED):
                    adopted = f"Helm release {state.latest.display} with chart {state.latest.chart_display} adopted"
                    self.mark(RELEASED, True, "ReleaseAdopted", adopted + ": in sync with the spec, not upgraded")
                return self.action_for(self.determine())
            status.pop("history", None)
            req.force = False
            return "upgrade"
        if state.name == "outofsync":
            return self._release_action("upgrade")
        if state.name == "drifted":
            assert state.latest is not None
            current = history.latest(status) or {}
            summary = "\n".join(str(c) for c in state.drift)
            message = (
                f"Cluster state of release {current.get('namespace')}/{current.get('name')}.v{current.get('version')} "
                f"has drifted from the desired state:\n{summary}"
            )
            self.event(WARNING, "DriftDetected", message, current)
            self.mark(DRIFTED, True, "DriftDetected", message)
            return "correct" if req.spec.drift_mode == "enabled" else None
        if state.name == "untested":
            if conditions.is_true({"status": status}, REMEDIATED):
                self._replace_remediated()
            return "test"
        if state.name == "failed":
            return self._for_failed(state)
        raise Failure("StateError", f"unknown release state {state.name}")

    def _release_action(self, action: str) -> str:
        """``action`` (install, upgrade) unless its retries are exhausted; a force request overrides once."""
        if self.req.spec.remediation(action).exhausted(self.req.status) and not self.req.force:
            raise self.retries_exceeded_for(action)
        self.req.force = False
        return action

    def retries_exceeded_for(self, action: str) -> Stalling:
        count = self.req.spec.remediation(action).failures(self.req.status)
        return self._stalled(f"Failed to {action} after {count} attempt(s)")

    def _replace_remediated(self) -> None:
        current = history.latest(self.req.status) or {}
        conditions.drop(self.req.status, REMEDIATED)
        self.mark(
            RELEASED,
            True,
            "UpgradeSucceeded",
            f"Helm upgrade succeeded for release {described(current)}",
        )

    def _released_in_sync(self) -> None:
        """An in-sync release after a failed attempt (the spec went back): Released says it succeeded."""
        released = conditions.get(self.req.status, RELEASED) or {}
        title = {"InstallFailed": "install", "UpgradeFailed": "upgrade"}.get(str(released.get("reason")))
        if released.get("status") == "True" or title is None:
            return
        current = history.latest(self.req.status) or {}
        message = f"Helm {title} succeeded for release {described(current)}"
        self.mark(RELEASED, True, f"{title.capitalize()}Succeeded", message)

    def _for_failed(self, state: State) -> str | None:
        req, status = self.req, self.req.status
        if active_retry(req) is not None:
            return "upgrade"
        remediation = active_remediation(req)
        if remediation is None or remediation.failures(status) <= 0:
            return "upgrade"  # the conditions of the last failure changed (new spec, reset): try again
        if req.force:
            req.force = False
            return "upgrade"
        if remediation.exhausted(status) and not remediation.remediate_last_failure:
            raise self.retries_exceeded()
        if remediation.strategy == "rollback":
            target = history.previous_deployed(status, req.spec.ignore_test_failures(remediation))
            stored = {r.version: r for r in req.storage.history()}
            if target is not None and target.get("version") in stored:
                if stored[int(target["version"])].digest != target.get("digest"):
                    return "upgrade"  # the target was changed in storage: upgrading is the sound remediation
                return "rollback"
            missing = "Failed to perform remediation: missing target release for rollback"
            raise Stalling("MissingRollbackTarget", missing, self._ready())
        return "uninstall"
