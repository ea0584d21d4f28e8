"""Set-up shared by the benchmarks that need a real cluster: control plane + CRDs, raw HTTPS, child processes.

The control plane is the tests' (``tests/support/control_plane.py``: etcd + kube-apiserver on
loopback); the pinned upstream Flux release's CRDs are installed the way the e2e tests install them
(``tests.support.flux_crds.install``) with the kubectl of the apiserver's own version.
``/proc`` readers let a benchmark charge CPU and memory to one process (and the children it reaped)
rather than to the whole shared machine.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import http.client
import json
import os
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from fluxwarden.certs.authority import issue, load_pair, write_pair
from tests.support import flux_crds
from tests.support.binaries import binary_dir
from tests.support.control_plane import ControlPlane
from tests.support.kube import KubectlRunner, kubectl_binary

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1
_STOP_GRACE_SECONDS = 30.0


@dataclass
class Cluster:
    """A running control plane with Flux's CRDs Established, and kubectl against it as admin."""

    plane: ControlPlane
    kubectl: KubectlRunner
    version: str


# Every request's user, verb and object, once, when its answer is complete (a watch: when it ends).
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: None
  users: ["system:apiserver"]
- level: Metadata
"""


class _AuditedControlPlane(ControlPlane):
    """The tests' control plane, its apiserver writing an audit log (JSON lines) of every client's requests."""

    def __init__(self, bins: Path, work: Path, audit_log: Path) -> None:
        super().__init__(bins, work)
        self.audit_log = audit_log

    def start_apiserver(self) -> None:
        policy = self.audit_log.with_name("audit-policy.yaml")
        policy.write_text(AUDIT_POLICY)
        flags = [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}", "--audit-log-format=json"]
        component, start = self.apiserver, self.apiserver.start
        component.start = lambda argv: start([*argv, *flags])  # type: ignore[method-assign]
        try:
            super().start_apiserver()
        finally:
            del component.start


@contextlib.contextmanager
def cluster(bins: Path, work: Path, *, audit_log: Path | None = None) -> Iterator[Cluster]:
    """Start etcd + kube-apiserver in ``work``, install the CRDs; everything is stopped on the way out.

    ``audit_log``: the apiserver also logs every request there (``audit_events`` reads it), so a benchmark
    can count one client's requests (see ``user_kubeconfig``).
    """
    plane = ControlPlane(bins, work) if audit_log is None else _AuditedControlPlane(bins, work, audit_log)
    with plane:
        kubectl = KubectlRunner(kubectl_binary(bins), plane.kubeconfig, work / "kubectl-cache")
        flux_crds.install(kubectl)
        version = str(json.loads(kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"])
        yield Cluster(plane, kubectl, version)


class Api:
    """Raw HTTPS to the apiserver as admin over one keep-alive connection: no client library in the timing."""

    def __init__(self, plane: ControlPlane, timeout: float | None = 30) -> None:
        context = ssl.create_default_context(cafile=str(plane.ca_file))
        context.load_cert_chain(str(plane.admin_cert), str(plane.admin_key))
        self.connection = http.client.HTTPSConnection("127.0.0.1", plane.port, context=context, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, float]:
        """Status, body and seconds from sending the request to the last byte of the answer."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        started = time.perf_counter()
        self.connection.request(method, path, body, headers)
        response = self.connection.getresponse()
        data = response.read()
        return response.status, data, time.perf_counter() - started

    def post(self, path: str, body: bytes) -> tuple[int, bytes, float]:
        return self.request("POST", path, body)

    def get_json(self, path: str) -> dict[str, Any]:
        status, data, _ = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {data[:300]!r}")
        found: dict[str, Any] = json.loads(data)
        return found

    def items(self, path: str) -> list[dict[str, Any]]:
        """The items of a list call."""
        found: list[dict[str, Any]] = self.get_json(path)["items"]
        return found

    def close(self) -> None:
        self.connection.close()


