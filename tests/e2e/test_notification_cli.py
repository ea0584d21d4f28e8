"""``fluxwarden get alerts|alert-providers|receivers`` and ``reconcile|suspend|resume receiver``, on a real API server.

The lists read Flux's own CRDs (the flux_crds fixture). ``reconcile receiver`` runs against the real
Receiver reconciler, which publishes the webhook path; the test recomputes that path from the token
itself (sha256 of token + name + namespace, as Flux documents it), and proves that the reconcile the
command waited for is the one it asked for: ``status.lastHandledReconcileAt`` equals its annotation.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from kubernetes import client

from fluxwarden.cli.main import main
from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.notification import providers
from fluxwarden.controllers.notification.api import RECEIVER, NotificationOptions
from fluxwarden.controllers.runtime.kube import Kube
from fluxwarden.controllers.runtime.prologue import REQUESTED_AT
from tests.support.control_plane import ControlPlane
from tests.support.notification import Notifications
from tests.support.receivers import Receivers, condition, expected_path

SHARD = "sharding.fluxcd.io/key"
SHARD_VALUE = f"notification-cli-{uuid.uuid4().hex[:6]}"
TOKEN = f"token-{uuid.uuid4().hex}"
TARGET = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "name": "app"}


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(control_plane: ControlPlane, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``fluxwarden ...`` in this process, as a user runs it: exit code, stdout, stderr (never a token)."""

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([*argv, "--kubeconfig", str(control_plane.kubeconfig)])
        out, err = capsys.readouterr()
        assert TOKEN not in out + err, "a Receiver's token in the command's output"
        return code, out, err

    return run


