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
``requestedAt``, conditions, one status write per reconcile, events and metrics.
"""
