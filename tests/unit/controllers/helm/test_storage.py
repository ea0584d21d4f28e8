"""helm's release record format, decoded as helm encodes it (base64 of gzip of JSON, inside a Secret)."""

from __future__ import annotations

import base64
import gzip
import json
import re

import pytest

from fluxwarden.controllers.helm.storage import Release, StorageError, _decode


def secret_of(record: object, compress: bool = True) -> dict[str, object]:
    raw = json.dumps(record).encode()
    inner = base64.b64encode(gzip.compress(raw) if compress else raw)
    return {"metadata": {"name": "sh.helm.release.v1.app.v2"}, "data": {"release": base64.b64encode(inner).decode()}}


RECORD = {
    "name": "app",
    "namespace": "nginx",
    "version": 2,
    "info": {"status": "deployed", "first_deployed": "2026-12-01T10:00:00.123456789Z"},
    "chart": {"metadata": {"name": "nginx", "version": "1.2.3"}},
    "config": {"replicas": 2},
    "manifest": "---\nkind: ConfigMap\n",
}


@pytest.mark.parametrize("compress", [True, False])
def test_a_record_decodes_gzipped_or_not(compress: bool) -> None:
    release = Release(_decode(secret_of(RECORD, compress)), {})
    assert (release.name, release.namespace, release.version, release.status) == ("app", "nginx", 2, "deployed")
    assert release.chart_display == "nginx@1.2.3"
    assert release.display == "nginx/app.v2"
    assert release.config == {"replicas": 2}


def test_the_digest_changes_with_any_field() -> None:
    one = Release(_decode(secret_of(RECORD)), {})
    changed = Release(_decode(secret_of({**RECORD, "config": {"replicas": 3}})), {})
    assert one.digest.startswith("sha256:") and one.digest != changed.digest


@pytest.mark.parametrize(
    "data",
    [{}, {"release": "not base64!"}, {"release": base64.b64encode(base64.b64encode(b"[1, 2]")).decode()}],
)
def test_a_corrupt_record_is_a_storage_error_naming_the_secret(data: dict[str, str]) -> None:
    with pytest.raises(StorageError, match=re.escape("sh.helm.release.v1.app.v2")):
        _decode({"metadata": {"name": "sh.helm.release.v1.app.v2"}, "data": data})
