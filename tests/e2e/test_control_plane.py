"""The test control plane itself: the real version, RBAC on, kubectl usable, restartable with its data."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.binaries import kubernetes_version
from tests.support.control_plane import ControlPlane, ControlPlaneError
from tests.support.kube import Impersonate, Kubectl


def test_version_is_the_pinned_kubernetes(admin_api: client.ApiClient) -> None:
    info = client.VersionApi(admin_api).get_code()
    assert info.git_version == kubernetes_version()


def test_rbac_denies_an_unbound_service_account(
    admin_api: client.ApiClient, namespace: str, impersonate: Impersonate
) -> None:
    core = client.CoreV1Api(admin_api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(impersonate(namespace, "nobody")).list_namespaced_pod(namespace)
    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:nobody" in str(denied.value.body)


def test_kubectl_applies_and_reads_back(kubectl: Kubectl, admin_api: client.ApiClient, namespace: str) -> None:
    manifest = json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "via-kubectl"}, "data": {"k": "v"}}
    )
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
    read = client.CoreV1Api(admin_api).read_namespaced_config_map("via-kubectl", namespace)
    assert read.data == {"k": "v"}
    listed = json.loads(kubectl("get", "configmaps", "-n", namespace, "-o", "json").stdout)
    assert "via-kubectl" in {item["metadata"]["name"] for item in listed["items"]}


def test_restart_apiserver_keeps_port_and_data(
    control_plane: ControlPlane, admin_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(admin_api)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="survivor"), data={"before": "restart"})
    )
    old_pid, old_server = control_plane.apiserver.pid, control_plane.server

    control_plane.restart_apiserver()

    assert control_plane.apiserver.pid != old_pid
    assert control_plane.server == old_server
    # The same client (its pooled connections now dead) reaches the new process with the old credentials.
    assert core.read_namespaced_config_map("survivor", namespace).data == {"before": "restart"}


def test_start_failure_raises_with_the_log_tail(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_etcd = bin_dir / "etcd"
    fake_etcd.write_text("#!/bin/sh\necho 'etcd: bad flag, giving up' >&2\nexit 3\n")
    fake_etcd.chmod(fake_etcd.stat().st_mode | stat.S_IXUSR)

    plane = ControlPlane(bin_dir, tmp_path / "work")
    (tmp_path / "work").mkdir()
    with pytest.raises(ControlPlaneError, match=r"(?s)etcd exited with code 3.*bad flag, giving up"):
        plane.start()
    assert not plane.etcd.running and not plane.apiserver.running
    assert os.listdir(tmp_path / "work")  # credentials and the log stay for a post-mortem
