"""FluxConfig e2e helpers: create, read and wait on FluxConfigs and the objects the controller makes.

Every wait polls the real API server and, on timeout, says what the FluxConfig's status was (its
compliance, conditions and ``statuses[]``), so a failing test says why. :class:`ComplianceWatch`
records every status the API server stored, through a watch, so a short-lived ``Pending`` is seen.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.fluxconfig.api import FluxConfigOptions
from fluxwarden.controllers.kustomize.api import KUSTOMIZATION
from fluxwarden.controllers.runtime.kube import Resource
from fluxwarden.controllers.source.api import GIT_REPOSITORY
from fluxwarden.tenancy import Settings, cut
from tests.support.git_server import GitHttpServer, GitRepo
from tests.support.ssh_server import SshGitServer
from tests.support.tenants import configmap

FLUX_CONFIG = Resource("clusterconfig.azure.com", "v1beta1", "fluxconfigs", "FluxConfig")
CONTROLLERS = ("source", "kustomize", "helm", "fluxconfig")
MANAGED = "clusterconfig.azure.com/is-managed"
NAME_LABEL = "clusterconfig.azure.com/name"
NAMESPACE_LABEL = "clusterconfig.azure.com/namespace"
GENERATED_KEY = "clusterconfig.azure.com/generated-key"
USE_MANAGED_SOURCE = "clusterconfig.azure.com/use-managed-source"
FINALIZER = "clusterconfig.azure.com/finalizer"
FIELD_MANAGER = "fluxconfig-controller"
APPLIER = "flux-applier"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
SHARD = "sharding.fluxcd.io/key"

T = TypeVar("T")


class ControllerSets:
    """Reconcilers (source, kustomize, helm, fluxconfig) watching one namespace each, stopped at the end.

    One namespace per set keeps this module's controllers off every other module's objects without a
    shard label (the FluxConfig's children carry only the managed labels), and lets a test restart them.
    """

    def __init__(self, start: Callable[..., Reconcilers]) -> None:
        self._start = start
        self.running: list[Reconcilers] = []

    def run(
        self, namespace: str | None, settings: Settings | None = None, shard: str | None = None, **fluxconfig: Any
    ) -> Reconcilers:
        """Reconcilers for ``namespace``, or (``namespace=None``) for the objects labelled ``shard``."""
        options = FluxConfigOptions(settings=settings or Settings(), **fluxconfig)
        selector = f"{SHARD}={shard}" if shard else None
        reconcilers = self._start(CONTROLLERS, selector, namespace=namespace, fluxconfig=options)
        self.running.append(reconcilers)
        return reconcilers

    def stop(self, reconcilers: Reconcilers) -> None:
        reconcilers.stop()
        self.running.remove(reconcilers)

    def stop_all(self) -> None:
        for reconcilers in list(self.running):
            self.stop(reconcilers)


@pytest.fixture
def controllers(start_reconcilers: Callable[..., Reconcilers], fluxconfig_crd: str) -> Iterator[ControllerSets]:
    """The FluxConfig modules' controllers (import this fixture), all stopped after the test."""
    sets = ControllerSets(start_reconcilers)
    yield sets
    sets.stop_all()


class ConfigRepo:
    """A fresh repository on a git server (smart HTTP(S) or sshd) and a working copy that pushes to it."""

    def __init__(self, server: GitHttpServer | SshGitServer, tmp_path: Path, prefix: str = "fc") -> None:
        self.server = server
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.url = server.create_repo(self.name)
        self.work = GitRepo(tmp_path / self.name)

    def push(self, files: dict[str, str] | None = None, delete: tuple[str, ...] = ()) -> str:
        """Commit ``files`` (and remove ``delete``), push; the new commit's SHA."""
        sha = self.work.commit(files or {}, delete=delete)
        self.work.push(self.server.repo_path(self.name))
        return sha


def git_source(url: str, **extra: Any) -> dict[str, Any]:
    """``spec.gitRepository`` for branch main, polled every 2 s."""
    return {"url": url, "repositoryRef": {"branch": "main"}, "syncIntervalInSeconds": 2, **extra}


def entry(path: str, **extra: Any) -> dict[str, Any]:
    """A ``spec.kustomizations`` entry that retries every 2 s."""
    return {"path": path, "retryIntervalInSeconds": 2, "syncIntervalInSeconds": 60, **extra}


def app_spec(url: str, scope: str = "namespace", **app: Any) -> dict[str, Any]:
    """A FluxConfig of ``scope`` with one kustomization ``app`` at ./app (``app``: more entry fields)."""
    return {"scope": scope, "gitRepository": git_source(url), "kustomizations": {"app": entry("./app", **app)}}


def b64(value: str | bytes) -> str:
    """Base64 of ``value``, as the ARM fields ``sshKnownHosts`` and ``httpsCACert`` hold it."""
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def condition(obj: dict[str, Any] | None, type_: str = "Ready") -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return {}


def summary(obj: dict[str, Any] | None) -> str:
    """A FluxConfig's status in one line: what a timed-out wait reports instead of the whole object."""
    if obj is None:
        return "absent"
    status = obj.get("status") or {}
    head = {k: status.get(k) for k in ("complianceState", "provisioningState", "observedGeneration")}
    head["generation"] = obj["metadata"].get("generation")
    head["sourceSyncedCommitId"] = status.get("sourceSyncedCommitId")
    conditions = [
        (c.get("type"), c.get("status"), c.get("reason"), cut(str(c.get("message")), 200))
        for c in status.get("conditions") or []
    ]
    children = [
        (s.get("kind"), s.get("name"), s.get("complianceState"), [cut(str(c.get("message")), 160)
         for c in s.get("statusConditions") or []])
        for s in status.get("statuses") or []
    ]  # fmt: skip
    error = cut(str(status.get("errorMessage") or ""), 300)
    return f"{head}; conditions {conditions}; statuses {children}; errorMessage {error!r}"


def status(obj: dict[str, Any] | None) -> dict[str, Any]:
    return dict((obj or {}).get("status") or {})


def current(obj: dict[str, Any]) -> bool:
    """The controller has seen the FluxConfig's current spec."""
    return bool((obj.get("status") or {}).get("observedGeneration") == obj["metadata"].get("generation"))


@dataclass
class FluxConfigs:
    """FluxConfigs and their children in one namespace, through the admin client."""

    api: client.ApiClient
    namespace: str
    # one client of each API group for the object's life (read by every wait's poll)
    custom: client.CustomObjectsApi = field(init=False)
    core: client.CoreV1Api = field(init=False)
    rbac: client.RbacAuthorizationV1Api = field(init=False)

    def __post_init__(self) -> None:
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.rbac = client.RbacAuthorizationV1Api(self.api)

    # --- the FluxConfig ---------------------------------------------------------------------------

    def create(
        self, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None, *, spec_namespace: bool = True
    ) -> dict[str, Any]:
        """Create FluxConfig ``name``; ``spec.namespace`` is this namespace unless ``spec_namespace=False``."""
        body = {
            "apiVersion": FLUX_CONFIG.api_version,
            "kind": FLUX_CONFIG.kind,
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels or {}},
            "spec": {"namespace": self.namespace, **spec} if spec_namespace else spec,
        }
        made: dict[str, Any] = self.custom.create_namespaced_custom_object(
            FLUX_CONFIG.group, FLUX_CONFIG.version, self.namespace, FLUX_CONFIG.plural, body
        )
        return made

    def get(self, name: str) -> dict[str, Any]:
        return self.object(FLUX_CONFIG, name) or {}

    def patch(self, name: str, body: dict[str, Any], resource: Resource = FLUX_CONFIG) -> dict[str, Any]:
        """A JSON merge patch (``None`` removes a key, e.g. a kustomization entry)."""
        patched: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            resource.group, resource.version, self.namespace, resource.plural, name, body,
            _content_type="application/merge-patch+json",
        )  # fmt: skip
        return patched

    def request(self, name: str, resource: Resource = FLUX_CONFIG) -> str:
        """Ask for a reconcile (``reconcile.fluxcd.io/requestedAt``); return the token."""
        token = uuid.uuid4().hex[:12]
        self.patch(name, {"metadata": {"annotations": {REQUESTED_AT: token}}}, resource)
        return token

    def delete(self, name: str, resource: Resource = FLUX_CONFIG) -> None:
        self.custom.delete_namespaced_custom_object(
            resource.group, resource.version, self.namespace, resource.plural, name
        )

    def remove(self, name: str, timeout: float = 60) -> None:
        """Delete FluxConfig ``name`` and wait until its finalizer let it go."""
        self.delete(name)
        self.gone(FLUX_CONFIG, name, timeout)

    def wait(self, name: str, done: Callable[[dict[str, Any]], bool], what: str, timeout: float = 90) -> dict[str, Any]:
        """Poll FluxConfig ``name`` until ``done``; on timeout fail with its status summary."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.object(FLUX_CONFIG, name)
            if obj is not None and done(obj):
                return obj
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for FluxConfig {name} {what}: {summary(obj)}")
            time.sleep(0.1)

    def state(self, name: str, state: str, timeout: float = 90, commit: str | None = None) -> dict[str, Any]:
        """``complianceState == state`` at the current generation (and, given ``commit``, at that commit)."""

        def done(obj: dict[str, Any]) -> bool:
            status = obj.get("status") or {}
            synced = commit is None or status.get("sourceSyncedCommitId") == f"main@sha1:{commit}"
            return current(obj) and status.get("complianceState") == state and synced

        return self.wait(name, done, f"{state}{f' at {commit}' if commit else ''}", timeout)

    def compliant(self, name: str, commit: str | None = None, timeout: float = 90) -> dict[str, Any]:
        return self.state(name, "Compliant", timeout, commit)

    def stalled(self, name: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait(name, lambda o: condition(o, "Stalled").get("status") == "True", "Stalled", timeout)

    def provisioning(self, name: str, state: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait(name, lambda o: status(o).get("provisioningState") == state, state, timeout)

    def ready_reason(self, name: str, reason: str) -> dict[str, Any]:
        return self.wait(name, lambda o: condition(o).get("reason") == reason, f"Ready reason {reason}")

    def public_key(self, name: str) -> str:
        """Wait for ``status.repositoryPublicKey`` (a generated key) and return it."""
        return str(
            self.wait(name, lambda o: bool(status(o).get("repositoryPublicKey")), "a key")["status"][
                "repositoryPublicKey"
            ]
        )

    def handled(self, name: str) -> dict[str, Any]:
        """Ask for a reconcile and wait until it is handled (``lastHandledReconcileAt``): proof it ran."""
        token = self.request(name)
        return self.wait(name, lambda o: status(o).get("lastHandledReconcileAt") == token, f"to handle {token}")

    def gone(self, resource: Resource, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (obj := self.object(resource, name)) is not None:
            if time.monotonic() > deadline:
                meta = obj.get("metadata") or {}
                raise AssertionError(
                    f"{resource.kind} {self.namespace}/{name} still there after {timeout}s: "
                    f"deletionTimestamp {meta.get('deletionTimestamp')}, finalizers {meta.get('finalizers')}; "
                    f"{summary(obj) if resource == FLUX_CONFIG else condition(obj)}"
                )
            time.sleep(0.1)

    # --- children ---------------------------------------------------------------------------------

    def object(self, resource: Resource, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = or_none(
            lambda: self.custom.get_namespaced_custom_object(
                resource.group, resource.version, self.namespace, resource.plural, name
            )
        )
        return found

    def git_repository(self, config: str) -> dict[str, Any] | None:
        return self.object(GIT_REPOSITORY, config)

    def kustomization(self, config: str, entry: str) -> dict[str, Any] | None:
        return self.object(KUSTOMIZATION, f"{config}-{entry}")

    def kustomizations(self) -> dict[str, dict[str, Any]]:
        listed = self.custom.list_namespaced_custom_object(
            KUSTOMIZATION.group, KUSTOMIZATION.version, self.namespace, KUSTOMIZATION.plural
        )
        return {k["metadata"]["name"]: k for k in listed["items"]}

    def child_ready(
        self, resource: Resource, name: str, revision: str | None = None, timeout: float = 90
    ) -> dict[str, Any]:
        """A child (GitRepository, Kustomization, HelmRelease) Ready=True at its generation (and revision)."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.object(resource, name)
            if obj is not None:
                status = obj.get("status") or {}
                ok = condition(obj).get("status") == "True" and status.get("observedGeneration") == obj["metadata"].get(
                    "generation"
                )
                applied = status.get("lastAppliedRevision") or (status.get("artifact") or {}).get("revision") or ""
                if ok and (revision is None or applied == f"main@sha1:{revision}"):
                    return obj
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {resource.kind} {self.namespace}/{name} Ready"
                    f"{f' at {revision}' if revision else ''}: {condition(obj) if obj else 'absent'}"
                )
            time.sleep(0.1)

    def secret(self, name: str) -> client.V1Secret | None:
        found: client.V1Secret | None = or_none(lambda: self.core.read_namespaced_secret(name, self.namespace))
        return found

    def secret_data(self, name: str) -> dict[str, bytes]:
        found = self.secret(name)
        assert found is not None, f"Secret {self.namespace}/{name} missing"
        return {key: base64.b64decode(value) for key, value in (found.data or {}).items()}

    def protected_settings(self, name: str, values: dict[str, str | bytes]) -> None:
        """The Secret ``configurationProtectedSettingsRef`` names: ARM keys, raw values."""
        data = {key: b64(value) for key, value in values.items()}
        self.core.create_namespaced_secret(self.namespace, {"metadata": {"name": name}, "data": data})

    def service_account(self) -> client.V1ServiceAccount | None:
        found: client.V1ServiceAccount | None = or_none(
            lambda: self.core.read_namespaced_service_account(APPLIER, self.namespace)
        )
        return found

    def cluster_role_binding(self) -> client.V1ClusterRoleBinding | None:
        found: client.V1ClusterRoleBinding | None = or_none(
            lambda: self.rbac.read_cluster_role_binding(f"{APPLIER}-{self.namespace}")
        )
        return found

    def role_binding(self) -> client.V1RoleBinding | None:
        found: client.V1RoleBinding | None = or_none(
            lambda: self.rbac.read_namespaced_role_binding(APPLIER, self.namespace)
        )
        return found

    def events(self) -> list[client.CoreV1Event]:
        found: list[client.CoreV1Event] = self.core.list_namespaced_event(self.namespace).items
        return found

    def configmaps(self, namespace: str | None = None) -> dict[str, dict[str, str]]:
        return {
            c.metadata.name: dict(c.data or {})
            for c in self.core.list_namespaced_config_map(namespace or self.namespace).items
            if c.metadata.name != "kube-root-ca.crt"
        }


