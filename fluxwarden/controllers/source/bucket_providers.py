"""Which client a Bucket's ``provider`` and Secret ask for, following Flux's ``createBucketProvider``.

- ``generic``, ``aws``, ``gcp`` with ``accesskey``/``secretkey``: S3 (boto3). ``generic`` without a
  Secret is anonymous (unsigned requests, never ambient credentials).
- ``azure`` with ``accountKey`` (shared key) or ``sasKey``: Azure Blob. Flux's precedence puts a
  service principal or managed identity (``clientId``...) first: those, like ``aws``/``gcp`` without
  keys, ``gcp``'s ``serviceaccount`` JSON and an ``azure`` Bucket without a Secret, need a token
  service fluxwarden cannot reach and stall with ``UnsupportedField``.

Raises ``Stalling`` for a spec that cannot work, ``BucketError`` for Secret data that cannot (Flux
reports that as ``AuthenticationFailed`` and retries).
"""

from __future__ import annotations

from fluxwarden.controllers.runtime import unsupported
from fluxwarden.controllers.runtime.errors import Stalling
from fluxwarden.controllers.source.bucket_api import BucketSpec
from fluxwarden.controllers.source.bucket_azure import AzureBucket
from fluxwarden.controllers.source.bucket_client import BucketClient, BucketError
from fluxwarden.controllers.source.bucket_s3 import S3Bucket
from fluxwarden.controllers.source.bucket_tls import TlsFiles

_IDENTITY_KEYS = ("clientId", "tenantId", "clientSecret", "clientCertificate")
_RUN_FLUX = "or run Flux's source-controller for this object"


def _unsupported(what: str, fix: str) -> Stalling:
    return Stalling(unsupported.REASON, f"{what} is not supported by fluxwarden yet; {fix}, {_RUN_FLUX}")


def make_client(
    spec: BucketSpec, namespace: str, secret: dict[str, bytes] | None, cert: dict[str, bytes] | None,
    concurrency: int,
) -> BucketClient:  # fmt: skip
    ref = f"secret '{namespace}/{spec.secret_name}'"
    tls = TlsFiles.from_secret(f"secret '{namespace}/{spec.cert_secret_name}'", cert) if cert else TlsFiles()
    try:
        if spec.provider == "azure":
            return _azure(spec, ref, secret, tls)
        return _s3(spec, ref, secret, tls, concurrency)
    except BaseException:
        tls.close()
        raise


def _s3(spec: BucketSpec, ref: str, secret: dict[str, bytes] | None, tls: TlsFiles, concurrency: int) -> S3Bucket:
    if "://" in spec.endpoint or "/" in spec.endpoint:
        raise Stalling(
            "URLInvalid",
            f"spec.endpoint '{spec.endpoint}' must be host[:port] without scheme or path for provider "
            f"'{spec.provider}' (https is used; spec.insecure: true selects http)",
        )
    if secret is None:
        if spec.provider != "generic":
            raise _unsupported(
                f"provider '{spec.provider}' without spec.secretRef (cloud identity)",
                "set spec.secretRef to a Secret with accesskey and secretkey",
            )
        access_key = secret_key = None
        hint = "the bucket refuses anonymous access: set spec.secretRef to a Secret with accesskey and secretkey"
    else:
        if spec.provider == "gcp" and "serviceaccount" in secret and "accesskey" not in secret:
            raise _unsupported(
                "provider 'gcp' with a 'serviceaccount' key (Google OAuth)",
                "use HMAC keys as accesskey and secretkey in the Secret",
            )
        access_key = secret.get("accesskey", b"").decode()
        secret_key = secret.get("secretkey", b"").decode()
        if not access_key or not secret_key:
            raise BucketError(
                f"invalid '{spec.secret_name}' secret data: required fields 'accesskey' and 'secretkey'; "
                f"add them to {ref} (spec.secretRef)"
            )
        hint = f"check accesskey and secretkey in {ref} (spec.secretRef)"
    return S3Bucket(
        spec.endpoint, spec.bucket_name, access_key=access_key, secret_key=secret_key, region=spec.region,
        insecure=spec.insecure, tls=tls, timeout=spec.timeout, concurrency=concurrency, credentials_hint=hint,
    )  # fmt: skip


def _azure(spec: BucketSpec, ref: str, secret: dict[str, bytes] | None, tls: TlsFiles) -> AzureBucket:
    scheme = spec.endpoint.split("://", 1)[0].lower() if "://" in spec.endpoint else ""
    if scheme not in ("https", "http") or (scheme == "http" and not spec.insecure):
        raise Stalling(
            "URLInvalid",
            f"spec.endpoint '{spec.endpoint}' must be an https:// URL for provider 'azure' "
            "(http:// only with spec.insecure: true)",
        )
    if secret is None:
        raise _unsupported(
            "provider 'azure' without spec.secretRef (managed or workload identity)",
            "set spec.secretRef to a Secret with accountKey or sasKey",
        )
    if "clientId" in secret:
        found = ", ".join(k for k in _IDENTITY_KEYS if k in secret)
        raise _unsupported(
            f"{ref} key(s) {found} (service principal or managed identity)",
            "use accountKey or sasKey in the Secret",
        )
    account_key = secret.get("accountKey", b"").decode() or None
    sas = secret.get("sasKey", b"").decode() or None
    if not account_key and not sas:
        if "authorityHost" in secret:
            raise _unsupported(
                f"{ref} with only authorityHost (environment credentials)", "use accountKey or sasKey in the Secret"
            )
        raise BucketError(
            f"invalid '{spec.secret_name}' secret data: requires an 'accountKey' or 'sasKey' field; "
            f"add one to {ref} (spec.secretRef)"
        )
    hint = f"check {'accountKey' if account_key else 'sasKey'} in {ref} (spec.secretRef)"
    return AzureBucket(
        spec.endpoint, spec.bucket_name, account_key=account_key, sas=sas, tls=tls, timeout=spec.timeout,
        credentials_hint=hint,
    )  # fmt: skip
