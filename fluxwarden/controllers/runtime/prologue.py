"""The fixed sequence every reconcile runs, written once (Flux's reconcile prologue).

get (NotFound: done) -> deleting: finalize, drop the finalizer -> add the finalizer -> suspended:
stop -> a spec field fluxwarden does not implement: Stalled (``UnsupportedField``), else the
controller's work -> record ``requestedAt`` -> derive Ready -> write status once, and only if it
changed. The result says when to come back.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from fluxwarden.controllers.runtime import conditions, unsupported
from fluxwarden.controllers.runtime.controller import Cache, Context, Controller, Success, Watch
from fluxwarden.controllers.runtime.durations import parse_duration
from fluxwarden.controllers.runtime.errors import Failure, ReconcileError, Stalling, Waiting
from fluxwarden.controllers.runtime.events import NORMAL, WARNING, EventRecorder
from fluxwarden.controllers.runtime.kube import JSON_PATCH, Kube, KubeError, NotFound
from fluxwarden.controllers.runtime.metrics import ControllerMetrics

logger = logging.getLogger("fluxwarden.controllers")

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
DEFAULT_INTERVAL = 600.0
JITTER = 0.05  # Flux's --interval-jitter-percentage default


@dataclass(frozen=True)
class Requeue:
    """What the worker does next with the key: nothing, later, or with backoff."""

    after: float | None = None  # seconds; None with backoff=False means do not requeue
    backoff: bool = False


DONE = Requeue()


def interval_of(obj: dict[str, Any]) -> float:
    spec = obj.get("spec") or {}
    try:
        return parse_duration(str(spec.get("interval"))) if spec.get("interval") else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL


def jittered(seconds: float) -> float:
    return seconds * random.uniform(1 - JITTER, 1 + JITTER)


def requested_at(obj: dict[str, Any]) -> str | None:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(REQUESTED_AT)
    return str(value) if value else None


@dataclass
class Runtime:
    """What the prologue needs besides the controller: the API, events, metrics."""

    kube: Kube
    events: EventRecorder
    metrics: ControllerMetrics
    caches: dict[Watch, Cache] = field(default_factory=dict)  # the controller's watches, by declaration


def _finalizer_patch(obj: dict[str, Any], finalizer: str, add: bool) -> list[dict[str, Any]] | None:
    meta = obj.get("metadata") or {}
    current: list[str] = list(meta.get("finalizers") or [])
    version = {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")}
    if add:
        if finalizer in current:
            return None
        if not current:
            return [version, {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}]
        return [version, {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}]
    if finalizer not in current:
        return None
    return [version, {"op": "remove", "path": f"/metadata/finalizers/{current.index(finalizer)}"}]


def _status_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch from ``old`` to ``new`` status: changed keys, and None for removed ones."""
    patch: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
    patch.update({k: None for k in old if k not in new})
    return patch


def run_once(controller: Controller, runtime: Runtime, namespace: str, name: str) -> Requeue:
    """Reconcile one object by key; never raises for the object's own problems."""
    res = controller.resource
    log = logging.LoggerAdapter(logger, {"controller": controller.name})
    try:
        obj = runtime.kube.get(res, namespace, name)
    except NotFound:
        runtime.metrics.forget(res.kind, namespace, name)
        return DONE
    ctx = Context(runtime.kube, runtime.events, log, res, caches=runtime.caches)
    meta = obj.get("metadata") or {}

    static = getattr(controller, "static", None)
    if static is not None and static(obj):
        return _make_static(controller, runtime, ctx, obj)

    if meta.get("deletionTimestamp"):
        if controller.finalizer in (meta.get("finalizers") or []):
            try:
                _finalize(controller, runtime, ctx, obj)
            except ReconcileError as exc:  # the cleanup failed: say so on the object, keep the finalizer, retry
                return _cleanup_failed(runtime, ctx, obj, exc)
            except KubeError as exc:  # the API server refused or failed a call of the cleanup: the same
                return _cleanup_failed(runtime, ctx, obj, Failure("CleanupFailed", str(exc)))
            patch = _finalizer_patch(obj, controller.finalizer, add=False)
            if patch:
                runtime.kube.patch(res, namespace, name, patch, JSON_PATCH)
        runtime.metrics.forget(res.kind, namespace, name)
        return DONE

    patch = _finalizer_patch(obj, controller.finalizer, add=True)
    if patch:
        obj = runtime.kube.patch(res, namespace, name, patch, JSON_PATCH)

    suspended = bool((obj.get("spec") or {}).get("suspend"))
    runtime.metrics.suspended.labels(res.kind, name, namespace).set(1 if suspended else 0)
    if suspended and not getattr(controller, "reconciles_suspended", False):  # FluxConfig passes it on
        log.info("%s %s/%s is suspended", res.kind, namespace, name)
        return DONE

    return _reconcile(controller, runtime, ctx, obj)


