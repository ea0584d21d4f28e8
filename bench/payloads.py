"""The AdmissionReviews the benchmark sends: realistic Flux objects of 2–20 KB, as an API server sends them.

Sizes matter more than variety for a JSON-in, JSON-out server, so the objects carry what real ones
carry: labels, Flux ownership labels, ``managedFields``, kubectl's last-applied annotation, Helm
values, inline patches, and an ``oldObject`` on UPDATE. The mix has objects fluxwarden allows,
patches (no ``serviceAccountName``), warns about (deprecated API) and denies (cross-namespace refs,
the TENANCY.md legacy HelmRelease). Everything is deterministic, so runs compare.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from tests.support.reviews import admission_review, legacy_helmrelease

MIN_BYTES = 2 * 1024
MAX_BYTES = 20 * 1024
ROUTES = ("/mutate", "/validate")  # the API server calls mutating webhooks, then validating ones

Obj = dict[str, Any]


@dataclass(frozen=True)
class Review:
    """One AdmissionReview body and what it is, for the printed payload table."""

    label: str
    body: bytes
    denied: bool = False


def _fields(value: Any) -> Obj:
    """``fieldsV1`` for ``value``, the way server-side apply records ownership."""
    if not isinstance(value, dict):
        return {}
    return {".": {}, **{f"f:{key}": _fields(item) for key, item in value.items()}}


def _stable_hash(text: str) -> int:
    """A stable hash (``hash()`` is salted per process) for made-up but deterministic uids."""
    value = 0
    for char in text:
        value = (value * 131 + ord(char)) % (2**61 - 1)
    return value


def _metadata(obj: Obj, tenant: str, *, kubectl: bool, generation: int = 1) -> Obj:
    """Fill ``obj["metadata"]`` as the API server would hand it to a webhook."""
    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": tenant,
        "app.kubernetes.io/managed-by": "kubectl" if kubectl else "flux",
        "toolkit.fluxcd.io/tenant": tenant,
    }
    annotations: dict[str, str] = {"fluxwarden.dev/owner": f"{tenant}@example.com"}
    if kubectl:
        applied = {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "metadata": {"labels": labels, "name": name, "namespace": namespace},
            "spec": obj["spec"],
        }
        annotations["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(applied, sort_keys=True) + "\n"
    else:
        labels["kustomize.toolkit.fluxcd.io/name"] = f"{tenant}-apps"
        labels["kustomize.toolkit.fluxcd.io/namespace"] = namespace
    manager = "kubectl-client-side-apply" if kubectl else "kustomize-controller"
    obj["metadata"] = {
        "name": name,
        "namespace": namespace,
        "uid": f"6f0c5a2e-{generation:04d}-4b1e-9a3c-{_stable_hash(namespace + name) % 10**12:012d}",
        "resourceVersion": str(48_213_000 + generation),
        "generation": generation,
        "creationTimestamp": "2025-03-04T09:12:44Z",
        "labels": labels,
        "annotations": annotations,
        "finalizers": ["finalizers.fluxcd.io"],
        "managedFields": [
            {
                "manager": manager,
                "operation": "Update" if kubectl else "Apply",
                "apiVersion": obj["apiVersion"],
                "time": "2025-03-04T09:12:44Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": _fields(labels)}, "f:spec": _fields(obj["spec"])},
            },
            {
                "manager": "gotk-controller",
                "operation": "Update",
                "apiVersion": obj["apiVersion"],
                "time": "2025-03-04T09:12:45Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:finalizers": {".": {}, 'v:"finalizers.fluxcd.io"': {}}}},
            },
        ],
    }
    return obj


def git_repository(tenant: str, name: str) -> Obj:
    obj: Obj = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": tenant},
        "spec": {
            "interval": "1m0s",
            "timeout": "60s",
            "url": f"ssh://git@git.example.com/{tenant}/{name}.git",
            "ref": {"branch": "main"},
            "secretRef": {"name": f"{name}-deploy-key"},
            "verify": {"mode": "HEAD", "secretRef": {"name": "pgp-public-keys"}},
            "ignore": "# exclude everything but the deploy folder\n/*\n!/deploy/\n/deploy/**/*.md\n",
            "recurseSubmodules": False,
        },
    }
    return _metadata(obj, tenant, kubectl=False)


_PATCH = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: not-used
spec:
  template:
    spec:
      containers:
        - name: app
          env:
            - name: TENANT
              value: {tenant}
            - name: SHARD
              value: "{index}"
          resources:
            limits:
              memory: 512Mi
            requests:
              cpu: 100m
              memory: 256Mi
"""


