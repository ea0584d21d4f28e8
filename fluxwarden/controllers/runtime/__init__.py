"""A tiny controller runtime that reconcilers plug into, Flux-style.

Exceptions (``errors.py``)::

    ReconcileError            a reconcile did not succeed; carries a Flux reason and a one-line message
    ├── Stalling              no retry until the spec changes (Stalled=True)
    ├── Waiting               retry after ``after`` seconds (e.g. a dependency is not ready)
    └── Failure               retried with exponential backoff
    KubeError                 the API server said no (adapter in ``kube.py``)
    ├── NotFound, Conflict, Forbidden, Gone

A controller is an object with ``kind``, ``finalizer``, ``reconcile(ctx, obj) -> Success`` and
``finalize(ctx, obj)``; :class:`~fluxwarden.controllers.runtime.manager.Manager` does the rest: list
and watch, a de-duplicating queue, workers, backoff, interval requeue, finalizers, suspend,
``requestedAt``, unsupported spec fields (``unsupported.py``), conditions, one status write per
reconcile, events and metrics.

Why not kopf: kopf is event-driven (create/update/delete handlers given a diff) and keeps its own
progress in annotations. Flux's contract is level-based: reconcile the whole object, requeue at
``spec.interval``, honour ``reconcile.fluxcd.io/requestedAt``, write ``observedGeneration`` and
kstatus conditions to the status subresource, and never write when nothing changed. Bending kopf
to that (timers for intervals, suppressing its annotations, de-duplicating its events) would cost
more than this runtime: a queue, an informer, a prologue and a manager, about 750 lines.
"""