def _make_static(controller: Controller, runtime: Runtime, ctx: Context, obj: dict[str, Any]) -> Requeue:
    """An object the controller only holds data for (Flux's OCI HelmRepository): no finalizer, no status.

    As Flux's migration to static: what an earlier reconcile stored is removed, then the finalizer and
    the whole status; nothing is written once both are gone, and nothing is requeued.
    """
    res, meta = controller.resource, obj["metadata"]
    namespace, name = meta.get("namespace", ""), meta["name"]
    if (obj.get("spec") or {}).get("suspend") and not meta.get("deletionTimestamp"):
        return DONE
    if controller.finalizer in (meta.get("finalizers") or []):
        controller.finalize(ctx, obj)
        patch = _finalizer_patch(obj, controller.finalizer, add=False)
        if patch:
            runtime.kube.patch(res, namespace, name, patch, JSON_PATCH)
    status = obj.get("status") or {}
    if status:
        with contextlib.suppress(NotFound):
            runtime.kube.patch_status(res, namespace, name, dict.fromkeys(status))
    runtime.metrics.forget(res.kind, namespace, name)
    return DONE


def _cleanup_failed(runtime: Runtime, ctx: Context, obj: dict[str, Any], error: ReconcileError) -> Requeue:
    """A cleanup that failed (retried with backoff), or that waits for something (polled at its pace)."""
    meta = obj["metadata"]
    status = copy.deepcopy(obj.get("status") or {})
    before = conditions.get(status, conditions.READY) or {}
    conditions.summarize(status, "retrying", error.reason, error.message, meta.get("generation"))
    waiting = isinstance(error, Waiting)
    requeue = Requeue(error.after) if isinstance(error, Waiting) else Requeue(backoff=True)
    if waiting and before.get("message") == error.message and before.get("status") == "False":
        return requeue  # said already: no second event or write
    if waiting:
        ctx.log.info("cleanup of %s/%s: %s", meta.get("namespace"), meta["name"], error.message)
    else:
        ctx.log.warning("cleanup of %s/%s failed: %s", meta.get("namespace"), meta["name"], error.message)
    runtime.events.record(obj, NORMAL if waiting else WARNING, error.reason, error.message, {})
    ctx.progress(obj, {"conditions": status["conditions"]})  # best effort: the retry tells the rest
    return requeue


def _unsupported(controller: Controller, obj: dict[str, Any]) -> unsupported.Finding | None:
    """The first spec field ``obj`` sets that ``controller`` does not implement."""
    table: unsupported.Table | None = getattr(controller, "unsupported", None)
    return unsupported.find(obj, table) if table else None


def _finalize(controller: Controller, runtime: Runtime, ctx: Context, obj: dict[str, Any]) -> None:
    """The controller's cleanup, unless the object asks for a deletion behaviour fluxwarden lacks."""
    found = _unsupported(controller, obj)
    if found and found.rule.skip_cleanup:
        message = f"deleted without cleanup, nothing was removed: {found.message}"
        meta = obj["metadata"]
        ctx.log.warning("%s %s/%s %s", controller.resource.kind, meta.get("namespace"), meta.get("name"), message)
        runtime.events.record(obj, WARNING, unsupported.REASON, message, {})
        return
    controller.finalize(ctx, obj)


