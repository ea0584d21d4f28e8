"""An S3 bucket through boto3: Flux's ``generic`` provider (and ``aws``/``gcp`` with static keys).

``spec.endpoint`` is ``host[:port]`` as Flux's minio client takes it: https unless ``spec.insecure``.
Index etags are the ETag without its quotes, as minio-go reports them. Path-style addressing
except on amazonaws.com. Credentials are only ever signed into requests to that endpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import IO, Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError, SSLError

from fluxwarden.controllers.source.bucket_client import CHUNK, BucketError, ObjectGone, TooLarge, copy_limited, mask
from fluxwarden.controllers.source.bucket_index import Listed
from fluxwarden.controllers.source.bucket_tls import TlsFiles

DEFAULT_REGION = "us-east-1"
# One session for every client: a new session parses the service model again (~0.2 s, against ~10 ms).
# Making clients from a shared session is not thread-safe, using them is: the lock covers creation only.
_SESSION = boto3.session.Session()
_SESSION_LOCK = threading.Lock()
DENIED = ("AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken")


def _etag(raw: str | None) -> str:
    return (raw or "").strip('"')


class S3Bucket:
    def __init__(
        self, endpoint: str, bucket: str, *, access_key: str | None, secret_key: str | None, region: str,
        insecure: bool, tls: TlsFiles, timeout: float, concurrency: int, credentials_hint: str,
    ) -> None:  # fmt: skip
        self.url = f"{'http' if insecure else 'https'}://{endpoint}"
        self.bucket = bucket
        self._secrets = tuple(s for s in (access_key, secret_key) if s)
        self._hint = credentials_hint
        self._tls = tls
        virtual = endpoint.split(":")[0].endswith(".amazonaws.com")
        config = Config(
            region_name=region or DEFAULT_REGION,
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=concurrency,
            s3={"addressing_style": "virtual" if virtual else "path"},
            client_cert=tls.client_cert,
            user_agent_extra="fluxwarden-source-controller",
            **({"signature_version": UNSIGNED} if access_key is None else {}),
        )
        with _SESSION_LOCK:
            self._client: Any = _SESSION.client(
                "s3", endpoint_url=self.url, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                verify=tls.verify if not insecure else None, config=config,
            )  # fmt: skip

    def list(self, prefix: str) -> Iterator[Listed]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        try:
            for page in pages:
                for item in page.get("Contents") or []:
                    yield Listed(str(item["Key"]), _etag(item.get("ETag")), int(item.get("Size") or 0))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "list") from None

    def head(self, key: str) -> str | None:
        try:
            found = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(exc, f"read object '{key}' of") from None
        except BotoCoreError as exc:
            raise self._error(exc, f"read object '{key}' of") from None
        return _etag(found.get("ETag"))

    def download(self, key: str, out: IO[bytes], max_size: int) -> str:
        try:
            got = self._client.get_object(Bucket=self.bucket, Key=key)
            if int(got.get("ContentLength") or 0) > max_size:
                got["Body"].close()
                raise TooLarge()
            try:
                copy_limited(got["Body"].iter_chunks(CHUNK), out, max_size)
            finally:
                got["Body"].close()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchKey":
                raise ObjectGone() from None
            raise self._error(exc, f"get object '{key}' of") from None
        except BotoCoreError as exc:
            raise self._error(exc, f"get object '{key}' of") from None
        return _etag(got.get("ETag"))

    def close(self) -> None:
        self._client.close()
        self._tls.close()

    def _error(self, exc: Exception, doing: str) -> BucketError:
        where = f"bucket '{self.bucket}' at {self.url}"
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")
            if code == "NoSuchBucket":
                return BucketError(f"bucket '{self.bucket}' not found at {self.url}; check spec.bucketName")
            if code in DENIED or code == "403":
                return BucketError(f"failed to {doing} {where}: access denied ({code}); {self._hint}")
            text = mask(str(error.get("Message") or ""), self._secrets)
            return BucketError(f"failed to {doing} {where}: {code} {text}".rstrip())
        if isinstance(exc, SSLError):
            return BucketError(
                f"failed to {doing} {where}: TLS verification failed; add the CA that signed the server's "
                "certificate as ca.crt to the Secret named by spec.certSecretRef"
            )
        if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
            return BucketError(f"failed to {doing} {where}: timed out; check spec.endpoint or raise spec.timeout")
        return BucketError(f"failed to {doing} {where}: {mask(str(exc), self._secrets)}")
