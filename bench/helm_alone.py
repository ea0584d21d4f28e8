"""Each helm call of a reconcile alone, against a real cluster with no controller running.

``bench.helm`` runs it after its largest N, to say what one release costs without contention and
whether helm's process start and discovery dominate: ``helm version`` (the bare process start),
``helm template``, ``helm status``, the controller's ``helm install`` with a cold and a warm
discovery cache and with the post-renderer plugin it adds to every install (and that plugin alone),
and the ``helm package`` the source controller runs per HelmChart. Each process's own CPU comes from
``wait4``, its peak RSS from ``VmHWM`` read while it runs, its API requests from the API server's
``apiserver_request_total``.
"""

from __future__ import annotations

import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.cluster import DISCOVERY, KubeApi, api_requests, grant_tenant_admin
from bench.helm_workload import APPLIER, CHART, PREFIX
from bench.process_tree import PeakRss
from bench.stats import pct
from tests.support.binaries import binary_dir
from tests.support.control_plane import ControlPlane

MIB = 1024.0


@dataclass
class Call:
    """One kind of helm call timed alone: wall and CPU ms, API requests, per sample."""

    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)  # the process's VmHWM, read until it exits
    requests: list[collections.Counter[str]] = field(default_factory=list)

    def line(self, name: str) -> str:
        api = ""
        if self.requests:
            total = statistics.median(sum(r.values()) for r in self.requests)
            keys = collections.Counter(k for r in self.requests for k in r)
            each = ", ".join(f"{k} {statistics.median(r[k] for r in self.requests):g}" for k, _ in keys.most_common(8))
            api = f"\n      API requests {total:g}: {each}"
        return (
            f"  {name:<54} wall p50 {pct(self.wall_ms, 50):6.1f} ms (min {min(self.wall_ms):6.1f}), CPU p50 "
            f"{pct(self.cpu_ms, 50):6.1f} ms, peak RSS {max(self.rss_kib) / MIB:5.1f} MiB{api}"
        )


@dataclass
class HelmAlone:
    calls: dict[str, Call]
    argv: str


def helm_env(home: Path, discovery_cache: Path) -> dict[str, str]:
    """A throw-away helm home; ``KUBECACHEDIR`` is where client-go keeps its discovery cache."""
    return {
        **os.environ, "HOME": str(home), "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data"),
        "KUBECACHEDIR": str(discovery_cache),
    }  # fmt: skip


def post_renderer(work: Path, name: str, namespace: str) -> tuple[list[str], dict[str, str], Path] | None:
    """The controller's post-renderer for a HelmRelease with no postRenderers (the owner labels alone):
    helm's flags, its environment and the plugin's config file; None for code from before the plugin."""
    try:
        from fluxwarden.controllers.helm import postrender
    except ImportError:
        return None
    owner = {"helm.toolkit.fluxcd.io/name": name, "helm.toolkit.fluxcd.io/namespace": namespace}
    scratch = Path(tempfile.mkdtemp(prefix="postrender-", dir=work))
    prepared = postrender.prepare(scratch, None, None, owner, kustomize=str(binary_dir() / "kustomize"))
    return prepared.args, prepared.env, Path(prepared.args[-1])


