"""Why a reconcile stopped, as exceptions carrying a Flux condition reason and a one-line message."""

from __future__ import annotations


class ReconcileError(Exception):
    """Base class. ``reason`` is a Flux condition reason (``GitOperationFailed``, ``BuildFailed``...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = " ".join(message.split())


class Stalling(ReconcileError):
    """Retrying cannot help until the object changes (bad spec, access denied).

    ``ready`` (reason, message) keeps Ready on a cause of its own while Stalled says why retries
    stopped, as Flux's helm-controller does (Ready ``InstallFailed``, Stalled ``RetriesExceeded``).
    """

    def __init__(self, reason: str, message: str, ready: tuple[str, str] | None = None) -> None:
        super().__init__(reason, message)
        self.ready = (ready[0], " ".join(ready[1].split())) if ready else None


class Waiting(ReconcileError):
    """Retry after ``after`` seconds. ``on_another``: the wait is for another object (a source or a
    dependency not ready yet), not this one's failure, so it is announced as info, never as an error."""

    def __init__(self, reason: str, message: str, after: float, *, on_another: bool = False) -> None:
        super().__init__(reason, message)
        self.after = after
        self.on_another = on_another


class Failure(ReconcileError):
    """Anything that may succeed later (network, remote server); retried with backoff."""
