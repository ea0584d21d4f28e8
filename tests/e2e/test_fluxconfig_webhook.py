"""FluxConfig admission behind a real kube-apiserver: who may set scope cluster, the immutable fields, and
every ``fluxconfig`` rule, each sent by kubectl and answered with its one-line denial.

The webhook is registered as in test_webhook_admission.py; the FluxConfig CRD is the repository's
(the ``fluxconfig_crd`` fixture). Where that CRD's schema can say no first (an enum, a pattern, a
minimum, a CEL transition rule, an unknown field under kubectl's strict field validation), the API
server answers before any validating webhook: those cases accept the schema's refusal naming the
field, or an inline secret pruned and never stored. Every other case must be the webhook's own line.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.test_webhook_admission import (
    Admission,
    Resource,
    admission_registry,
    decisions,
    manifests,
    stored_object,
)
from tests.support.fluxconfig_admission import (
    DENIED,
    GROUP,
    PLURAL,
    SECRET,
    SECRET_B64,
    VALID,
    VALID_UNIT_ONLY,
    VERSION,
    Denied,
    changed,
    fluxconfig,
    git,
)
from tests.support.kube import Kubectl
from tests.support.namespaces import ensure_namespace
from tests.support.webhook import WebhookProcess

FLUXCONFIGS = Resource(GROUP, VERSION, PLURAL)
CONFIG_NAMESPACE = "cluster-config"
DENIED_BY = 'admission webhook "validate.fluxwarden.dev" denied the request: '


@pytest.fixture(scope="module")
def admission(
    admin_api: client.ApiClient,
    flux_crds: list[str],
    fluxconfig_crd: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Admission]:
    ensure_namespace(admin_api, CONFIG_NAMESPACE)
    with admission_registry(admin_api, tmp_path_factory.mktemp("webhooks"), "e2e-fc-probe") as registry:
        yield registry


@pytest.fixture
def webhook(admission: Admission) -> WebhookProcess:
    """``fluxwarden serve`` with the default settings (scope cluster in cluster-config and flux-system)."""
    return admission.webhook()


@pytest.fixture
def short_namespace(admin_api: client.ApiClient) -> Iterator[Callable[[], str]]:
    """Fresh namespaces with short names, so a denial line is never cut before its fix."""
    core = client.CoreV1Api(admin_api)
    made: list[str] = []

    def make() -> str:
        name = f"fc-{uuid.uuid4().hex[:8]}"
        ensure_namespace(admin_api, name)
        made.append(name)
        return name

    yield make
    for name in made:
        core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def tenant(short_namespace: Callable[[], str]) -> str:
    return short_namespace()


def apply(kubectl: Kubectl, obj: dict[str, Any], *flags: str) -> subprocess.CompletedProcess[str]:
    return kubectl("apply", *flags, "-f", "-", input=manifests(obj), check=False)


def read(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    return stored_object(api, FLUXCONFIGS, namespace, name)


def judged(webhook: WebhookProcess, namespace: str, name: str, route: str = "validate") -> list[tuple[str, bool]]:
    """(operation, allowed) of each decision ``webhook`` logged on ``route`` for this object."""
    return [
        (d["operation"], d["allowed"])
        for d in decisions(webhook, name)
        if d["namespace"] == namespace and d["route"] == route
    ]


def unique(namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A FluxConfig with a name of its own (cluster-config is shared by every test)."""
    return fluxconfig(namespace, spec, name=f"fc-{uuid.uuid4().hex[:8]}")


# -- who may set scope cluster ---------------------------------------------------------------------


@pytest.mark.parametrize("scope", [None, "cluster"], ids=["unset", "explicit"])
def test_scope_cluster_in_a_tenant_namespace_is_refused(
    webhook: WebhookProcess, kubectl: Kubectl, admin_api: client.ApiClient, tenant: str, scope: str | None
) -> None:
    obj = fluxconfig(tenant, changed(git(), scope=scope))

    result = apply(kubectl, obj)

    assert result.returncode != 0, result.stdout
    # An unset scope reaches the webhook unset or, from a CRD that defaults it, as cluster.
    assert f"{DENIED_BY}cluster-scope: FluxConfig {tenant}/apps: spec.scope is cluster" in result.stderr
    assert "set spec.scope: namespace, or ask the platform to create it in cluster-config or flux-system" in (
        result.stderr
    )
    assert read(admin_api, tenant, "apps") is None
    assert judged(webhook, tenant, "apps") == [("CREATE", False)]


