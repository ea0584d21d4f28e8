"""Run the real helm CLI (v4) as a tenant, with nothing secret on its command line.

* Identity: ``--kube-as-user system:serviceaccount:<ns>:<sa>``, through a kubeconfig that holds only
  the controller's own credentials (a private 0600 file). The API server gives an impersonated
  service account its groups (``system:serviceaccounts``, ``system:serviceaccounts:<ns>``,
  ``system:authenticated``) itself, and needs only ``impersonate`` on ``serviceaccounts`` for it.
  Passing ``--kube-as-group`` would need ``impersonate`` on ``groups``, which lets the holder act as
  ``system:masters``: the controller is never given that.
* Values go in a private file (``-f``); the chart is a local directory; post-renderer config is a file.
* helm v4 applies server-side as field manager ``helm`` (with ``--force-conflicts`` on upgrades,
  so a release adopted from Flux's ``helm-controller`` manager takes its fields over); drift repair
  applies as ``helm`` too.
* One ``$HOME`` per controller keeps helm's discovery cache warm between runs.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger("fluxwarden.controllers.helm")

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
KILL_GRACE = 30.0  # beyond helm's own --timeout before the process is killed
OUTPUT_LIMIT = 1 << 20


class HelmError(Exception):
    """helm exited non-zero, or did not finish in time; ``message`` is its one-line error."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timed_out = timed_out


@dataclass(frozen=True)
class Identity:
    """Whom helm acts as: a service account and the groups the API server gives it."""

    namespace: str
    service_account: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def flags(self) -> list[str]:
        return ["--kube-as-user", self.user]  # the groups come from the API server (see the module doc)


def _one_line(stderr: str) -> str:
    """helm's ``Error: ...`` line (the last one), whitespace collapsed; else the last non-empty line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    chosen = errors[-1] if errors else (lines[-1] if lines else "helm failed without a message")
    if chosen.startswith("Error:"):
        chosen = chosen[len("Error:") :].strip()
    return " ".join(chosen.split())


def kubeconfig_for(configuration: Any) -> dict[str, Any]:
    """A kubeconfig holding the controller's own connection and credentials (never a tenant's)."""
    cluster: dict[str, Any] = {"server": configuration.host}
    if configuration.ssl_ca_cert:
        cluster["certificate-authority"] = configuration.ssl_ca_cert
    if not configuration.verify_ssl:
        cluster["insecure-skip-tls-verify"] = True
    user: dict[str, Any] = {}
    if configuration.cert_file:
        user["client-certificate"] = configuration.cert_file
    if configuration.key_file:
        user["client-key"] = configuration.key_file
    authorization = (configuration.api_key or {}).get("authorization") or (configuration.api_key or {}).get(
        "BearerToken"
    )
    if authorization:
        token = str(authorization).removeprefix("Bearer ").strip()
        if IN_CLUSTER_TOKEN.exists() and IN_CLUSTER_TOKEN.read_text().strip() == token:
            user["tokenFile"] = str(IN_CLUSTER_TOKEN)  # rotated by the kubelet: read fresh on every run
        else:
            user["token"] = token
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": "controller", "user": user}],
        "contexts": [{"name": "controller", "context": {"cluster": "cluster", "user": "controller"}}],
        "current-context": "controller",
    }


class Helm:
    """The helm binary, a private home for it, and a count of the processes it ran (by command)."""

    def __init__(self, binary: str, configuration: Any, home: Path) -> None:
        found = shutil.which(binary) if os.sep not in binary else binary
        if not found:
            raise ValueError(f"helm binary '{binary}' not found on PATH; install helm v4 or pass --helm-binary")
        self.home = home
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(home, 0o700)
        self.program = Path(found)
        self.kubeconfig = home / "kubeconfig"
        fd = os.open(self.kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(kubeconfig_for(configuration), out)
        self.processes: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def scratch(self) -> tempfile.TemporaryDirectory[str]:
        """A private directory for one release action's files (values, chart, post-renderer config)."""
        return tempfile.TemporaryDirectory(prefix="run-", dir=self.home)

    def run(
        self,
        args: list[str],
        identity: Identity,
        timeout: float,
        env: Mapping[str, str] | None = None,
        redact: Any = None,
    ) -> str:
        """Run ``helm <args>`` as ``identity``; stdout on success, else :class:`HelmError` (masked by ``redact``)."""
        command = [str(self.program), *args, "--kubeconfig", str(self.kubeconfig), *identity.flags()]
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            "HELM_PLUGINS": str(self.home / "plugins"),
            "TMPDIR": str(self.home),
            **(env or {}),
        }
        with self._lock:
            self.processes[args[0]] += 1
        logger.debug("helm %s as %s", " ".join(args[:2]), identity.user)
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=environment,
            text=True,
            start_new_session=True,  # so a kill takes helm's post-renderer children too
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout + KILL_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            limit = timeout + KILL_GRACE
            raise HelmError(f"helm {args[0]} did not finish within {limit:g}s and was killed", True) from None
        if process.returncode != 0:
            message = _one_line(stderr[-OUTPUT_LIMIT:])
            raise HelmError(redact(message) if redact else message, "context deadline exceeded" in message)
        return stdout[-OUTPUT_LIMIT:]
