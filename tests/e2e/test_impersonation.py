"""Tenant isolation as the reconciler relies on it: impersonating ``flux-applier`` is confined by RBAC."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.kube import Impersonate
from tests.support.wait import eventually

APPLIER = "flux-applier"


def _is_forbidden(error: BaseException) -> bool:
    return isinstance(error, ApiException) and error.status == 403


def _grant_configmaps(admin_api: client.ApiClient, namespace: str) -> None:
    """A ServiceAccount with a Role + RoleBinding for configmaps in its own namespace only."""
    core, rbac = client.CoreV1Api(admin_api), client.RbacAuthorizationV1Api(admin_api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=APPLIER))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="configmap-editor"),
            rules=[
                client.V1PolicyRule(
                    api_groups=[""],
                    resources=["configmaps"],
                    verbs=["get", "list", "watch", "create", "update", "patch", "delete"],
                )
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=APPLIER),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="configmap-editor"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=APPLIER, namespace=namespace)],
        ),
    )


def test_applier_is_confined_to_its_tenant_namespace(
    admin_api: client.ApiClient, namespace_factory: Callable[[], str], impersonate: Impersonate
) -> None:
    tenant_a, tenant_b = namespace_factory(), namespace_factory()
    _grant_configmaps(admin_api, tenant_a)
    applier = client.CoreV1Api(impersonate(tenant_a, APPLIER))

    def configmap(name: str) -> client.V1ConfigMap:
        return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"owner": "tenant-a"})

    # The authorizer reads RBAC from an informer cache: the new binding shows up within moments.
    created = eventually(
        lambda: applier.create_namespaced_config_map(tenant_a, configmap("allowed")), retry_on=_is_forbidden
    )
    assert created.metadata is not None
    assert created.metadata.namespace == tenant_a

    with pytest.raises(ApiException) as denied:
        applier.create_namespaced_config_map(tenant_b, configmap("denied"))
    assert denied.value.status == 403
    assert f"system:serviceaccount:{tenant_a}:{APPLIER}" in str(denied.value.body)
    assert f'in the namespace \\"{tenant_b}\\"' in str(denied.value.body)
    # Within its own namespace it still gets only what its Role grants.
    with pytest.raises(ApiException) as secrets_denied:
        applier.list_namespaced_secret(tenant_a)
    assert secrets_denied.value.status == 403