def test_scope_cluster_in_cluster_config_is_allowed_and_stored_with_its_namespace(
    webhook: WebhookProcess, kubectl: Kubectl, admin_api: client.ApiClient
) -> None:
    obj = unique(CONFIG_NAMESPACE, changed(git(), scope="cluster"))
    name = obj["metadata"]["name"]
    try:
        result = apply(kubectl, obj)

        assert result.returncode == 0, result.stderr
        assert f"Warning: fluxconfig: set spec.namespace to {CONFIG_NAMESPACE}" in result.stderr
        stored = read(admin_api, CONFIG_NAMESPACE, name)
        assert stored is not None
        assert (stored["spec"]["scope"], stored["spec"]["namespace"]) == ("cluster", CONFIG_NAMESPACE)
        assert judged(webhook, CONFIG_NAMESPACE, name) == [("CREATE", True)]
    finally:
        kubectl("delete", "fluxconfig", name, "-n", CONFIG_NAMESPACE, "--ignore-not-found", "--wait=false")


def test_scope_namespace_in_a_tenant_namespace_is_allowed(
    webhook: WebhookProcess, kubectl: Kubectl, admin_api: client.ApiClient, tenant: str
) -> None:
    result = apply(kubectl, fluxconfig(tenant, git()))

    assert result.returncode == 0, result.stderr
    stored = read(admin_api, tenant, "apps")
    assert stored is not None
    assert (stored["spec"]["scope"], stored["spec"]["namespace"]) == ("namespace", tenant)
    assert judged(webhook, tenant, "apps") == [("CREATE", True)]
    assert judged(webhook, tenant, "apps", route="mutate") == [("CREATE", True)]


def test_the_platform_lists_the_configuration_namespaces(
    admission: Admission, kubectl: Kubectl, admin_api: client.ApiClient, short_namespace: Callable[[], str]
) -> None:
    platform = short_namespace()
    webhook = admission.webhook("--cluster-scope-namespaces", platform)

    allowed = apply(kubectl, fluxconfig(platform, changed(git(), scope="cluster")))
    refused = apply(kubectl, unique(CONFIG_NAMESPACE, changed(git(), scope="cluster")))

    assert allowed.returncode == 0, allowed.stderr
    assert read(admin_api, platform, "apps") is not None
    assert refused.returncode != 0
    assert f"{DENIED_BY}cluster-scope: FluxConfig {CONFIG_NAMESPACE}/" in refused.stderr
    assert f"ask the platform to create it in {platform} —" in refused.stderr
    assert judged(webhook, platform, "apps") == [("CREATE", True)]


def test_an_exempt_user_still_cannot_set_scope_cluster_in_a_tenant_namespace(
    admission: Admission, kubectl: Kubectl, admin_api: client.ApiClient, tenant: str
) -> None:
    """kubectl runs as the admin certificate's user; exempting it lifts the tenancy rules, not cluster-scope."""
    webhook = admission.webhook("--exempt-groups", "system:masters")

    result = apply(kubectl, fluxconfig(tenant, changed(git(), scope="cluster")))

    assert result.returncode != 0
    assert f"{DENIED_BY}cluster-scope: FluxConfig {tenant}/apps:" in result.stderr
    assert judged(webhook, tenant, "apps") == [("CREATE", False)]


# -- immutable scope and namespace -----------------------------------------------------------------


IMMUTABLE_BY_CRD = "is immutable: delete and recreate the FluxConfig"  # a CEL transition rule, if the CRD has one


