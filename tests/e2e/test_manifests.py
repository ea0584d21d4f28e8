"""The install manifests build with kustomize and are accepted by a real API server (server dry-run).

A bare API server runs no network plugin, so the NetworkPolicy is checked twice: the server accepts it
(dry-run), and its selectors, evaluated by the API server itself (``labelSelector`` on real pods made
from the Deployments' pod templates), pick exactly the pods they are meant to.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from fluxwarden.controllers.app import CONTROLLERS
from fluxwarden.controllers.notification.api import MODE_ANNOTATION, ON_CHANGE
from fluxwarden.controllers.notification.matching import compile_alert
from fluxwarden.controllers.source.storage import Storage
from fluxwarden.tenancy import Settings
from tests.support.kube import Kubectl
from tests.support.manifests import ROOT, built, by_kind, container_args, flag, named
from tests.support.namespaces import ensure_namespace
from tests.support.selectors import selector_string

SHARD = "sharding.fluxcd.io/key"
FLUX_COMPLEMENT = f"!{SHARD}"  # what upstream Flux watches beside fluxwarden (Flux's sharding guide)
# Cluster-scoped objects of an upstream Flux install (flux2 manifests/rbac), which fluxwarden must not touch.
FLUX_CLUSTER_NAMES = {"crd-controller-flux-system", "cluster-reconciler-flux-system", "flux-edit-flux-system",
                      "flux-view-flux-system"}  # fmt: skip
FLUX_ARTIFACT_CONSUMERS = ("kustomize-controller", "helm-controller", "source-watcher")
FLUXCONFIG_CONTROLLER = "fluxconfig"  # runs apart, under its own (privileged) ServiceAccount
# Where upstream Flux's controllers post events by default (their --events-addr).
FLUX_EVENTS_ADDR = "http://notification-controller.flux-system.svc.cluster.local./"
# Flux's controllers that post events (pods labelled app=<name>, as Flux's Deployments are).
FLUX_EVENT_SOURCES = ("source-controller", "kustomize-controller", "helm-controller", "source-watcher",
                      "image-reflector-controller", "image-automation-controller")  # fmt: skip


def _ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def _controllers_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = named(objects, "Deployment", "fluxwarden-controllers")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_webhook_base_is_what_the_issue_asks_for(kubectl: Kubectl) -> None:
    objects = built(kubectl, "manifests/base")
    deployment = named(objects, "Deployment", "fluxwarden-webhook")
    assert deployment["metadata"]["namespace"] == "flux-system"
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert {"readinessProbe", "livenessProbe"} <= set(container) and container["resources"]["requests"]
    (service,) = by_kind(objects, "Service")
    assert service["spec"]["ports"][0]["port"] == 443 and service["spec"]["ports"][0]["targetPort"] == "https"
    assert [p["containerPort"] for p in container["ports"]] == [8443, 8080]
    assert by_kind(objects, "PodDisruptionBudget") and by_kind(objects, "ServiceAccount")
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        (config,) = by_kind(objects, kind)
        (hook,) = config["webhooks"]
        assert hook["failurePolicy"] == "Fail" and hook["timeoutSeconds"] == 5 and hook["sideEffects"] == "None"
        assert set(hook["namespaceSelector"]["matchExpressions"][0]["values"]) == {"kube-system", "flux-system"}


def test_webhook_pods_read_the_secret_itself_and_a_cronjob_renews_it(kubectl: Kubectl) -> None:
    objects = built(kubectl, "manifests/base")
    pod = named(objects, "Deployment", "fluxwarden-webhook")["spec"]["template"]["spec"]
    (volume,) = pod["volumes"]
    assert set(volume) == {"name", "secret"}, "no emptyDir copy: kubelet refreshes a Secret volume in place"
    assert volume["secret"]["secretName"] == "fluxwarden-webhook-tls"
    assert [i["key"] for i in volume["secret"]["items"]] == ["tls.crt", "tls.key"], "the CA key stays in the Secret"
    (container,), (init,) = pod["containers"], pod["initContainers"]
    (mount,) = container["volumeMounts"]
    assert mount["readOnly"] and flag(container["args"], "tls-cert-file") == f"{mount['mountPath']}/tls.crt"
    assert flag(init["args"], "wait-for-mount") == mount["mountPath"] and flag(init["args"], "out") is None
    assert "subPath" not in mount, "a subPath mount is never refreshed"

    (cronjob,) = by_kind(objects, "CronJob")
    job = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (renew,) = job["containers"]
    assert renew["args"][:2] == ["certs", "bootstrap"] and "--no-create" in renew["args"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid" and len(cronjob["spec"]["schedule"].split()) == 5
    account = job["serviceAccountName"]
    assert account != pod["serviceAccountName"], "the renewer has an identity of its own"
    (role,) = [r for r in by_kind(objects, "Role") if r["metadata"]["name"] == account]
    (cluster_role,) = [r for r in by_kind(objects, "ClusterRole") if r["metadata"]["name"] == account]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["fluxwarden-webhook-tls"],
         "verbs": ["get", "update"]}
    ]  # fmt: skip
    assert [r["resourceNames"] for r in cluster_role["rules"]] == [["fluxwarden"]]
    assert cluster_role["rules"][0]["verbs"] == ["get", "patch"]


def test_enforce_off_overlay_only_flips_the_setting(kubectl: Kubectl) -> None:
    base = built(kubectl, "manifests/base")
    off = built(kubectl, "manifests/overlays/enforce-off")
    (settings,) = by_kind(off, "ConfigMap")
    assert settings["data"]["FLUXWARDEN_ENFORCE"] == "false"
    assert [o for o in off if o["kind"] != "ConfigMap"] == [o for o in base if o["kind"] != "ConfigMap"]


def _fluxconfig_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = named(objects, "Deployment", "fluxwarden-fluxconfig")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_controllers_run_everything_built_under_fluxs_service_name(kubectl: Kubectl) -> None:
    objects = built(kubectl, "manifests/controllers")
    container = _controllers_container(objects)
    args = container_args(container, {"POD_NAMESPACE": "flux-system"})
    assert set((flag(args, "controllers") or "").split(",")) == set(CONTROLLERS) - {FLUXCONFIG_CONTROLLER}
    assert flag(args, "leader-elect") == "" and flag(args, "lease-name") is None  # the default lease

    ports = _ports(container)
    assert ports == {"http": 9090, "http-events": 9091, "http-webhook": 9292, "http-metrics": 8080, "healthz": 9440}
    assert flag(args, "storage-addr") == f"0.0.0.0:{ports['http']}"
    assert flag(args, "metrics-port") == str(ports["http-metrics"]) and flag(args, "health-port") == str(
        ports["healthz"]
    )
    assert flag(args, "event-server-addr") == f":{ports['http-events']}"
    assert flag(args, "receiver-addr") == f":{ports['http-webhook']}"
    # The port table in deployment.yaml's header names every port, each its own.
    table = re.findall(r"^#\s+(\d+) (\S+)\s+(.*)$", (ROOT / "manifests/controllers/deployment.yaml").read_text(), re.M)
    assert {name: int(number) for number, name, _ in table} == ports and len(set(ports.values())) == len(ports)

    service = named(objects, "Service", "source-controller")
    assert service["metadata"]["namespace"] == "flux-system"
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80 and ports[port["targetPort"]] == ports["http"]
    template_labels = named(objects, "Deployment", "fluxwarden-controllers")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= template_labels.items()
    # status.artifact.url as Flux's source-controller advertises it.
    storage = Storage(ROOT, flag(args, "storage-adv-url") or "")
    assert storage.url_for("gitrepository/apps/repo/abc.tar.gz") == (
        "http://source-controller.flux-system.svc.cluster.local./gitrepository/apps/repo/abc.tar.gz"
    )


def _service_port(objects: list[dict[str, Any]], name: str, namespace: str) -> int:
    """The container port a Service's port 80 reaches in the controllers' pod (it selects that pod)."""
    service = named(objects, "Service", name)
    assert service["metadata"]["namespace"] == namespace
    deployment = named(objects, "Deployment", "fluxwarden-controllers")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80 and port["name"] == "http"
    return _ports(_controllers_container(objects))[port["targetPort"]]


@pytest.mark.parametrize("namespace", ["flux-system", "fluxwarden-system"])
def test_every_controller_posts_events_where_flux_posts_them(kubectl: Kubectl, namespace: str) -> None:
    """--events-addr is the notification-controller Service, which reaches the event server: in flux-system
    upstream Flux's default address, beside Flux fluxwarden's own namespace (its Alerts are its shard's)."""
    path = "manifests/controllers" if namespace == "flux-system" else "manifests/overlays/beside-flux"
    objects = built(kubectl, path)
    args = container_args(_controllers_container(objects), {"POD_NAMESPACE": namespace})
    assert "notification" in (flag(args, "controllers") or "").split(",")
    url = urlsplit(flag(args, "events-addr") or "")
    assert (url.scheme, url.port, url.path) == ("http", None, "/")
    service, service_namespace, rest = (url.hostname or "").split(".", 2)
    assert (service, rest) == ("notification-controller", "svc.cluster.local.") and service_namespace == namespace
    assert _service_port(objects, service, namespace) == int((flag(args, "event-server-addr") or "").lstrip(":"))
    assert _service_port(objects, "webhook-receiver", namespace) == int((flag(args, "receiver-addr") or "").lstrip(":"))
    if namespace == "flux-system":
        assert url.geturl() == FLUX_EVENTS_ADDR


def test_the_fluxconfig_controller_runs_alone_under_its_own_account_and_lease(kubectl: Kubectl) -> None:
    objects = built(kubectl, "manifests/fluxconfig")
    deployment = named(objects, "Deployment", "fluxwarden-fluxconfig")
    assert deployment["metadata"]["namespace"] == "flux-system"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "fluxwarden-fluxconfig" and pod["securityContext"]["runAsNonRoot"] is True
    container = _fluxconfig_container(objects)
    args = container_args(container, {})
    assert args[:2] == ["controllers", "run"] and flag(args, "controllers") == FLUXCONFIG_CONTROLLER
    assert flag(args, "leader-elect") == "" and flag(args, "lease-name") == "fluxwarden-fluxconfig"
    assert flag(args, "ssh-key-algorithm") == "rsa"
    # Every controller fluxwarden builds runs in exactly one of the two Deployments.
    others = container_args(_controllers_container(built(kubectl, "manifests/controllers")), {})
    controllers = set((flag(others, "controllers") or "").split(","))
    assert set(CONTROLLERS) <= controllers | {FLUXCONFIG_CONTROLLER} and FLUXCONFIG_CONTROLLER not in controllers
    # It serves no artifacts: its (unused) artifact server is on loopback, and no Service selects it.
    assert (flag(args, "storage-addr") or "").startswith("127.0.0.1:")
    ports = _ports(container)
    assert ports == {"http-metrics": 8080, "healthz": 9440}
    assert flag(args, "metrics-port") == "8080" and flag(args, "health-port") == "9440"
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}
    assert (flag(args, "storage-path") or "").startswith("/tmp/")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (lease_role,) = by_kind(objects, "Role")
    assert [r.get("resourceNames") for r in lease_role["rules"]] == [None, ["fluxwarden-fluxconfig"]]
    top = built(kubectl, "manifests")
    assert named(top, "Deployment", "fluxwarden-fluxconfig") == deployment, "manifests/ installs it as built"