def kustomization(tenant: str, name: str, *, patches: int = 0, source_namespace: str | None = None) -> Obj:
    """A tenant's Kustomization; ``source_namespace`` other than ``tenant`` is a denied reference."""
    source_ref: Obj = {"kind": "GitRepository", "name": f"{tenant}-repo"}
    if source_namespace:
        source_ref["namespace"] = source_namespace
    obj: Obj = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": tenant},
        "spec": {
            "interval": "10m0s",
            "retryInterval": "2m0s",
            "timeout": "5m0s",
            "path": f"./deploy/{name}/overlays/production",
            "prune": True,
            "wait": True,
            "force": False,
            "targetNamespace": tenant,
            "sourceRef": source_ref,
            "dependsOn": [{"name": f"{tenant}-infra"}, {"name": f"{tenant}-crds"}],
            "decryption": {"provider": "sops", "secretRef": {"name": "sops-age"}},
            "commonMetadata": {"labels": {"toolkit.fluxcd.io/tenant": tenant, "team": tenant}},
            "postBuild": {
                "substitute": {"cluster_env": "production", "cluster_region": "westeurope", "tenant": tenant},
                "substituteFrom": [
                    {"kind": "ConfigMap", "name": "cluster-vars"},
                    {"kind": "Secret", "name": f"{tenant}-vars", "optional": True},
                ],
            },
            "healthChecks": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{name}-{i}", "namespace": tenant}
                for i in range(3)
            ],
            "images": [{"name": f"registry.example.com/{tenant}/{name}", "newTag": "1.24.3"}],
            "patches": [
                {
                    "patch": _PATCH.format(tenant=tenant, index=i),
                    "target": {"kind": "Deployment", "labelSelector": f"shard={i}"},
                }
                for i in range(patches)
            ],
        },
    }
    return _metadata(obj, tenant, kubectl=patches % 2 == 1)


def _component(index: int) -> Obj:
    """One component of a large chart's values, shaped like ingress-nginx's or a monitoring stack's."""
    name = f"component{index}"
    return {
        "enabled": True,
        "replicaCount": 2 + index % 3,
        "image": {
            "registry": "registry.example.com",
            "repository": f"platform/{name}",
            "tag": f"v2.{index}.1",
            "pullPolicy": "IfNotPresent",
            "digest": "",
        },
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "podAnnotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
        "env": [{"name": f"{name.upper()}_LOG_LEVEL", "value": "info"}, {"name": "GOMAXPROCS", "value": "2"}],
        "service": {"type": "ClusterIP", "ports": {"http": 8080, "metrics": 9090}, "annotations": {}},
        "ingress": {
            "enabled": index % 2 == 0,
            "className": "nginx",
            "hosts": [{"host": f"{name}.apps.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
            "tls": [{"secretName": f"{name}-tls", "hosts": [f"{name}.apps.example.com"]}],
        },
        "nodeSelector": {"kubernetes.io/os": "linux", "agentpool": "user"},
        "tolerations": [{"key": "workload", "operator": "Equal", "value": "tenant", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
                        },
                    }
                ]
            }
        },
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
    }


def helm_release(
    tenant: str,
    name: str,
    *,
    values_bytes: int,
    version: str = "v2",
    service_account: bool = True,
    source_namespace: str | None = None,
) -> Obj:
    """A HelmRelease whose ``spec.values`` is about ``values_bytes`` of JSON."""
    values: Obj = {"global": {"imageRegistry": "registry.example.com", "tenant": tenant}}
    while len(json.dumps(values)) < values_bytes:
        values[f"component{len(values)}"] = _component(len(values))
    source_ref: Obj = {"kind": "HelmRepository", "name": f"{tenant}-charts"}
    if source_namespace:
        source_ref["namespace"] = source_namespace
    spec: Obj = {
        "interval": "30m",
        "releaseName": name,
        "chart": {
            "spec": {
                "chart": name,
                "version": ">=4.10.0 <5.0.0",
                "sourceRef": source_ref,
                "interval": "12h",
                "reconcileStrategy": "ChartVersion",
            }
        },
        "install": {"crds": "CreateReplace", "remediation": {"retries": 3}},
        "upgrade": {"crds": "CreateReplace", "remediation": {"retries": 3, "remediateLastFailure": True}},
        "driftDetection": {"mode": "enabled"},
        "valuesFrom": [{"kind": "ConfigMap", "name": f"{name}-values", "valuesKey": "values.yaml"}],
        "values": values,
    }
    if service_account:
        spec["serviceAccountName"] = "flux-applier"
    obj: Obj = {
        "apiVersion": f"helm.toolkit.fluxcd.io/{version}",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": tenant},
        "spec": spec,
    }
    return _metadata(obj, tenant, kubectl=not service_account)


