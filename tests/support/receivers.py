"""Receivers in tests: create them, and call their webhook paths as each git host would.

The signatures are computed here with hashlib/hmac, independently of fluxwarden's checks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.notification.api import RECEIVER
from fluxwarden.controllers.notification.receiver_service import ReceiverService
from tests.support.wait import until

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


def expected_path(token: bytes, name: str, namespace: str) -> str:
    """Flux's webhook path, computed independently: ``/hook/`` + hex(sha256(token + name + namespace))."""
    return "/hook/" + hashlib.sha256(token + name.encode() + namespace.encode()).hexdigest()


def hmac_hex(algorithm: str, token: bytes, body: bytes) -> str:
    return hmac.new(token, body, getattr(hashlib, algorithm)).hexdigest()


def push_payload(repo_url: str, sha: str, branch: str = "main") -> bytes:
    """The fields of a GitHub ``push`` event that matter here (GitHub sends many more)."""
    return json.dumps(
        {
            "ref": f"refs/heads/{branch}",
            "before": "0" * 40,
            "after": sha,
            "repository": {"clone_url": repo_url, "full_name": "org/repo"},
            "pusher": {"name": "dev"},
        }
    ).encode()


def github_headers(token: bytes, body: bytes, event: str = "push") -> dict[str, str]:
    """What GitHub sends with a webhook that has a secret: both signatures, the event, a delivery id."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature": "sha1=" + hmac_hex("sha1", token, body),
        "X-Hub-Signature-256": "sha256=" + hmac_hex("sha256", token, body),
    }


def gitlab_headers(token: bytes, event: str = "Push Hook") -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Gitlab-Event": event, "X-Gitlab-Token": token.decode()}


def bitbucket_headers(token: bytes, body: bytes, event: str = "repo:refs_changed") -> dict[str, str]:
    """Bitbucket Server / Data Center: ``X-Hub-Signature: sha256=<hex>`` and the event key."""
    return {
        "Content-Type": "application/json; charset=utf-8",
        "X-Event-Key": event,
        "X-Request-Id": "a1b2c3",
        "X-Hub-Signature": "sha256=" + hmac_hex("sha256", token, body),
    }


def hmac_headers(token: bytes, body: bytes, algorithm: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Signature": f"{algorithm}=" + hmac_hex(algorithm, token, body)}


@dataclass
class Receivers:
    """Receivers, Secrets and annotations of one namespace, and the receiver server that serves them."""

    api: client.ApiClient
    namespace: str
    server: ReceiverService
    labels: dict[str, str]

    @classmethod
    def of(cls, reconcilers: Reconcilers, api: client.ApiClient, namespace: str, labels: dict[str, str]) -> Receivers:
        server = next(s for s in reconcilers.manager.services if isinstance(s, ReceiverService))
        return cls(api, namespace, server, labels)

    @property
    def url(self) -> str:
        return self.server.url

    def served(self, name: str, ready: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Wait until the server's informer cache (what requests are judged by) shows ``ready`` for ``name``.

        The API server answers a write before the watch delivers it: a request sent at once may
        still meet the previous state.
        """
        assert self.server.cache is not None
        cache = self.server.cache
        return until(lambda: cache.get((self.namespace, name)) or {}, ready, timeout=10, what=what)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def secret(self, name: str, data: dict[str, bytes]) -> None:
        encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
        client.CoreV1Api(self.api).create_namespaced_secret(
            self.namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=name), data=encoded)
        )

    def create(
        self, name: str, type_: str, resources: list[dict[str, Any]], secret: str = "token", **spec: Any
    ) -> None:
        body = {
            "apiVersion": RECEIVER.api_version,
            "kind": "Receiver",
            "metadata": {"name": name, "namespace": self.namespace, "labels": self.labels},
            "spec": {"type": type_, "secretRef": {"name": secret}, "resources": resources, **spec},
        }
        self.custom.create_namespaced_custom_object(
            RECEIVER.group, RECEIVER.version, self.namespace, RECEIVER.plural, body
        )

    def get(self, name: str, resource: Any = RECEIVER, namespace: str | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            resource.group, resource.version, namespace or self.namespace, resource.plural, name
        )
        return obj

    def patch(self, name: str, body: dict[str, Any], resource: Any = RECEIVER) -> None:
        self.custom.patch_namespaced_custom_object(
            resource.group, resource.version, self.namespace, resource.plural, name, body,
            _content_type="application/merge-patch+json",
        )  # fmt: skip

    def ready(self, name: str, timeout: float = 30) -> dict[str, Any]:
        def done(obj: dict[str, Any]) -> bool:
            ready = condition(obj, "Ready")
            current = (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
            return current and ready.get("status") == "True" and bool(obj["status"].get("webhookPath"))

        found = until(lambda: self.get(name), done, timeout=timeout, what=f"Receiver {name} Ready")
        path = found["status"]["webhookPath"]
        assert self.server.cache is not None
        cache = self.server.cache
        until(
            lambda: self.server.index.find(path, cache), lambda o: o is not None and done(o), timeout=10,
            what=f"the receiver server serving {name} at its path",
        )  # fmt: skip
        return found

    def condition_is(self, name: str, type_: str, status: str, reason: str, timeout: float = 30) -> dict[str, Any]:
        return until(
            lambda: self.get(name),
            lambda o: (condition(o, type_).get("status"), condition(o, type_).get("reason")) == (status, reason),
            timeout=timeout, what=f"Receiver {name} {type_}={status} {reason}",
        )  # fmt: skip

    def post(self, path: str, body: bytes = b"{}", headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(self.url + path, content=body, headers=headers or {}, timeout=30)

    def requested_at(self, resource: Any, name: str, namespace: str | None = None) -> str | None:
        annotations = self.get(name, resource, namespace)["metadata"].get("annotations") or {}
        value = annotations.get(REQUESTED_AT)
        return str(value) if value is not None else None


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}