def _pod_from(template: dict[str, Any], name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": template["metadata"]["labels"]}, "spec": template["spec"]}


def _matching(core: client.CoreV1Api, namespace: str, selector: dict[str, Any]) -> set[str]:
    pods = core.list_namespaced_pod(namespace, label_selector=selector_string(selector)).items
    return {p.metadata.name for p in pods}


EVERYONE = "everyone"  # a rule without ``from``


def _peers(policies: list[dict[str, Any]], port: str) -> list[Any]:
    """Every peer some policy admits to the named port (a rule without ``ports`` admits to every port)."""
    peers: list[Any] = []
    for policy in policies:
        for rule in policy["spec"].get("ingress") or []:
            if "ports" not in rule or port in {p["port"] for p in rule["ports"]}:
                peers.extend(rule.get("from") or [EVERYONE])
    return peers


def test_network_policies_admit_each_port_from_its_clients_only(
    kubectl: Kubectl, admin_api: client.ApiClient, namespace: str
) -> None:
    objects = built(kubectl, "manifests/controllers") + built(kubectl, "manifests/base")
    objects += built(kubectl, "manifests/fluxconfig")
    policies = by_kind(objects, "NetworkPolicy")
    assert [p["metadata"]["name"] for p in policies] == ["fluxwarden-artifacts", "fluxwarden-events",
                                                         "fluxwarden-webhooks"]  # fmt: skip
    controllers = named(objects, "Deployment", "fluxwarden-controllers")["spec"]["template"]
    webhook = named(objects, "Deployment", "fluxwarden-webhook")["spec"]["template"]
    fluxconfig = named(objects, "Deployment", "fluxwarden-fluxconfig")["spec"]["template"]
    flux_pods = {
        f"flux-{app}": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
        for app in {*FLUX_ARTIFACT_CONSUMERS, *FLUX_EVENT_SOURCES, "notification-controller"}
    }
    tenant = {"metadata": {"labels": {"app": "podinfo"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    core = client.CoreV1Api(admin_api)
    # Real pods from the real templates (a bare API server keeps them Pending): the server evaluates the selectors.
    for name, template in {
        "controllers": controllers,
        "webhook": webhook,
        "fluxconfig": fluxconfig,
        "tenant": tenant,
        **flux_pods,
    }.items():
        core.create_namespaced_pod(namespace, _pod_from(template, name))

    for policy in policies:
        assert _matching(core, namespace, policy["spec"]["podSelector"]) == {"controllers"}
        assert policy["spec"]["policyTypes"] == ["Ingress"]
    ports = _ports(_controllers_container(objects))
    for port in ("http-metrics", "healthz"):  # as Flux's allow-scraping leaves them
        assert _peers(policies, port) == [EVERYONE]

    def admitted(port: str) -> set[str]:
        peers = _peers(policies, port)
        for peer in peers:
            assert set(peer) == {"podSelector"}, "pods of this namespace only: no namespaceSelector, no ipBlock"
        return set().union(*(_matching(core, namespace, peer["podSelector"]) for peer in peers))

    assert admitted("http") == {"controllers", *(f"flux-{app}" for app in FLUX_ARTIFACT_CONSUMERS)}
    assert admitted("http-events") == {"controllers", *(f"flux-{app}" for app in FLUX_EVENT_SOURCES)}
    # Webhooks come through the ingress controller, in a namespace of its own: pods of any namespace.
    assert _peers(policies, "http-webhook") == [{"namespaceSelector": {}}]
    named_ports = {p["port"] for policy in policies for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert named_ports == set(ports), "every port of the pod has its rule, and no rule names a port it lacks"


def test_the_ingress_example_exposes_only_hook_paths_over_tls(
    kubectl: Kubectl, admin_api: client.ApiClient, namespace: str
) -> None:
    """examples/notification/install: the install plus the Ingress component, accepted by the API server;
    the Ingress reaches the webhook-receiver Service, and the webhook port admits the ingress's namespace only."""
    objects = built(kubectl, "examples/notification/install")
    assert [o for o in objects if o["kind"] != "Ingress" and o["metadata"]["name"] != "fluxwarden-webhooks"] == [
        o for o in built(kubectl, "manifests") if o["metadata"]["name"] != "fluxwarden-webhooks"
    ], "the component adds the Ingress and narrows one policy, nothing else"
    (ingress,) = by_kind(objects, "Ingress")
    service = named(objects, "Service", "webhook-receiver")
    assert ingress["metadata"]["namespace"] == service["metadata"]["namespace"] == "flux-system"
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/hook/", "Prefix")
    backend = path["backend"]["service"]
    assert backend["name"] == "webhook-receiver" and backend["port"]["name"] in {
        p["name"] for p in service["spec"]["ports"]
    }
    assert _service_port(objects, "webhook-receiver", "flux-system") == 9292
    (tls,) = ingress["spec"]["tls"]
    assert tls["hosts"] == [rule["host"]] and tls["secretName"]

    peers = _peers([named(objects, "NetworkPolicy", "fluxwarden-webhooks")], "http-webhook")
    (peer,) = peers
    assert set(peer) == {"namespaceSelector"}
    ensure_namespace(admin_api, "ingress-nginx")
    listed = client.CoreV1Api(admin_api).list_namespace(label_selector=selector_string(peer["namespaceSelector"]))
    assert {n.metadata.name for n in listed.items} == {"ingress-nginx"}, f"not {namespace} nor any other"

    ensure_namespace(admin_api, "flux-system")
    result = kubectl("apply", "--server-side", "--dry-run=server", "--force-conflicts", "-k",
                     str(ROOT / "examples/notification/install"))  # fmt: skip
    assert "ingress.networking.k8s.io/webhook-receiver serverside-applied (server dry run)" in result.stdout


def test_beside_flux_overlay_shares_nothing_with_an_upstream_flux(
    kubectl: Kubectl, admin_api: client.ApiClient, namespace: str
) -> None:
    objects = built(kubectl, "manifests/overlays/beside-flux")
    assert not by_kind(objects, "CustomResourceDefinition"), "upstream Flux owns the CRDs"
    assert [n["metadata"]["name"] for n in by_kind(objects, "Namespace")] == ["fluxwarden-system"]
    cluster_scoped = ("Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
                      "ValidatingWebhookConfiguration")  # fmt: skip
    for obj in objects:
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"]["namespace"] == "fluxwarden-system", obj["metadata"]
        for subject in obj.get("subjects", []):
            assert subject["namespace"] == "fluxwarden-system"
    names = {o["metadata"]["name"] for o in objects if o["kind"] in cluster_scoped[1:]}
    assert all(n.startswith("fluxwarden") for n in names) and not names & FLUX_CLUSTER_NAMES

    args = container_args(_controllers_container(objects), {"POD_NAMESPACE": "fluxwarden-system"})
    selector = flag(args, "watch-label-selector")
    assert selector == f"{SHARD}=fluxwarden"
    assert flag(args, "storage-adv-url") == "http://source-controller.fluxwarden-system.svc.cluster.local."
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        (hook,) = named(objects, kind, "fluxwarden")["webhooks"]
        assert hook["clientConfig"]["service"]["namespace"] == "fluxwarden-system"
        assert selector_string(hook["objectSelector"]) == selector, "the webhook judges fluxwarden's shard only"
        assert "fluxwarden-system" in hook["namespaceSelector"]["matchExpressions"][0]["values"]
    settings = named(objects, "ConfigMap", "fluxwarden-settings")["data"]
    assert set(settings["FLUXWARDEN_EXEMPT_NAMESPACES"].split(",")) == {"flux-system", "fluxwarden-system"}

    # The shard and the complement the overlay tells upstream Flux to watch split objects exactly.
    assert FLUX_COMPLEMENT in (ROOT / "manifests/overlays/beside-flux/kustomization.yaml").read_text()
    core = client.CoreV1Api(admin_api)
    for name, labels in {"ours": {SHARD: "fluxwarden"}, "shard1": {SHARD: "shard1"}, "plain": {}}.items():
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": labels}})

    def listed(label_selector: str) -> set[str]:
        return {
            c.metadata.name for c in core.list_namespaced_config_map(namespace, label_selector=label_selector).items
        }

    assert listed(selector) == {"ours"}
    assert listed(FLUX_COMPLEMENT) - {"kube-root-ca.crt"} == {"plain"}, "shard1 belongs to another Flux shard"


@pytest.mark.parametrize(
    ("path", "namespace", "expected"),
    [
        (
            "manifests",
            "flux-system",
            [
                "deployment.apps/fluxwarden-webhook serverside-applied (server dry run)",
                "deployment.apps/fluxwarden-controllers serverside-applied (server dry run)",
                "deployment.apps/fluxwarden-fluxconfig serverside-applied (server dry run)",
                "namespace/cluster-config serverside-applied (server dry run)",
                "clusterrole.rbac.authorization.k8s.io/fluxwarden-fluxconfig serverside-applied (server dry run)",
                "service/source-controller serverside-applied (server dry run)",
                "service/notification-controller serverside-applied (server dry run)",
                "service/webhook-receiver serverside-applied (server dry run)",
                "networkpolicy.networking.k8s.io/fluxwarden-artifacts serverside-applied (server dry run)",
                "networkpolicy.networking.k8s.io/fluxwarden-events serverside-applied (server dry run)",
                "networkpolicy.networking.k8s.io/fluxwarden-webhooks serverside-applied (server dry run)",
                "cronjob.batch/fluxwarden-certs-renewer serverside-applied (server dry run)",
                "customresourcedefinition.apiextensions.k8s.io/alerts.notification.toolkit.fluxcd.io",
                "customresourcedefinition.apiextensions.k8s.io/receivers.notification.toolkit.fluxcd.io",
                "customresourcedefinition.apiextensions.k8s.io/kustomizations.kustomize.toolkit.fluxcd.io",
                "customresourcedefinition.apiextensions.k8s.io/helmreleases.helm.toolkit.fluxcd.io",
                "customresourcedefinition.apiextensions.k8s.io/fluxconfigs.clusterconfig.azure.com",
            ],
        ),
        (
            "manifests/overlays/beside-flux",
            "fluxwarden-system",
            [
                "deployment.apps/fluxwarden-controllers serverside-applied (server dry run)",
                "service/notification-controller serverside-applied (server dry run)",
                "networkpolicy.networking.k8s.io/fluxwarden-artifacts serverside-applied (server dry run)",
                "cronjob.batch/fluxwarden-certs-renewer serverside-applied (server dry run)",
                "mutatingwebhookconfiguration.admissionregistration.k8s.io/fluxwarden serverside-applied",
            ],
        ),
        ("manifests/overlays/enforce-off", "flux-system", ["configmap/fluxwarden-settings serverside-applied"]),
    ],
)
def test_everything_is_accepted_by_the_api_server(
    kubectl: Kubectl, admin_api: client.ApiClient, path: str, namespace: str, expected: list[str]
) -> None:
    ensure_namespace(admin_api, namespace)  # dry-run creates no namespace for the objects in it
    # --force-conflicts: the e2e suite installed Flux's own CRDs of the same names (another field manager).
    result = kubectl("apply", "--server-side", "--dry-run=server", "--force-conflicts", "-k", str(ROOT / path))
    for line in expected:
        assert line in result.stdout


def test_the_fluxconfig_example_is_accepted_as_written(
    fluxconfig_crd: str, kubectl: Kubectl, admin_api: client.ApiClient
) -> None:
    """examples/fluxconfig (the Azure tutorial) against the shipped CRD: nothing pruned, Azure's defaults added."""
    ensure_namespace(admin_api, "cluster-config")  # a dry run makes no namespace
    result = kubectl(
        "apply", "--server-side", "--dry-run=server", "-o", "json", "-k", str(ROOT / "examples/fluxconfig")
    )
    (stored,) = [o for o in json.loads(result.stdout)["items"] if o["kind"] == "FluxConfig"]
    written = next(o for o in built(kubectl, "examples/fluxconfig") if o["kind"] == "FluxConfig")
    assert stored["spec"]["kustomizations"]["apps"] == {**written["spec"]["kustomizations"]["apps"], "force": False,
                                                        "wait": True, "timeoutInSeconds": 600,
                                                        "syncIntervalInSeconds": 600}  # fmt: skip
    assert stored["spec"]["gitRepository"]["url"] == written["spec"]["gitRepository"]["url"]
    assert (stored["metadata"]["name"], stored["spec"]["scope"]) == ("cluster-config", "cluster")


def _within(written: Any, stored: Any) -> bool:
    """Everything written is stored as written (the server may add defaults, never drop or change a field)."""
    if isinstance(written, dict):
        return isinstance(stored, dict) and all(k in stored and _within(v, stored[k]) for k, v in written.items())
    return bool(written == stored)


def test_the_notification_examples_are_accepted_as_written(
    flux_crds: list[str], kubectl: Kubectl, admin_api: client.ApiClient
) -> None:
    """examples/notification against Flux's CRDs: no field pruned; every reference resolves inside the example."""
    ensure_namespace(admin_api, "flux-system")  # a dry run makes no namespace
    result = kubectl("apply", "--server-side", "--dry-run=server", "-o", "json", "-k",
                     str(ROOT / "examples/notification"))  # fmt: skip
    stored = {(o["kind"], o["metadata"]["name"]): o for o in json.loads(result.stdout)["items"]}
    written = built(kubectl, "examples/notification")
    assert sorted(stored) == sorted((o["kind"], o["metadata"]["name"]) for o in written)
    for obj in written:
        key = (obj["kind"], obj["metadata"]["name"])
        if obj["kind"] == "Secret":
            assert set(stored[key]["data"]) == set(obj["stringData"]), key
        else:
            assert _within(obj["spec"], stored[key]["spec"]), key
    kinds = {kind for kind, _ in stored}
    assert kinds == {"Secret", "Provider", "Alert", "Receiver"}
    providers = {name: o["spec"] for (kind, name), o in stored.items() if kind == "Provider"}
    assert {p["type"] for p in providers.values()} == {"slack", "generic-hmac"}
    for (kind, name), obj in stored.items():
        spec = obj.get("spec") or {}
        if kind == "Alert":
            assert spec["providerRef"]["name"] in providers, name
            assert compile_alert(obj, Settings()).problems == (), name  # as the controller reads it
        if kind in ("Provider", "Receiver"):
            assert ("Secret", spec["secretRef"]["name"]) in stored, name
    (receiver,) = [o for (kind, _), o in stored.items() if kind == "Receiver"]
    assert receiver["spec"]["type"] == "github" and "push" in receiver["spec"]["events"]
    token = stored[("Secret", receiver["spec"]["secretRef"]["name"])]["data"]
    assert set(token) == {"token"}
    on_change = stored[("Alert", "slack")]["metadata"]["annotations"]
    assert on_change == {MODE_ANNOTATION: ON_CHANGE}
