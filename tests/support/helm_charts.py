"""Test charts for the helm controller, as template sets for ``HelmRepoServer.add_chart(templates=...)``.

A bare kube-apiserver runs no controllers, so the charts hold objects that are ready as soon as they
exist (ConfigMaps, Secrets, Services, ServiceAccounts, RBAC, a Flux CRD's object) and Jobs as hooks,
whose outcome ``tests.support.jobs.JobDriver`` writes from the label :data:`OUTCOME`, set by values
(``Complete``, ``Failed`` or ``Never``: see :func:`hooks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.support.helm_repo import HelmRepoServer

OUTCOME = "test.fluxwarden.io/outcome"


def configmaps(count: int = 1) -> dict[str, str]:
    """``count`` ConfigMaps ``<release>-<i>``, each holding the chart version and the values as JSON."""
    template = f"""\
{{{{- range $i := until {count} }}}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{{{ $.Release.Name }}}}-{{{{ $i }}}}
data:
  chartVersion: {{{{ $.Chart.Version | quote }}}}
  values: {{{{ toJson $.Values | quote }}}}
{{{{- end }}}}
"""
    return {"configmaps.yaml": template}


WORKLOAD = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}
type: Opaque
data:
  token: {{ .Values.token | default "none" | b64enc | quote }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  type: ClusterIP
  selector: {app: {{ .Release.Name }}}
  ports:
    - {name: http, port: {{ .Values.port | default 80 }}, targetPort: 8080}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .Release.Name }}
rules:
  - {apiGroups: [""], resources: [configmaps], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .Release.Name }}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: {{ .Release.Name }}}
subjects:
  - {kind: ServiceAccount, name: {{ .Release.Name }}, namespace: {{ .Release.Namespace }}}
"""


def workload() -> dict[str, str]:
    """A ServiceAccount, a Secret (``token`` from the values), a ClusterIP Service, a Role and its binding."""
    return {"workload.yaml": WORKLOAD}


def _job(name: str, hook: str, outcome: str) -> str:
    return f"""\
apiVersion: batch/v1
kind: Job
metadata:
  name: {{{{ .Release.Name }}}}-{name}
  labels:
    {OUTCOME}: {outcome}
  annotations:
    helm.sh/hook: {hook}
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - {{name: {name}, image: registry.example/{name}:1.0, command: ["true"]}}
"""


# On upgrade, ``upgradeHook`` (else ``hook``) decides, so an upgrade can fail while a reinstall succeeds.
_HOOK_OUTCOME = (
    '{{ if .Release.IsUpgrade }}{{ .Values.upgradeHook | default .Values.hook | default "Complete" | quote }}'
    '{{ else }}{{ .Values.hook | default "Complete" | quote }}{{ end }}'
)
_TEST_OUTCOME = '{{ .Values.test | default "Complete" | quote }}'


def hooks(count: int = 1) -> dict[str, str]:
    """``count`` ConfigMaps, a pre-install/post-upgrade hook Job and a test Job.

    Values: ``hook`` (install and upgrade), ``upgradeHook`` (upgrade only), ``test``; each ``Complete``
    (default), ``Failed`` or ``Never``.
    """
    return {
        **configmaps(count),
        "hook.yaml": _job("hook", "pre-install,post-upgrade", _HOOK_OUTCOME),
        "test.yaml": _job("test", "test", _TEST_OUTCOME),
    }


def broken() -> dict[str, str]:
    """A chart that fails to render unless the value ``x`` is set (helm's ``required``)."""
    return {
        "broken.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}
data:
  x: {{ required "value x is required" .Values.x | quote }}
"""
    }


PROVIDER = ("notification.toolkit.fluxcd.io", "v1beta3", "providers", "Provider")
"""The CRD-backed kind of :func:`custom_resource`: installed with Flux's CRDs, reconciled by nothing here."""


def custom_resource() -> dict[str, str]:
    """One object of a CRD the test cluster has (Flux's notification Provider), beside a ConfigMap."""
    group, version, _, kind = PROVIDER
    return {
        **configmaps(1),
        "provider.yaml": f"""\
apiVersion: {group}/{version}
kind: {kind}
metadata:
  name: {{{{ .Release.Name }}}}
spec:
  type: generic
  address: {{{{ .Values.address | default "http://127.0.0.1:9/hook" | quote }}}}
""",
    }


def publish(
    repo: HelmRepoServer,
    name: str,
    version: str,
    templates: Mapping[str, str],
    values: Mapping[str, Any] | None = None,
) -> str:
    """Add a chart version to ``repo`` and return its archive URL (for ``helm install`` by hand)."""
    repo.add_chart(name, version, values, templates=templates)
    return repo.chart_url(name, version)
