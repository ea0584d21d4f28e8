"""The Bucket kind's spec (``source.toolkit.fluxcd.io/v1``), with Flux's defaults, and its unsupported fields.

Called by ``bucket.BucketReconciler``. An invalid spec raises ``Stalling`` naming the field. What
needs a token service that fluxwarden cannot reach (STS, workload identity, cloud metadata) is in
``BUCKET_UNSUPPORTED`` or refused by the reconciler with reason ``UnsupportedField``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fluxwarden.controllers.runtime.errors import Stalling
from fluxwarden.controllers.runtime.spec import duration, spec_of
from fluxwarden.controllers.runtime.unsupported import Rule, Table
from fluxwarden.controllers.source.api import DEFAULT_TIMEOUT, secret_name

PROVIDERS = ("generic", "aws", "gcp", "azure")

BUCKET_UNSUPPORTED = Table(
    "source-controller",
    (
        Rule("spec.sts", hint="use static keys in spec.secretRef (an STS needs a token service)"),
        Rule("spec.serviceAccountName", hint="use static keys in spec.secretRef (workload identity)"),
        Rule("spec.proxySecretRef"),
    ),
)


@dataclass(frozen=True)
class BucketSpec:
    provider: str
    bucket_name: str
    endpoint: str
    insecure: bool
    region: str
    prefix: str
    secret_name: str | None
    cert_secret_name: str | None
    timeout: float
    ignore: str | None

    @classmethod
    def of(cls, obj: dict[str, Any]) -> BucketSpec:
        spec = spec_of(obj)
        provider = str(spec.get("provider") or "generic")
        if provider not in PROVIDERS:
            raise Stalling("InvalidSpec", f"spec.provider '{provider}' is not one of {', '.join(PROVIDERS)}")
        bucket_name = str(spec.get("bucketName") or "")
        endpoint = str(spec.get("endpoint") or "")
        if not bucket_name or not endpoint:
            raise Stalling("InvalidSpec", "spec.bucketName and spec.endpoint are required")
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in endpoint):
            raise Stalling("URLInvalid", "spec.endpoint contains spaces or control characters")
        insecure = spec.get("insecure") is True
        cert = secret_name(spec, "certSecretRef")
        if insecure and cert:
            raise Stalling("InvalidSpec", "spec.certSecretRef is set but spec.insecure asks for plain HTTP; remove one")
        ignore = spec.get("ignore")
        return cls(
            provider,
            bucket_name,
            endpoint,
            insecure,
            str(spec.get("region") or ""),
            str(spec.get("prefix") or ""),
            secret_name(spec),
            cert,
            duration(spec, "timeout", DEFAULT_TIMEOUT),
            str(ignore) if ignore else None,
        )
