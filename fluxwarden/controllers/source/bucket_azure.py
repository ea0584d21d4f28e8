"""An Azure Blob container through azure-storage-blob: Flux's ``azure`` provider with a shared key or SAS.

The account name comes from ``<account>.blob.core.windows.net`` as in Flux, or, for a path-style
endpoint such as Azurite's ``https://127.0.0.1:10000/<account>``, from the first path segment. A
``sasKey`` is merged into the endpoint's query (the key's values win), as Flux does.

Index etags: Flux records the ETag each download returns (the quoted header value), which replaces
what the listing gave, so its stored revision is over quoted ETags; the listing's ETag quoted is the
same value, so a listing alone gives that revision and an unchanged container downloads nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.storage.blob import BlobServiceClient, ExponentialRetry

from fluxwarden.controllers.source.bucket_client import BucketError, ObjectGone, TooLarge, copy_limited, mask
from fluxwarden.controllers.source.bucket_index import Listed
from fluxwarden.controllers.source.bucket_tls import TlsFiles

USER_AGENT = "fluxwarden-source-controller"
GET_SIZE = 1 << 20  # the SDK buffers one request's body: keep it small for bounded memory
DENIED = ("AuthorizationFailure", "AuthenticationFailed", "AuthorizationPermissionMismatch",
          "AuthorizationResourceTypeMismatch", "InvalidAuthenticationInfo")  # fmt: skip


def _etag(raw: str | None) -> str:
    value = raw or ""
    return value if value.startswith('"') else f'"{value}"'


def account_name(endpoint: str) -> str | None:
    """``<account>`` of ``https://<account>.blob.core.windows.net`` or of ``https://host:port/<account>``."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = False
    labels = host.split(".")
    if not is_ip and len(labels) > 2:
        return labels[0]
    segment = parts.path.strip("/").split("/")[0]
    return segment or None


def with_sas(endpoint: str, sas: str) -> str:
    """The endpoint with the SAS token's query values merged in (the token's win)."""
    parts = urlsplit(endpoint)
    values = dict(parse_qsl(parts.query, keep_blank_values=True))
    values.update(parse_qsl(sas.strip().removeprefix("?"), keep_blank_values=True))
    return urlunsplit(parts._replace(query=urlencode(values)))


def _code(exc: AzureError) -> str | None:
    code = getattr(exc, "error_code", None)  # set by azure-storage-blob on its HttpResponseErrors
    code = getattr(code, "value", code)  # a StorageErrorCode enum member, or the server's own string
    return str(code) if code else None


class AzureBucket:
    def __init__(
        self, endpoint: str, container: str, *, account_key: str | None, sas: str | None, tls: TlsFiles,
        timeout: float, credentials_hint: str,
    ) -> None:  # fmt: skip
        self.url = urlunsplit(urlsplit(endpoint)._replace(query=""))
        self.container = container
        self._secrets = tuple(s for s in (account_key, sas) if s)
        self._hint = credentials_hint
        self._tls = tls
        credential: Any = None
        account_url = endpoint
        if account_key:
            name = account_name(endpoint)
            if not name:
                raise BucketError(
                    f"cannot tell the storage account from spec.endpoint '{self.url}'; use "
                    "https://<account>.blob.core.windows.net or https://host:port/<account>"
                )
            credential = {"account_name": name, "account_key": account_key}
        elif sas:
            account_url = with_sas(endpoint, sas)
        service = BlobServiceClient(
            account_url, credential=credential, connection_verify=tls.verify, connection_cert=tls.client_cert,
            connection_timeout=timeout, read_timeout=timeout,
            retry_policy=ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=2),
            max_single_get_size=GET_SIZE, max_chunk_get_size=GET_SIZE, user_agent=USER_AGENT,
        )  # fmt: skip
        self._client = service.get_container_client(container)

    def list(self, prefix: str) -> Iterator[Listed]:
        try:
            for blob in self._client.list_blobs(name_starts_with=prefix or None):
                yield Listed(str(blob.name), _etag(blob.etag), int(blob.size or 0))
        except AzureError as exc:
            raise self._error(exc, "list") from None

    def head(self, key: str) -> str | None:
        try:
            properties = self._client.get_blob_client(key).get_blob_properties()
        except ResourceNotFoundError as exc:
            if _code(exc) == "BlobNotFound" or _code(exc) is None:
                return None
            raise self._error(exc, f"read blob '{key}' of") from None
        except AzureError as exc:
            raise self._error(exc, f"read blob '{key}' of") from None
        return _etag(properties.etag)

    def download(self, key: str, out: IO[bytes], max_size: int) -> str:
        try:
            stream = self._client.get_blob_client(key).download_blob(max_concurrency=1)
            if stream.size > max_size:
                raise TooLarge()
            copy_limited(stream.chunks(), out, max_size)
        except ResourceNotFoundError as exc:
            if _code(exc) in ("BlobNotFound", None):
                raise ObjectGone() from None
            raise self._error(exc, f"get blob '{key}' of") from None
        except AzureError as exc:
            raise self._error(exc, f"get blob '{key}' of") from None
        return _etag(stream.properties.etag)

    def close(self) -> None:
        self._client.close()
        self._tls.close()

    def _error(self, exc: AzureError, doing: str) -> BucketError:
        where = f"container '{self.container}' at {self.url}"
        if isinstance(exc, HttpResponseError):
            code = str(_code(exc) or exc.status_code or "")
            if code == "ContainerNotFound":
                return BucketError(f"bucket '{self.container}' not found at {self.url}; check spec.bucketName")
            if code in DENIED or exc.status_code in (401, 403):
                return BucketError(f"failed to {doing} {where}: access denied ({code}); {self._hint}")
            return BucketError(f"failed to {doing} {where}: {code} (HTTP {exc.status_code})")
        if isinstance(exc, ServiceRequestError):
            text = str(exc)
            if "CERTIFICATE_VERIFY_FAILED" in text or "SSLError" in text:
                return BucketError(
                    f"failed to {doing} {where}: TLS verification failed; add the CA that signed the server's "
                    "certificate as ca.crt to the Secret named by spec.certSecretRef"
                )
            if "timed out" in text.lower():
                return BucketError(f"failed to {doing} {where}: timed out; check spec.endpoint or raise spec.timeout")
            return BucketError(f"failed to {doing} {where}: cannot connect; check spec.endpoint")
        return BucketError(f"failed to {doing} {where}: {mask(exc.__class__.__name__, self._secrets)}")