def or_none(read: Callable[[], T]) -> T | None:
    """``read()``, or None where the API server answers 404."""
    try:
        return read()
    except ApiException as error:
        if error.status == 404:
            return None
        raise


@dataclass
class Stage:
    """How most FluxConfig tests begin: controllers for one namespace, its FluxConfigs, a fresh repository."""

    running: Reconcilers
    configs: FluxConfigs
    repo: ConfigRepo

    @property
    def namespace(self) -> str:
        return self.configs.namespace

    def push_app(self, value: str = "1") -> str:
        """Commit ConfigMap ``app`` (``value``) under ./app; the commit."""
        return self.repo.push({"app/cm.yaml": configmap("app", value, self.namespace)})

    def app(self, name: str, scope: str = "namespace", labels: dict[str, str] | None = None, **app: Any) -> str:
        """Push ./app, create FluxConfig ``name`` applying it (:func:`app_spec`); the commit, once Compliant."""
        sha = self.push_app()
        self.configs.create(name, app_spec(self.repo.url, scope, **app), labels)
        self.configs.compliant(name, sha)
        return sha


@dataclass
class Stages:
    """``stages(namespace)``: a :class:`Stage`; ``platform=True`` lists the namespace for scope cluster."""

    controllers: ControllerSets
    api: client.ApiClient
    server: GitHttpServer | SshGitServer
    tmp_path: Path

    def __call__(self, namespace: str, *, platform: bool = False, **run: Any) -> Stage:
        settings = Settings(cluster_scope_namespaces=frozenset({namespace})) if platform else None
        running = self.controllers.run(namespace, settings, **run)
        return Stage(running, FluxConfigs(self.api, namespace), ConfigRepo(self.server, self.tmp_path))