def time_helm(plane: ControlPlane, work: Path, archive: Path, release: tuple[str, str], samples: int) -> HelmAlone:
    """Each helm call of a reconcile alone, against the cluster with no controller running.

    ``install`` (the controller's flags) of a fresh release into a fresh namespace where
    ``bench-config:flux-applier`` is tenant admin, impersonated as the controller does: with a cold
    discovery cache (an empty ``KUBECACHEDIR`` per call, as a helm with a new home has), a warm one
    (shared, filled once; the controller keeps one ``$HOME``), and warm with the post-renderer the
    controller adds to every install (its plugin: a Python interpreter, then kustomize), whose
    parts are timed alone too.
    """
    helm = str(binary_dir() / "helm")
    api = KubeApi(plane, timeout=120)
    calls: dict[str, Call] = collections.defaultdict(Call)
    values = work / "values.yaml"
    values.write_text("tenant: alone\n")
    # as the controller's runner.Identity: the user only, the API server adds a service account's groups
    impersonate = ["--kube-as-user", f"system:serviceaccount:{PREFIX}-config:{APPLIER}"]
    kube = ["--kubeconfig", str(plane.kubeconfig)]
    warm = work / "discovery-warm"
    namespaces = [f"{PREFIX}-alone-{i:02d}" for i in range(3 * samples + 1)]
    grant_tenant_admin(api, f"{PREFIX}-config", APPLIER, namespaces)
    post = post_renderer(work, "alone", f"{PREFIX}-config")
    rendered = work / "rendered.yaml"

    def install(name: str, namespace: str, *extra: str) -> list[str]:
        """The controller's install (fluxwarden/controllers/helm/commands.py, Flux's defaults)."""
        return [
            helm, "install", name, str(archive), "--values", str(values), "--namespace", namespace, "--timeout",
            "300s", "--wait=watcher", "--wait-for-jobs", "--take-ownership", "--server-side=true", *kube,
            *impersonate, *extra,
        ]  # fmt: skip

    def run(
        kind: str | None,
        argv: list[str],
        cache: Path,
        count: bool = True,
        *,
        extra_env: dict[str, str] | None = None,
        stdin: Path | None = None,
        stdout: Path | None = None,
    ) -> None:
        home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
        before_requests = api_requests(api, discovery=True) if count else None
        out, err = stdout or home / "out.txt", home / "err.txt"
        with out.open("wb") as sink, err.open("wb") as errors, (stdin or Path(os.devnull)).open("rb") as source:
            began = time.perf_counter()
            env = {**helm_env(home, cache), **(extra_env or {})}
            process = subprocess.Popen(argv, env=env, stdin=source, stdout=sink, stderr=errors)
            with PeakRss(process.pid) as peak:
                _, status, usage = os.wait4(process.pid, 0)  # this child's own CPU (and its reaped children's)
            wall = (time.perf_counter() - began) * 1e3
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} {argv[1]}: exit {process.returncode}: {err.read_text()[-500:]}")
        if kind is None:
            return
        call = calls[kind]
        call.wall_ms.append(wall)
        call.cpu_ms.append((usage.ru_utime + usage.ru_stime) * 1e3)
        call.rss_kib.append(peak.kib)
        if before_requests is not None:
            found = api_requests(api, discovery=True) - before_requests
            found[DISCOVERY] -= 1  # the first of the two scrapes
            call.requests.append(+found)

    try:
        run(None, install("alone-warmup", namespaces[-1]), warm, count=False)  # fills the warm cache
        namespace, name = release
        for index in range(samples):
            cold = Path(tempfile.mkdtemp(prefix="discovery-", dir=work))
            run("helm version (process start)", [helm, "version", "--short"], cold, count=False)
            template = [helm, "template", "alone", str(archive), "--values", str(values)]
            run("helm template (render only)", template, cold, False, stdout=rendered)
            if name:
                status = [helm, "status", name, "--namespace", namespace, *kube]
                run("helm status, cold discovery cache", status, cold)
                run("helm status, warm", status, warm)
            cold = Path(tempfile.mkdtemp(prefix="discovery-", dir=work))
            run("helm install, cold discovery cache", install(f"alone-{index}", namespaces[3 * index]), cold)
            run("helm install, warm", install(f"alone-{index}", namespaces[3 * index + 1]), warm)
            if post is not None:
                args, env, config = post
                kind = "helm install + post-renderer, warm (the controller's)"
                run(kind, install(f"alone-{index}", namespaces[3 * index + 2], *args), warm, extra_env=env)
                plugin = [sys.executable, "-P", "-m", "fluxwarden.controllers.helm.plugin", str(config)]
                run("  post-renderer plugin alone (Python + kustomize)", plugin, cold, False, stdin=rendered)
                imports = [sys.executable, "-P", "-c", "import fluxwarden.controllers.helm.plugin.run"]
                run("  of it: Python start + the plugin's imports", imports, cold, False)
            chart = Path(tempfile.mkdtemp(prefix="chart-", dir=work))
            shutil.unpack_archive(archive, chart)
            package = [helm, "package", str(chart / CHART), "-d", str(chart)]
            run("helm package (source controller, per HelmChart)", package, cold, count=False)
    finally:
        api.close()
    argv = install("NAME", "NAMESPACE", *(post[0] if post else []))
    return HelmAlone(dict(calls), " ".join(["helm", *argv[1:]]))