class KubeApi(Api):
    """``Api`` with a content type per request and one reconnect if the server hung up.

    Phases are minutes apart, and an idle keep-alive connection may be closed by the API server in
    between; a retried create that already happened answers 409, which callers accept.
    """

    def send(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        status, raw = self._exchange(method, path, data, {"Content-Type": content_type, "Accept": "application/json"})
        return status, json.loads(raw) if raw else {}

    def send_text(self, path: str) -> tuple[int, str]:
        status, raw = self._exchange("GET", path, None, {"Accept": "text/plain"})
        return status, raw.decode()

    def _exchange(self, method: str, path: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        """One request, sent again once on a new connection if the server had closed the idle one."""
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, data, headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
                self.connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def must(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        status, answer = self.send(method, path, body, content_type)
        if status >= 300 and not (method == "POST" and status == 409):
            raise RuntimeError(f"{method} {path}: HTTP {status}: {str(answer)[:300]}")
        return answer

    def items(self, path: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.must("GET", path)["items"]
        return found


API_SERVER_OWN = ("leases", "endpoints", "endpointslices")  # its own lease and endpoint upkeep, not the controller
DISCOVERY = "GET discovery"  # api_requests' key for non-resource GETs (/api, /apis, /version)


def api_requests(api: KubeApi, *, discovery: bool = False) -> collections.Counter[str]:
    """The API server's own count of requests so far (``apiserver_request_total``), by verb and resource;
    watches, non-resource calls (this scrape) and the API server's own upkeep left out. The controller
    (no leader election here) is then the only client during a window.

    ``discovery`` counts non-resource GETs too, as ``DISCOVERY``: they include one of these scrapes
    (the one before a difference), which the caller subtracts.
    """
    status, text = api.send_text("/metrics")
    if status != 200:
        raise RuntimeError(f"GET /metrics: HTTP {status}")
    counts: collections.Counter[str] = collections.Counter()
    families = [f for f in text_string_to_metric_families(text) if f.name == "apiserver_request"]
    for sample in (s for f in families for s in f.samples if s.name == "apiserver_request_total"):
        verb, resource = sample.labels.get("verb", ""), sample.labels.get("resource", "")
        if discovery and verb == "GET" and resource == "":
            counts[DISCOVERY] += int(sample.value)
        elif verb not in ("WATCH", "CONNECT") and resource not in ("", *API_SERVER_OWN):
            dry = " dry-run" if sample.labels.get("dry_run") else ""
            counts[f"{verb} {resource}{dry}"] += int(sample.value)
    return counts


def user_kubeconfig(plane: ControlPlane, user: str, path: Path) -> Path:
    """A kubeconfig like the admin's for ``user`` (a client certificate in ``system:masters`` from the plane's
    client CA): the same rights, but the audit log tells that client's requests apart."""
    ca = load_pair(plane.pki_dir / "client-ca.crt", plane.pki_dir / "client-ca.key")
    cert, key = path.with_suffix(".crt"), path.with_suffix(".key")
    write_pair(issue(ca, user, organizations=("system:masters",), client=True), cert, key)
    config = yaml.safe_load(plane.kubeconfig.read_text())
    for entry in config["users"]:
        entry["user"] = {"client-certificate": str(cert), "client-key": str(key)}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def audit_events(log: Path, start: int = 0, end: int | None = None) -> list[dict[str, Any]]:
    """The audit events written between byte offsets ``start`` and ``end`` (None: the end of the file now).

    Take an offset as ``log.stat().st_size``; the apiserver writes each event before it answers.
    """
    with log.open("rb") as handle:
        handle.seek(start)
        data = handle.read() if end is None else handle.read(max(0, end - start))
    return [json.loads(line) for line in data.splitlines() if line.strip()]


TENANT_ADMIN_ROLE = "bench-tenant-admin"


def grant_tenant_admin(
    api: KubeApi, config_namespace: str, applier: str, targets: Sequence[str], *, in_config: bool = False
) -> None:
    """The applier account in ``config_namespace`` (which must exist), and each target namespace created with
    a RoleBinding that gives the account a tenant-admin ClusterRole there, and only there (``in_config``:
    in its own namespace too)."""
    api.must("POST", f"/api/v1/namespaces/{config_namespace}/serviceaccounts", {"metadata": {"name": applier}})
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    api.must(
        "POST",
        f"{rbac}/clusterroles",
        {
            "metadata": {"name": TENANT_ADMIN_ROLE},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        },
    )
    binding = {
        "metadata": {"name": applier},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": TENANT_ADMIN_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": applier, "namespace": config_namespace}],
    }
    for namespace in targets:
        api.must("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
        api.must("POST", f"{rbac}/namespaces/{namespace}/rolebindings", binding)
    if in_config:
        api.must("POST", f"{rbac}/namespaces/{config_namespace}/rolebindings", binding)


def _die_with_parent() -> None:
    """Runs in the child before exec: if the benchmark is killed outright, the kernel kills the child too."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Child:
    """One benchmark child in its own process group (so stopping it stops what it forked), log to a file."""

    def __init__(
        self, argv: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None, stdout_pipe: bool = False
    ) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else log,
                stderr=log,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stdout(self) -> IO[bytes]:
        assert self.process.stdout is not None
        return self.process.stdout

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"pid {self.pid} exited with {self.process.returncode}; log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def stop(self, grace: float = _STOP_GRACE_SECONDS) -> int | None:
        """SIGTERM the group, SIGKILL it after ``grace``; the exit code (None if it had to be killed)."""
        code: int | None = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = self.process.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # also any descendant the leader left behind
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


@dataclass(frozen=True)
class Cpu:
    """CPU seconds of one process: its own threads, and the children it has waited for (e.g. git)."""

    own: float
    children: float

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.own - other.own, self.children - other.children)

    @property
    def total(self) -> float:
        return self.own + self.children


def cpu_of(pid: int) -> Cpu:
    """utime+stime and cutime+cstime from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return Cpu((utime + stime) / CLOCK_TICKS, (cutime + cstime) / CLOCK_TICKS)


def self_cpu() -> Cpu:
    """This process, the same way but finer than clock ticks (getrusage; only waited-for children count)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return Cpu(own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime)


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) in KiB from ``/proc/<pid>/status``."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def machine_busy() -> tuple[float, float]:
    """Seconds of CPU busy (all cores) and wall seconds (all cores) since boot, from ``/proc/stat``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def rerun_from_copy(module: str, argv: list[str], args: Any, *, show_commit: bool = True) -> int:
    """Run ``python -m module`` again from a copy of fluxwarden/ and manifests/ (tree or revision), and of
    this tree's tests/ and bench/ (the harness stays current, so a revision is measured the same way).

    ``args.code`` is ``copy`` (this tree) or a git revision (``show_commit``: name its short hash too);
    ``args.deadline`` bounds the child. Others edit the tree during a run of many minutes; a
    half-written module would crash a controller started late in it. The copy is the child's current
    directory, which comes first on ``sys.path`` for ``python -m``, before the editable install's finder.
    """
    bins = binary_dir()
    parts = ("fluxwarden", "manifests")
    with tempfile.TemporaryDirectory(prefix="fluxwarden-bench-code-") as tmp:
        if args.code == "copy":
            for part in parts:
                shutil.copytree(ROOT / part, Path(tmp) / part, ignore=shutil.ignore_patterns("__pycache__"))
            label = "this tree, copied"
        else:
            archive = subprocess.Popen(
                ["git", "-C", str(ROOT), "archive", "--format=tar", args.code, *parts], stdout=subprocess.PIPE
            )
            subprocess.run(["tar", "-x", "-C", tmp], stdin=archive.stdout, check=True)
            if archive.wait() != 0:
                raise RuntimeError(f"git archive {args.code} failed")
            label = f"git {args.code}"
            if show_commit:
                commit = subprocess.run(
                    ["git", "-C", str(ROOT), "rev-parse", "--short", args.code],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                label += f" ({commit})"
        for harness in ("bench", "tests"):
            shutil.copytree(ROOT / harness, Path(tmp) / harness, ignore=shutil.ignore_patterns("__pycache__"))
        print(f"code: fluxwarden from {label}, in {tmp}", flush=True)
        rest = [a for i, a in enumerate(argv) if a != "--code" and (i == 0 or argv[i - 1] != "--code")]
        rest = [a for a in rest if not a.startswith("--code=")]
        child = subprocess.Popen(
            [sys.executable, "-m", module, *rest, "--code", "worktree"],
            cwd=tmp,
            env={**os.environ, "FLUXWARDEN_TEST_BIN": str(bins)},
        )
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())  # the child unwinds and cleans up
        try:
            return child.wait(timeout=args.deadline + 120)
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()


def arm_deadline(module: str, seconds: float) -> None:
    """SIGALRM after ``seconds`` raises TimeoutError, SIGTERM exits: both unwind the with-blocks (children
    stopped, directories removed). ``signal.alarm(0)`` disarms it."""

    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"{module} ran past --deadline; stopping everything")

    signal.signal(signal.SIGALRM, expired)
    signal.alarm(int(seconds))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