def _reconcile(controller: Controller, runtime: Runtime, ctx: Context, obj: dict[str, Any]) -> Requeue:
    res = controller.resource
    meta = obj["metadata"]
    namespace, name, generation = meta.get("namespace", ""), meta["name"], meta.get("generation")
    # ``obj`` was just read for this reconcile and is ours to change: keep one copy of the status as read.
    original = copy.deepcopy(obj.get("status") or {})
    status: dict[str, Any] = obj.setdefault("status", {})

    started = time.perf_counter()
    runtime.metrics.in_progress.labels(res.kind).inc()
    try:
        if found := _unsupported(controller, obj):  # before the work: never Ready while a field is ignored
            raise Stalling(unsupported.REASON, found.message)
        success: Success | None = controller.reconcile(ctx, obj)
        error: ReconcileError | None = None
    except ReconcileError as exc:
        success, error = None, exc
    except KubeError as exc:
        success, error = None, Failure("ReconciliationFailed", str(exc))
    except Exception as exc:  # a bug in a controller must not kill the worker
        ctx.log.exception("reconcile of %s %s/%s crashed", res.kind, namespace, name)
        success, error = None, Failure("InternalError", f"{exc.__class__.__name__}: {exc}")
    finally:
        runtime.metrics.in_progress.labels(res.kind).dec()
        runtime.metrics.duration.labels(res.kind, name, namespace).observe(time.perf_counter() - started)

    if success is not None:
        conditions.summarize(status, "succeeded", success.reason, success.message, generation)
        requeue = Requeue(success.requeue_after if success.requeue_after is not None else jittered(interval_of(obj)))
    elif isinstance(error, Stalling):
        conditions.summarize(status, "stalled", error.reason, error.message, generation)
        if error.ready is not None:
            conditions.set_condition(status, conditions.READY, False, *error.ready, generation)
        requeue = DONE
    elif isinstance(error, Waiting):
        conditions.summarize(status, "retrying", error.reason, error.message, generation)
        requeue = Requeue(error.after)
    else:
        assert error is not None
        conditions.summarize(status, "retrying", error.reason, error.message, generation)
        requeue = Requeue(backoff=True)

    if generation is not None:
        status["observedGeneration"] = generation
    if (handled := requested_at(obj)) is not None:
        status["lastHandledReconcileAt"] = handled

    # A dependency or source not ready yet is not this object's failure: info, as Flux (never an error page).
    _announce(runtime.events, obj, original, status, quiet=isinstance(error, Waiting) and error.on_another)
    patch = _status_patch({**original, **ctx.written}, status)  # the server has what progress() wrote
    if patch:
        try:
            runtime.kube.patch_status(res, namespace, name, patch)
        except NotFound:  # deleted during the reconcile: no series may outlive it
            runtime.metrics.forget(res.kind, namespace, name)
            return DONE
    runtime.metrics.record_conditions(res.kind, namespace, name, status)
    runtime.metrics.results.labels(controller.name, "success" if success else "error").inc()
    return requeue


def _announce(
    events: EventRecorder, obj: dict[str, Any], old: dict[str, Any], new: dict[str, Any], quiet: bool = False
) -> None:
    """An event when Ready changes status or message: a new revision, a new failure, a recovery.

    The revision is the one this reconcile worked on (a source's artifact, or the revision a
    Kustomization or HelmRelease attempted), so a failure names the commit that failed.
    """
    before, after = conditions.get(old, conditions.READY), conditions.get(new, conditions.READY)
    if after is None:
        return
    if before and (before.get("status"), before.get("message")) == (after.get("status"), after.get("message")):
        return
    kind = NORMAL if after.get("status") == "True" or quiet else WARNING
    revision = (
        (new.get("artifact") or {}).get("revision")
        or new.get("lastAttemptedRevision")
        or new.get("lastAppliedRevision")
    )
    group = str(obj.get("apiVersion", "")).split("/")[0]
    metadata = {f"{group}/revision": str(revision)} if revision else {}
    events.record(obj, kind, str(after.get("reason")), str(after.get("message")), metadata)