@pytest.fixture(scope="module")
def receivers(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    """The notification controller, reconciling Receivers of this module's shard only."""
    options = NotificationOptions(event_host="127.0.0.1", event_port=0, receiver_host="127.0.0.1", receiver_port=0)
    return start_reconcilers(("notification",), label_selector=f"{SHARD}={SHARD_VALUE}", notification=options)


def _table(out: str) -> tuple[list[str], dict[str, list[str]]]:
    """The header and the rows by their first cell (NAME, or NAMESPACE/NAME with -A): tab-separated cells."""
    header, *lines = out.rstrip("\n").split("\n")
    cells = [[c.strip() for c in line.split("\t")] for line in lines]
    columns = [c.strip() for c in header.split("\t")]
    if columns[0] == "NAMESPACE":
        return columns, {f"{c[0]}/{c[1]}": c[2:] for c in cells}
    return columns, {c[0]: c[1:] for c in cells}


def test_get_alerts_and_providers_say_what_is_wrong_with_one(
    flux_crds: list[str], admin_api: client.ApiClient, namespace_factory: Callable[[], str], cli: Cli
) -> None:
    ns, other = namespace_factory(), namespace_factory()
    notes = Notifications(admin_api, ns)
    notes.provider("hook", address="https://example.com/hook")
    notes.provider("paused", address="https://example.com/x", suspend=True)
    notes.provider("chat", type="googlechat", address="https://example.com/chat")
    notes.alert("ok", "hook")
    notes.alert("bad-regex", "hook", exclusionList=["^fine$", "(unclosed"])
    notes.alert("orphan", "absent")
    notes.alert("paused", "hook", suspend=True)
    # The same Provider name in another namespace is not this Alert's Provider: only its own namespace counts.
    notes.alert("ok", "hook", namespace=other)

    code, out, err = cli("get", "alerts", "-n", ns)
    assert code == 0, err
    header, rows = _table(out)
    assert header == ["NAME", "SUSPENDED", "READY", "MESSAGE"], "flux get alerts' columns"
    assert rows["ok"] == ["False", "True", "Alert is Ready"]
    assert rows["paused"] == ["True", "True", "Alert is Ready"]
    assert rows["orphan"] == ["False", "False", f"spec.providerRef: Provider 'absent' not found in {ns}"]
    suspended, ready, message = rows["bad-regex"]
    assert (suspended, ready) == ("False", "False")
    assert "spec.exclusionList[1] '(unclosed'" in message and "regex" in message, message
    assert list(rows) == ["bad-regex", "ok", "orphan", "paused"], "sorted by name, nothing of the other namespace"

    code, out, err = cli("get", "alert-providers", "-n", ns)
    assert code == 0, err
    header, rows = _table(out)
    assert header == ["NAME", "SUSPENDED", "READY", "MESSAGE"]
    assert rows["hook"] == ["False", "True", "Provider is Ready"]
    assert rows["paused"] == ["True", "True", "Provider is Ready"]
    assert rows["chat"][:2] == ["False", "False"]
    assert rows["chat"][2] == (
        f"spec.type 'googlechat' is not supported by fluxwarden; supported: {', '.join(sorted(providers.SUPPORTED))}"
    )

    code, out, err = cli("get", "providers", "-A")  # the alias, every namespace
    assert code == 0, err
    header, rows = _table(out)
    assert header[:2] == ["NAMESPACE", "NAME"] and {f"{ns}/hook", f"{ns}/chat"} <= set(rows)
    code, out, err = cli("get", "alerts", "-A")
    _, rows = _table(out)
    assert rows[f"{ns}/ok"][1] == "True"
    assert rows[f"{other}/ok"][1:] == ["False", f"spec.providerRef: Provider 'hook' not found in {other}"]

    code, out, err = cli("get", "alerts", "-n", namespace_factory())
    assert code == 0 and out.split() == ["NAME", "SUSPENDED", "READY", "MESSAGE"], "an empty namespace: the header"


def _receivers(reconcilers: Reconcilers, api: client.ApiClient, namespace: str, shard: str = SHARD_VALUE) -> Receivers:
    return Receivers.of(reconcilers, api, namespace, {SHARD: shard})


@pytest.fixture
def namespace_with_receiver(
    receivers: Reconcilers, admin_api: client.ApiClient, namespace_factory: Callable[[], str]
) -> str:
    """A namespace with Receiver ``hook`` (Secret ``hook-token``), Ready once the controller published its path."""
    ns = namespace_factory()
    made = _receivers(receivers, admin_api, ns)
    made.secret("hook-token", {"token": TOKEN.encode()})
    made.create("hook", "generic", [TARGET], secret="hook-token")
    made.ready("hook")
    return ns


def test_get_receivers_prints_the_webhook_path(namespace_with_receiver: str, cli: Cli) -> None:
    ns = namespace_with_receiver
    code, out, err = cli("get", "receivers", "-n", ns)
    assert code == 0, err
    header, rows = _table(out)
    assert header == ["NAME", "SUSPENDED", "READY", "MESSAGE"], "flux get receivers' columns"
    assert rows == {
        "hook": ["False", "True", f"Receiver initialized for path: {expected_path(TOKEN.encode(), 'hook', ns)}"]
    }


def test_reconcile_receiver_waits_for_the_reconcile_it_asked_for(
    namespace_with_receiver: str, admin_api: client.ApiClient, cli: Cli
) -> None:
    ns, kube = namespace_with_receiver, Kube(admin_api)
    before = kube.get(RECEIVER, ns, "hook")
    code, out, err = cli("reconcile", "receiver", "hook", "-n", ns)
    assert code == 0, err
    assert out.splitlines() == [
        f"► annotating Receiver hook in {ns} namespace",
        "✔ Receiver annotated",
        "◎ waiting for Receiver reconciliation",
        "✔ Receiver reconciliation completed",
        f"✔ Receiver initialized for path: {expected_path(TOKEN.encode(), 'hook', ns)}",
    ]
    after = kube.get(RECEIVER, ns, "hook")
    requested = after["metadata"]["annotations"][REQUESTED_AT]
    assert after["status"]["lastHandledReconcileAt"] == requested, "the reconcile it waited for is its own"
    assert requested != (before.get("status") or {}).get("lastHandledReconcileAt")

    code, out, err = cli("suspend", "receiver", "hook", "-n", ns)
    assert code == 0 and kube.get(RECEIVER, ns, "hook")["spec"]["suspend"] is True, err
    code, out, err = cli("get", "receivers", "-n", ns)
    assert _table(out)[1]["hook"][0] == "True"
    code, out, err = cli("reconcile", "receiver", "hook", "-n", ns)
    assert code == 1 and f"Receiver {ns}/hook is suspended; resume it to reconcile" in err
    assert kube.get(RECEIVER, ns, "hook")["metadata"]["annotations"][REQUESTED_AT] == requested, "nothing asked"
    code, out, err = cli("resume", "receiver", "hook", "-n", ns)
    assert code == 0 and "✔ Receiver reconciliation completed" in out, err
    resumed = kube.get(RECEIVER, ns, "hook")
    assert resumed["spec"]["suspend"] is False
    assert resumed["status"]["lastHandledReconcileAt"] == resumed["metadata"]["annotations"][REQUESTED_AT] != requested


def test_reconcile_receiver_fails_with_the_controllers_reason(
    receivers: Reconcilers, admin_api: client.ApiClient, namespace_factory: Callable[[], str], cli: Cli
) -> None:
    ns = namespace_factory()
    _receivers(receivers, admin_api, ns).create("tokenless", "generic", [TARGET], secret="missing")
    code, out, err = cli("reconcile", "receiver", "tokenless", "-n", ns)
    assert code == 1, out
    (line,) = err.splitlines()
    assert line.startswith(f"✗ Receiver {ns}/tokenless: ") and "missing" in line and "token" in line, line
    ready = condition(Kube(admin_api).get(RECEIVER, ns, "tokenless"), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "TokenNotFound")

    # A Receiver no running controller reconciles (another shard): the command gives up, naming the object.
    elsewhere = _receivers(receivers, admin_api, ns, shard="nobody")
    elsewhere.secret("orphan-token", {"token": TOKEN.encode()})
    elsewhere.create("orphan", "generic", [TARGET], secret="orphan-token")
    code, out, err = cli("reconcile", "receiver", "orphan", "-n", ns, "--timeout", "2s")
    assert code == 1 and err.strip() == (
        f"✗ Receiver {ns}/orphan was not reconciled within 2s; is the controller running?"
    )
    code, out, err = cli("reconcile", "receiver", "absent", "-n", ns)
    assert code == 1 and "absent" in err and "Traceback" not in err