def alert(tenant: str, name: str, *, foreign_namespace: str | None = None) -> Obj:
    """An Alert over a tenant's objects; ``foreign_namespace`` adds a denied event source."""
    sources: list[Obj] = [{"kind": kind, "name": "*"} for kind in ("Kustomization", "HelmRelease", "GitRepository")]
    sources += [{"kind": "HelmRelease", "name": f"component{i}", "namespace": tenant} for i in range(6)]
    if foreign_namespace:
        sources.append({"kind": "Kustomization", "name": "flux-system", "namespace": foreign_namespace})
    obj: Obj = {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "kind": "Alert",
        "metadata": {"name": name, "namespace": tenant},
        "spec": {
            "providerRef": {"name": "teams"},
            "eventSeverity": "error",
            "eventSources": sources,
            "inclusionList": [".*succeeded.*", ".*failed.*"],
            "exclusionList": ["^Dependencies do not meet ready condition.*"],
            "eventMetadata": {"cluster": "prod-weu-01", "tenant": tenant},
            "summary": f"{tenant} production",
        },
    }
    return _metadata(obj, tenant, kubectl=True)


def _legacy(tenant: str) -> Obj:
    """TENANCY.md's reference example (chart source in ``flux-system``), with real-world metadata."""
    obj = legacy_helmrelease(namespace=tenant)
    obj["spec"]["values"] = {"replicaCount": 2, "service": {"type": "ClusterIP"}}
    return _metadata(obj, tenant, kubectl=True)


def _review(label: str, obj: Obj, uid: int, *, old: Obj | None = None, denied: bool = False) -> Review:
    tenant = obj["metadata"]["namespace"]
    review = admission_review(
        obj,
        operation="UPDATE" if old else "CREATE",
        uid=f"705ab4f5-6393-11e8-b7cc-{uid:012d}",
        username=f"system:serviceaccount:{tenant}:flux-applier",
    )
    request = review["request"]
    request["userInfo"]["groups"] = [
        "system:serviceaccounts",
        f"system:serviceaccounts:{tenant}",
        "system:authenticated",
    ]
    request["userInfo"]["uid"] = f"c0ffee00-0000-4000-8000-{uid:012d}"
    request["requestKind"] = request["kind"]
    request["requestResource"] = request["resource"]
    request["options"] = {
        "kind": "UpdateOptions" if old else "CreateOptions",
        "apiVersion": "meta.k8s.io/v1",
        "fieldManager": "kustomize-controller",
    }
    if old:
        request["oldObject"] = old
    return Review(label, json.dumps(review, separators=(",", ":")).encode(), denied)


def _updated(obj: Obj) -> tuple[Obj, Obj]:
    """``(new, old)``: the same object one generation apart, as an UPDATE review carries it."""
    new = copy.deepcopy(obj)
    new["metadata"]["generation"] += 1
    new["metadata"]["resourceVersion"] = str(int(new["metadata"]["resourceVersion"]) + 977)
    return new, obj


def reviews() -> list[Review]:
    """The review mix, each body checked to lie within 2–20 KB."""
    hr_update, hr_old = _updated(helm_release("team-b", "ingress", values_bytes=3_000))
    hr_update["spec"]["values"]["global"]["tenant"] = "team-b-updated"
    git_update, git_old = _updated(git_repository("team-a", "platform"))
    mix = [
        _review("GitRepository CREATE", git_repository("team-a", "apps"), 1),
        _review("GitRepository UPDATE", git_update, 2, old=git_old),
        _review("Kustomization CREATE, no SA (patched)", kustomization("team-a", "apps"), 3),
        _review("Kustomization CREATE, 8 patches", kustomization("team-b", "platform", patches=8), 4),
        _review(
            "Kustomization cross-namespace source",
            kustomization("team-c", "apps", source_namespace="flux-system"),
            5,
            denied=True,
        ),
        _review("HelmRelease CREATE, values", helm_release("team-a", "redis", values_bytes=3_000), 6),
        _review(
            "HelmRelease CREATE, big values, no SA (patched)",
            helm_release("team-b", "monitoring", values_bytes=5_000, service_account=False),
            7,
        ),
        _review("HelmRelease UPDATE, values", hr_update, 8, old=hr_old),
        _review(
            "HelmRelease v2beta1 (deprecated)",
            helm_release("team-c", "cache", values_bytes=3_000, version="v2beta1"),
            9,
        ),
        _review("HelmRelease legacy (TENANCY.md)", _legacy("nginx"), 10, denied=True),
        _review("Alert", alert("team-a", "on-call"), 11),
        _review(
            "Alert cross-namespace source", alert("team-b", "on-call", foreign_namespace="flux-system"), 12, denied=True
        ),
    ]
    for review in mix:
        if not MIN_BYTES <= len(review.body) <= MAX_BYTES:
            raise ValueError(f"{review.label}: {len(review.body)} bytes, outside {MIN_BYTES}–{MAX_BYTES}")
    return mix


def requests() -> list[tuple[str, bytes]]:
    """``(path, body)`` in the order the load sends them: every review to /mutate, then to /validate."""
    return [(route, review.body) for review in reviews() for route in ROUTES]