@pytest.fixture
def stages(
    controllers: ControllerSets, git_server: GitHttpServer, admin_api: client.ApiClient, tmp_path: Path
) -> Stages:
    """:class:`Stages` on the module's git server (import this fixture with ``controllers``)."""
    return Stages(controllers, admin_api, git_server, tmp_path)


def entry_status(obj: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    """The ``statuses[]`` entry of object ``kind``/``name`` (empty if there is none)."""
    for item in (obj.get("status") or {}).get("statuses") or []:
        if item.get("kind") == kind and item.get("name") == name:
            return dict(item)
    return {}


def entry_messages(obj: dict[str, Any], kind: str, name: str) -> str:
    """The messages of that ``statuses[]`` entry's ``statusConditions``, joined by spaces."""
    return " ".join(str(c.get("message")) for c in entry_status(obj, kind, name).get("statusConditions") or [])


def as_dict(obj: Any) -> dict[str, Any]:
    """A kubernetes client model as the API's JSON (camelCase keys), e.g. for :func:`owned_by`."""
    out: dict[str, Any] = client.ApiClient().sanitize_for_serialization(obj)
    return out


def managed_labels(config: str, namespace: str) -> dict[str, str]:
    return {MANAGED: "true", NAME_LABEL: config, NAMESPACE_LABEL: namespace}


def shared_labels(namespace: str) -> dict[str, str]:
    """flux-applier and its bindings serve every FluxConfig of the namespace: no config name on them."""
    return {MANAGED: "true", NAMESPACE_LABEL: namespace}


def owned_by(obj: dict[str, Any], config: dict[str, Any]) -> bool:
    """``obj`` carries an ownerReference to FluxConfig ``config`` (by uid)."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    uid = config["metadata"]["uid"]
    return any(r.get("uid") == uid and r.get("kind") == FLUX_CONFIG.kind for r in refs)


# --- recording every status the API server stored -------------------------------------------------


@dataclass(frozen=True)
class Seen:
    resource_version: str
    generation: int
    observed_generation: int | None
    compliance: str | None
    provisioning: str | None
    commit: str | None
    failing: tuple[str, ...] = ()  # the statuses[] entries not Compliant: kind/name state: message


@dataclass
class ComplianceWatch:
    """Watch one FluxConfig from before it exists and keep every version the API server stored."""

    api: client.ApiClient
    namespace: str
    name: str
    seen: list[Seen] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def states(self) -> list[str]:
        """``complianceState`` values in order, repeats collapsed (absent as ``-``)."""
        out: list[str] = []
        for item in self.seen:
            state = item.compliance or "-"
            if not out or out[-1] != state:
                out.append(state)
        return out

    def explain(self) -> str:
        """Each stored state change with what was not Compliant then: for a failure message."""
        lines, last = [], None
        for item in self.seen:
            if item.compliance != last:
                lines.append(f"{item.compliance} (rv {item.resource_version}): {list(item.failing)}")
                last = item.compliance
        return "\n".join(lines)

    def start(self) -> ComplianceWatch:
        custom = client.CustomObjectsApi(self.api)
        listed = custom.list_namespaced_custom_object(
            FLUX_CONFIG.group, FLUX_CONFIG.version, self.namespace, FLUX_CONFIG.plural,
            field_selector=f"metadata.name={self.name}",
        )  # fmt: skip
        version = listed["metadata"]["resourceVersion"]
        for item in listed["items"]:
            self._record(item)
        self._thread = threading.Thread(target=self._run, args=(custom, version), daemon=True, name="fc-watch")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self, custom: client.CustomObjectsApi, version: str) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    custom.list_namespaced_custom_object, FLUX_CONFIG.group, FLUX_CONFIG.version, self.namespace,
                    FLUX_CONFIG.plural, field_selector=f"metadata.name={self.name}", resource_version=version,
                    timeout_seconds=2, allow_watch_bookmarks=False,
                ):  # fmt: skip
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._record(obj)
                    if self._stop.is_set():
                        break
            except ApiException as error:  # 410: the test outlived etcd's window; resume from now
                if error.status != 410:
                    raise
                version = ""
            finally:
                stream.stop()

    def _record(self, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
        meta = obj["metadata"]
        failing = tuple(
            f"{s.get('kind')}/{s.get('name')} {s.get('complianceState')}: "
            + "; ".join(cut(str(c.get("message")), 160) for c in s.get("statusConditions") or [])
            for s in status.get("statuses") or []
            if s.get("complianceState") != "Compliant"
        )
        self.seen.append(
            Seen(
                meta["resourceVersion"],
                int(meta.get("generation") or 0),
                status.get("observedGeneration"),
                status.get("complianceState"),
                status.get("provisioningState"),
                status.get("sourceSyncedCommitId"),
                failing,
            )
        )

    def __enter__(self) -> ComplianceWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def recording(api: client.ApiClient, namespace: str, name: str) -> Iterator[ComplianceWatch]:
    with ComplianceWatch(api, namespace, name) as seen:
        yield seen
