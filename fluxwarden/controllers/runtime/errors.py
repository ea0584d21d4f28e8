"""Why a reconcile stopped, as exceptions carrying a Flux condition reason and a one-line message."""

from __future__ import annotations


class ReconcileError(Exception):
    """Base class. ``reason`` is a Flux condition reason (``GitOperationFailed``, ``BuildFailed``...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = " ".join(message.split())


class Stalling(ReconcileError):
    """Retrying cannot help until the object changes (bad spec, access denied)."""


class Waiting(ReconcileError):
    """Not an error of this object: retry after ``after`` seconds (a dependency is not ready yet)."""

    def __init__(self, reason: str, message: str, after: float) -> None:
        super().__init__(reason, message)
        self.after = after


class Failure(ReconcileError):
    """Anything that may succeed later (network, remote server); retried with backoff."""
