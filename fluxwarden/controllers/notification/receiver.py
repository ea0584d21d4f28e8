"""The Receiver reconciler: read the token, publish ``status.webhookPath``, as Flux's does.

Ready ``Succeeded`` "Receiver initialized for path: <path>" once the Secret has a ``token``; without
the Secret or the key, Ready=False ``TokenNotFound`` and no path (retried; a watch of Secrets'
metadata reconciles the Receiver as soon as its Secret appears or changes). A type or field
fluxwarden does not serve, and any resource outside the Receiver's namespace, stall it.
"""

from __future__ import annotations

from typing import Any

from fluxwarden.controllers.notification.api import RECEIVER, SECRET, NotificationOptions
from fluxwarden.controllers.notification.hooks import SUPPORTED, webhook_path
from fluxwarden.controllers.notification.receiver_targets import problem
from fluxwarden.controllers.runtime.controller import Context, Key, Success, Watch
from fluxwarden.controllers.runtime.errors import Failure, Stalling
from fluxwarden.controllers.runtime.kube import Kube, KubeError, NotFound
from fluxwarden.controllers.runtime.unsupported import Rule, Table

FINALIZER = "finalizers.fluxcd.io"
TOKEN_NOT_FOUND = "TokenNotFound"
TOKEN_KEY = "token"

RECEIVER_UNSUPPORTED = Table(
    "notification-controller",
    (
        Rule("spec.type", SUPPORTED, hint=f"use one of {', '.join(SUPPORTED)}"),
        Rule("spec.resourceFilter"),  # CEL over the request and each object
        Rule("spec.resources[].filter"),
        Rule("spec.oidcProviders"),  # type generic-oidc only
    ),
)


def secret_name(receiver: dict[str, Any]) -> str:
    ref = (receiver.get("spec") or {}).get("secretRef")
    return str(ref.get("name") or "") if isinstance(ref, dict) else ""


def _receivers_of_secret(new: dict[str, Any], old: dict[str, Any] | None, own: list[dict[str, Any]]) -> list[Key]:
    """The Receivers whose ``secretRef`` names a Secret that appeared, changed or went away."""
    meta = new.get("metadata") or {}
    if old is not None and meta.get("resourceVersion") == (old.get("metadata") or {}).get("resourceVersion"):
        return []
    namespace, name = meta.get("namespace"), meta.get("name")
    return [
        (str(r["metadata"]["namespace"]), str(r["metadata"]["name"]))
        for r in own
        if r["metadata"].get("namespace") == namespace and secret_name(r) == name
    ]


class ReceiverReconciler:
    name = "notification-controller"
    resource = RECEIVER
    finalizer = FINALIZER
    unsupported = RECEIVER_UNSUPPORTED

    def __init__(self, kube: Kube, options: NotificationOptions) -> None:
        self.options = options
        # Metadata only: a Secret's data never sits in this process's memory.
        self.secrets = Watch(SECRET, _receivers_of_secret, metadata_only=True)
        self.watches = [self.secrets]

    def reconcile(self, ctx: Context, obj: dict[str, Any]) -> Success:
        meta, status = obj["metadata"], obj["status"]
        found = problem(obj)
        if found is not None:
            status.pop("webhookPath", None)
            raise Stalling(*found)
        token = self._token(ctx, obj)
        path = webhook_path(token, str(meta["name"]), str(meta["namespace"]))
        status["webhookPath"] = path
        return Success(f"Receiver initialized for path: {path}")

    def finalize(self, ctx: Context, obj: dict[str, Any]) -> None:
        return None  # nothing outside the object: the server forgets it with the informer's DELETED event

    def _token(self, ctx: Context, obj: dict[str, Any]) -> bytes:
        meta, status = obj["metadata"], obj["status"]
        namespace, secret = str(meta["namespace"]), secret_name(obj)
        where = f"Receiver {namespace}/{meta['name']}"
        if not secret:
            status.pop("webhookPath", None)
            raise Stalling("InvalidSpec", f"{where}: spec.secretRef.name is required; name a Secret with a 'token' key")
        try:
            data = ctx.kube.secret_data(namespace, secret)
        except NotFound:
            status.pop("webhookPath", None)
            raise Failure(
                TOKEN_NOT_FOUND, f"Secret {namespace}/{secret} (spec.secretRef) not found; create it with a 'token' key"
            ) from None
        except KubeError as exc:
            status.pop("webhookPath", None)
            raise Failure(
                TOKEN_NOT_FOUND, f"unable to read the token from Secret {namespace}/{secret}: {exc}"
            ) from None
        if TOKEN_KEY not in data:
            status.pop("webhookPath", None)
            raise Failure(
                TOKEN_NOT_FOUND, f"Secret {namespace}/{secret} (spec.secretRef) has no '{TOKEN_KEY}' key; add one"
            )
        return data[TOKEN_KEY]
