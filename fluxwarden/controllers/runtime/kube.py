"""The controllers' one adapter to the API server: typed calls in, plain dicts out, our errors.

``ApiException`` and urllib3 errors stop here and become :class:`KubeError` subclasses, so the
runtime and the reconcilers never see a foreign exception.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
JSON = "application/json"


class KubeError(Exception):
    """The API server refused or could not be reached; ``status`` is the HTTP code (0 if none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


class Forbidden(KubeError):
    pass


class Gone(KubeError):
    """The watch's resourceVersion is too old: list again."""


_BY_STATUS: dict[int, type[KubeError]] = {404: NotFound, 409: Conflict, 403: Forbidden, 410: Gone}


def translate(exc: Exception, what: str) -> KubeError:
    """One :class:`KubeError` with the API server's own message, for any client-side exception."""
    if isinstance(exc, ApiException):
        detail = exc.reason or ""
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(exc.body or "{}").get("message") or detail
        status = exc.status or 0
        return _BY_STATUS.get(status, KubeError)(f"{what}: {detail}", status)
    return KubeError(f"{what}: {exc.__class__.__name__}: {exc}")


@dataclass(frozen=True)
class Resource:
    """A namespaced custom resource kind: where its objects live on the API."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


def watch_event(res: Resource, event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(type, object)`` of one watch event; an ERROR event raises (:class:`Gone` when expired)."""
    obj = event.get("object") or {}
    if event.get("type") == "ERROR":
        code = int(obj.get("code", 0) or 0)
        raise (Gone if code == 410 else KubeError)(f"watch {res.plural}: {obj.get('message')}", code)
    return str(event.get("type")), obj


def key_of(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


class Kube:
    """Calls the runtime and controllers need, on one ``ApiClient``."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    def get(self, res: Resource, namespace: str, name: str) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                res.group, res.version, namespace, res.plural, name
            )
            return obj
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise translate(exc, f"get {res.kind} {namespace}/{name}") from None

    def list(
        self, res: Resource, namespace: str | None = None, label_selector: str | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """All objects and the list's resourceVersion (to watch from)."""
        selector = {"label_selector": label_selector} if label_selector else {}
        try:
            if namespace:
                found = self.custom.list_namespaced_custom_object(
                    res.group, res.version, namespace, res.plural, **selector
                )
            else:
                found = self.custom.list_cluster_custom_object(res.group, res.version, res.plural, **selector)
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise translate(exc, f"list {res.plural}") from None
        return list(found.get("items") or []), str(found.get("metadata", {}).get("resourceVersion", ""))

    def watch(
        self,
        res: Resource,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        timeout: int = 300,
    ) -> Generator[tuple[str, dict[str, Any]], None, None]:
        """``(type, object)`` events from ``resource_version``; raises :class:`Gone` when it expired."""
        stream = watch.Watch()
        kwargs: dict[str, Any] = {
            **({"label_selector": label_selector} if label_selector else {}),
            "resource_version": resource_version,
            "timeout_seconds": timeout,
            "allow_watch_bookmarks": True,
            "_request_timeout": (10, timeout + 30),
        }
        try:
            if namespace:
                events = stream.stream(
                    self.custom.list_namespaced_custom_object, res.group, res.version, namespace, res.plural, **kwargs
                )
            else:
                events = stream.stream(
                    self.custom.list_cluster_custom_object, res.group, res.version, res.plural, **kwargs
                )
            for event in events:
                yield watch_event(res, event)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise translate(exc, f"watch {res.plural}") from None
        finally:
            stream.stop()

    def patch_status(self, res: Resource, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.custom.patch_namespaced_custom_object_status(
                res.group, res.version, namespace, res.plural, name, {"status": status}, _content_type=MERGE_PATCH
            )
            return obj
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise translate(exc, f"update status of {res.kind} {namespace}/{name}") from None

    def patch(
        self, res: Resource, namespace: str, name: str, body: Any, content_type: str = MERGE_PATCH
    ) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.custom.patch_namespaced_custom_object(
                res.group, res.version, namespace, res.plural, name, body, _content_type=content_type
            )
            return obj
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise translate(exc, f"patch {res.kind} {namespace}/{name}") from None

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
        what: str | None = None,
    ) -> dict[str, Any]:
        """Any REST call (for kinds known only at run time); the decoded JSON answer."""
        label = what or f"{method} {path}"
        try:
            data = self.send(method, path, query=query, body=body, content_type=content_type).read()
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise translate(exc, label) from None
        decoded: dict[str, Any] = json.loads(data) if data else {}
        return decoded

    def send(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
        accept: str = JSON,
        timeout: float = 120,
    ) -> Any:
        """The raw response of any REST call, not yet read (a watch streams it); ``ApiException`` on >= 400."""
        _, url, headers, serialized, _ = self.api.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": accept},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(
            method, url, header_params=headers, body=serialized, _request_timeout=(10, timeout)
        )
        if response.status >= 400:
            raise ApiException(status=response.status, reason=response.reason, body=response.read())
        return response

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes]:
        """A Secret's decoded data; the values never leave the caller's hands (no logging here)."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise translate(exc, f"get Secret {namespace}/{name}") from None
        data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        data.update({k: v.encode() for k, v in (getattr(secret, "string_data", None) or {}).items()})
        return data

    def config_map_data(self, namespace: str, name: str) -> dict[str, str]:
        try:
            found = self.core.read_namespaced_config_map(name, namespace)
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise translate(exc, f"get ConfigMap {namespace}/{name}") from None
        return dict(found.data or {})

    def create_event(self, namespace: str, body: client.CoreV1Event) -> None:
        try:
            self.core.create_namespaced_event(namespace, body)
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise translate(exc, f"create Event in {namespace}") from None
