"""Source kinds other than git: one FluxConfig moved from GitRepository to Bucket, AzureBlob and
OCIRepository. The test has no S3, Azure or OCI server, so it checks what the controller makes (the
Flux object of the right kind, its auth Secret, the Kustomizations' sourceRef) and that the source of
the old kind goes; each step is proved reconciled by ``observedGeneration``.
"""

from __future__ import annotations

import uuid
from typing import Any

from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.source.api import GIT_REPOSITORY
from tests.support.fluxconfig import FluxConfigs, Stages, condition, controllers, current, managed_labels, stages

__all__ = ["controllers", "stages"]  # fixtures

BUCKET = Resource("source.toolkit.fluxcd.io", "v1", "buckets", "Bucket")
OCI_REPOSITORY = Resource("source.toolkit.fluxcd.io", "v1", "ocirepositories", "OCIRepository")
SECRET_KEY = f"sk-{uuid.uuid4().hex}"


def switch(configs: FluxConfigs, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch ``spec`` and wait until the controller reconciled that generation."""
    generation = configs.patch(name, {"spec": spec})["metadata"]["generation"]
    done = configs.wait(
        name,
        lambda o: current(o) and o["metadata"]["generation"] == generation,
        f"to reconcile generation {generation}",
    )
    assert condition(done, "Stalled").get("status") != "True", condition(done, "Stalled")
    return done


def test_a_config_moves_between_source_kinds(stages: Stages, namespace: str) -> None:
    stage = stages(namespace)
    configs = stage.configs
    sha = stage.push_app()
    configs.protected_settings("moving-protected", {"bucketSecretKey": SECRET_KEY})
    configs.create(
        "moving",
        {
            "scope": "namespace",
            "gitRepository": {"url": stage.repo.url, "repositoryRef": {"branch": "main"}},
            "configurationProtectedSettingsRef": {"name": "moving-protected"},
            "kustomizations": {"app": {"path": "./app"}},
        },
    )
    configs.compliant("moving", sha)

    # Bucket (S3): endpoint without the scheme, http means insecure, access key in the spec, secret key protected
    switch(
        configs,
        "moving",
        {
            "sourceKind": "Bucket",
            "gitRepository": None,
            "bucket": {"url": "http://127.0.0.1:9", "bucketName": "configs", "accessKey": "AKIDEXAMPLE"},
        },
    )
    configs.gone(GIT_REPOSITORY, "moving")
    bucket = configs.object(BUCKET, "moving")
    assert bucket is not None
    assert managed_labels("moving", namespace).items() <= bucket["metadata"]["labels"].items()
    assert {k: bucket["spec"].get(k) for k in ("provider", "endpoint", "bucketName", "insecure", "secretRef")} == {
        "provider": "generic", "endpoint": "127.0.0.1:9", "bucketName": "configs", "insecure": True,
        "secretRef": {"name": "moving-auth"},
    }  # fmt: skip
    assert (bucket["spec"]["interval"], bucket["spec"]["timeout"]) == ("600s", "600s")
    auth = configs.secret_data("moving-auth")
    assert (auth.get("accesskey"), auth.get("secretkey")) == (b"AKIDEXAMPLE", SECRET_KEY.encode())
    assert configs.kustomization("moving", "app")["spec"]["sourceRef"]["kind"] == "Bucket"  # type: ignore[index]
    assert SECRET_KEY not in str(configs.get("moving")), "the secret key stays in the Secrets"

    # Azure Blob: a Bucket with provider azure
    switch(
        configs,
        "moving",
        {
            "sourceKind": "AzureBlob",
            "bucket": None,
            "azureBlob": {"url": "https://account.blob.core.windows.net", "containerName": "configs"},
        },
    )
    blob = configs.object(BUCKET, "moving")
    assert blob is not None
    assert {k: blob["spec"].get(k) for k in ("provider", "endpoint", "bucketName")} == {
        "provider": "azure", "endpoint": "https://account.blob.core.windows.net", "bucketName": "configs",
    }  # fmt: skip

    # OCI: an OCIRepository (tag latest when no ref is given); the Bucket goes
    switch(
        configs,
        "moving",
        {"sourceKind": "OCIRepository", "azureBlob": None, "ociRepository": {"url": "oci://127.0.0.1:9/configs"}},
    )
    configs.gone(BUCKET, "moving")
    oci = configs.object(OCI_REPOSITORY, "moving")
    assert oci is not None
    assert (oci["spec"]["url"], oci["spec"]["ref"]) == ("oci://127.0.0.1:9/configs", {"tag": "latest"})
    assert configs.kustomization("moving", "app")["spec"]["sourceRef"] == {  # type: ignore[index]
        "kind": "OCIRepository",
        "name": "moving",
    }
    assert configs.secret("moving-auth") is None, "nothing left to authenticate with: the auth Secret goes"
