"""Jobs finished through the status subresource, as the Job controller would finish them.

A bare kube-apiserver runs no controller-manager, so a Job never runs and helm's hook wait (kstatus:
``Complete=True`` is Current, ``Failed=True`` is Failed; helm v4 internal/statusreaders) would time
out. The apiserver (1.34, pkg/registry/batch/job/strategy.go) accepts a terminal condition only as
the controller writes it: ``Complete`` after ``SuccessCriteriaMet``, with ``completionTime``;
``Failed`` after ``FailureTarget``; both with ``startTime``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any, Self

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.helm_charts import OUTCOME

COMPLETE = "Complete"
FAILED = "Failed"
NEVER = "Never"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(type_: str, reason: str, message: str, now: str) -> dict[str, str]:
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }


def finished_status(outcome: str, now: str | None = None) -> dict[str, Any]:
    """The status the Job controller writes when a one-pod Job (backoffLimit 0) succeeds or fails."""
    now = now or _now()
    if outcome == COMPLETE:
        message = "Reached expected number of succeeded pods"
        return {
            "startTime": now,
            "completionTime": now,
            "active": 0,
            "succeeded": 1,
            "conditions": [
                _condition("SuccessCriteriaMet", "CompletionsReached", message, now),
                _condition("Complete", "CompletionsReached", message, now),
            ],
        }
    if outcome == FAILED:
        message = "Job has reached the specified backoff limit"
        return {
            "startTime": now,
            "active": 0,
            "failed": 1,
            "conditions": [
                _condition("FailureTarget", "BackoffLimitExceeded", message, now),
                _condition("Failed", "BackoffLimitExceeded", message, now),
            ],
        }
    raise ValueError(f"outcome must be {COMPLETE} or {FAILED}, not {outcome!r}")


def finish(api: client.ApiClient, namespace: str, name: str, outcome: str) -> None:
    """Write ``outcome`` (``Complete`` or ``Failed``) into Job ``namespace/name``'s status."""
    client.BatchV1Api(api).patch_namespaced_job_status(
        name,
        namespace,
        {"status": finished_status(outcome)},
        _content_type="application/merge-patch+json",
    )


def is_finished(job: client.V1Job) -> bool:
    return any(c.type in (COMPLETE, FAILED) and c.status == "True" for c in (job.status.conditions or []))


class JobDriver:
    """Finish every Job labelled :data:`OUTCOME` as the label says (``Never``: leave it running).

    A background thread polls all namespaces; ``finished`` records ``(namespace, name, outcome)``.
    ``overrides[namespace] = outcome`` overrules the label there: the environment a hook needed got fixed.
    """

    def __init__(self, api: client.ApiClient, interval: float = 0.2) -> None:
        self.api = api
        self.interval = interval
        self.finished: list[tuple[str, str, str]] = []
        self.overrides: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-driver", daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def outcomes(self, namespace: str) -> list[tuple[str, str]]:
        """``(name, outcome)`` of the Jobs finished in ``namespace``, in order."""
        return [(name, outcome) for ns, name, outcome in list(self.finished) if ns == namespace]

    def count(self, namespace: str, name: str, outcome: str) -> int:
        """How many times Job ``namespace/name`` was finished as ``outcome`` (helm recreates hook Jobs)."""
        return self.outcomes(namespace).count((name, outcome))

    def _run(self) -> None:
        batch = client.BatchV1Api(self.api)
        while not self._stop.wait(self.interval):
            try:
                jobs = batch.list_job_for_all_namespaces(label_selector=OUTCOME).items
            except (ApiException, OSError):
                continue  # the apiserver restarting, say: try again at the next tick
            for job in jobs:
                outcome = self.overrides.get(job.metadata.namespace) or (job.metadata.labels or {}).get(OUTCOME)
                if outcome not in (COMPLETE, FAILED) or is_finished(job):
                    continue
                # Recorded before the patch: helm may see the outcome and return before the patch's
                # response reaches this thread, and a test reads ``finished`` as soon as helm returns.
                entry = len(self.finished)
                self.finished.append((job.metadata.namespace, job.metadata.name, outcome))
                try:
                    finish(self.api, job.metadata.namespace, job.metadata.name, outcome)
                except ApiException as error:
                    del self.finished[entry]
                    if error.status in (404, 409):
                        continue  # deleted or replaced by helm meanwhile
                    raise