@pytest.mark.parametrize(
    ("field", "value", "ours"),
    [
        ("scope", "cluster", "spec.scope changed from 'namespace' to 'cluster'"),
        ("namespace", "team-b", f"spec.namespace is team-b but the FluxConfig is in namespace {CONFIG_NAMESPACE}"),
    ],
)
def test_scope_and_namespace_cannot_change_on_update(
    webhook: WebhookProcess, kubectl: Kubectl, admin_api: client.ApiClient, field: str, value: str, ours: str
) -> None:
    obj = unique(CONFIG_NAMESPACE, git())
    name = obj["metadata"]["name"]
    try:
        assert apply(kubectl, obj).returncode == 0
        before = read(admin_api, CONFIG_NAMESPACE, name)
        assert before is not None

        result = apply(kubectl, {**obj, "spec": changed(obj["spec"], **{field: value})})

        assert result.returncode != 0, result.stdout
        assert f"{DENIED_BY}fluxconfig: FluxConfig {CONFIG_NAMESPACE}/{name}: {ours}" in result.stderr or (
            f"spec.{field}" in result.stderr and IMMUTABLE_BY_CRD in result.stderr
        ), result.stderr
        after = read(admin_api, CONFIG_NAMESPACE, name)
        assert after is not None
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert after["spec"][field] == before["spec"][field]

        # Anything else may change: the update is judged (UPDATE, allowed) and stored.
        edited = apply(kubectl, {**obj, "spec": changed(obj["spec"], suspend=True)})
        assert edited.returncode == 0, edited.stderr
        stored = read(admin_api, CONFIG_NAMESPACE, name)
        assert stored is not None and stored["spec"]["suspend"] is True
        assert stored["metadata"]["generation"] == before["metadata"]["generation"] + 1
        assert ("UPDATE", True) in judged(webhook, CONFIG_NAMESPACE, name)
    finally:
        kubectl("delete", "fluxconfig", name, "-n", CONFIG_NAMESPACE, "--ignore-not-found", "--wait=false")


# -- every fluxconfig rule -------------------------------------------------------------------------


def spec_has(obj: dict[str, Any] | None, dotted: str) -> bool:
    """Whether the stored object has the field at ``spec.a.b`` (no list indexes: the pruned fields have none)."""
    node: Any = obj
    for step in dotted.split("."):
        if not isinstance(node, dict) or step not in node:
            return False
        node = node[step]
    return True


@pytest.mark.parametrize("case", [c for c in DENIED if c.e2e], ids=lambda c: c.id)
def test_every_rule_gives_its_one_line_denial_through_the_api_server(
    webhook: WebhookProcess,
    kubectl: Kubectl,
    admin_api: client.ApiClient,
    tenant: str,
    case: Denied,
    record_property: Callable[[str, object], None],
) -> None:
    # An inline secret is sent as most clients send it, without kubectl's strict field validation: a
    # schema that does not know the field then prunes it (never stored) instead of refusing the object.
    flags = ("--validate=ignore",) if case.schema == "prune" else ()
    result = apply(kubectl, fluxconfig(tenant, case.spec, case.name), *flags)
    stored = read(admin_api, tenant, case.name)

    for secret in (SECRET, SECRET_B64):  # neither the API server's answer nor the webhook's log shows it
        assert secret not in result.stderr and secret not in webhook.log_file.read_text()
    detail, fix = (text.replace("{namespace}", tenant) for text in (case.detail, case.fix))
    line = f"{DENIED_BY}fluxconfig: FluxConfig {tenant}/{case.name}: {detail}; "
    if line in result.stderr:
        assert result.returncode != 0 and stored is None
        assert fix in result.stderr
        assert len(result.stderr.split(DENIED_BY, 1)[1].splitlines()[0]) < 256
        assert judged(webhook, tenant, case.name) == [("CREATE", False)]
        record_property("answered_by", "webhook")
        return
    assert case.schema is not None, f"expected the webhook's line:\n{line}\ngot:\n{result.stderr}"
    assert DENIED_BY not in result.stderr, result.stderr  # the webhook denied, but not with this case's line
    leaf = case.field.rsplit(".", 1)[-1]
    if result.returncode != 0:
        # The CRD's schema (or strict field validation) answered first, naming the field.
        assert leaf in result.stderr, result.stderr
        assert stored is None
        record_property("answered_by", "schema")
        return
    # The schema pruned an inline secret: it was never stored.
    assert case.schema == "prune", result.stdout
    assert stored is not None and not spec_has(stored, case.field), json.dumps(stored)
    record_property("answered_by", "pruned")


VALID_E2E = {k: v for k, v in VALID.items() if k not in VALID_UNIT_ONLY}


@pytest.mark.parametrize("spec", VALID_E2E.values(), ids=VALID_E2E.keys())
def test_valid_fluxconfigs_pass_both_routes(
    webhook: WebhookProcess, kubectl: Kubectl, admin_api: client.ApiClient, tenant: str, spec: dict[str, Any]
) -> None:
    result = apply(kubectl, fluxconfig(tenant, spec), "--dry-run=server")

    assert result.returncode == 0, result.stderr
    assert read(admin_api, tenant, "apps") is None  # a dry run stores nothing
    assert judged(webhook, tenant, "apps") == [("CREATE", True)]
    assert judged(webhook, tenant, "apps", route="mutate") == [("CREATE", True)]
