"""The opt-in "on change" mode (Alert annotation ``notification.fluxwarden.io/mode: on-change``) end to end.

Per involved object: the first error is sent, later errors are held back until an info arrives, that
recovery is sent once, later infos are not. A witness Alert without the annotation takes every event,
so each "not sent" is asserted only after the same event provably reached the event server's routing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.notification.api import ALERT, DISPATCH_FAILED, MODE_ANNOTATION, ON_CHANGE
from tests.support.notification import (
    Notifications,
    deliveries_done,
    event_url,
    flux_event,
    post,
    start_notification,
)
from tests.support.recorder import Received, Recorder, Reply


@pytest.fixture(scope="module")
def controller(start_reconcilers: Callable[..., Reconcilers]) -> Reconcilers:
    return start_notification(start_reconcilers)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as endpoint:
        yield endpoint


def on_change_and_witness(nt: Notifications, recorder: Recorder) -> None:
    nt.provider("changes", address=f"{recorder.url}/changes")
    nt.alert("changes", "changes", annotations={MODE_ANNOTATION: ON_CHANGE})
    nt.provider("witness", address=f"{recorder.url}/witness")
    nt.alert("witness", "witness")
    nt.settled()


class Sender:
    """Posts events and waits until the witness has each one, so the on-change Alert has seen it too."""

    def __init__(self, reconcilers: Reconcilers, namespace: str, recorder: Recorder) -> None:
        self.reconcilers, self.namespace, self.recorder = reconcilers, namespace, recorder
        self.sent = 0

    @property
    def url(self) -> str:
        return event_url(self.reconcilers)

    def __call__(self, name: str, severity: str, message: str) -> None:
        event = flux_event(self.namespace, name, severity=severity, message=message)
        assert post(self.url, event).status_code == 202, message
        self.sent += 1
        self.recorder.wait_for(self.sent, where=lambda r: r.path == "/witness")

    def changes(self, expected: int) -> list[tuple[str, str]]:
        """The on-change Alert's deliveries, once ``expected`` of them arrived (and a moment for any extra)."""
        self.recorder.wait_for(expected, where=lambda r: r.path == "/changes")
        deliveries_done(self.reconcilers)  # every accepted delivery ended: one not received was never sent
        return [_what(r) for r in self.recorder.received if r.path == "/changes"]


def _what(request: Received) -> tuple[str, str]:
    body = request.json()
    return body["involvedObject"]["name"], body["message"]


def test_first_error_then_one_recovery_per_object(
    controller: Reconcilers, admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    nt = Notifications(admin_api, namespace, controller)
    on_change_and_witness(nt, recorder)
    send = Sender(controller, namespace, recorder)

    send("app", "error", "fail 1")
    assert send.changes(1) == [("app", "fail 1")], "the first error is sent"
    send("app", "error", "fail 2")
    send("app", "error", "fail 3")
    assert send.changes(1) == [("app", "fail 1")], "later errors are held back"
    send("app", "info", "ok 1")
    assert send.changes(2) == [("app", "fail 1"), ("app", "ok 1")], "the recovery is sent"
    send("app", "info", "ok 2")
    send("app", "info", "ok 3")
    assert send.changes(2) == [("app", "fail 1"), ("app", "ok 1")], "later infos are not sent"
    send("app", "error", "fail 4")
    assert send.changes(3) == [("app", "fail 1"), ("app", "ok 1"), ("app", "fail 4")], "a new failure is a change"


def test_two_involved_objects_are_independent(
    controller: Reconcilers, admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    nt = Notifications(admin_api, namespace, controller)
    on_change_and_witness(nt, recorder)
    send = Sender(controller, namespace, recorder)

    send("a", "error", "a fails")
    send("b", "error", "b fails")
    send("a", "error", "a fails again")
    send("b", "info", "b recovers")
    send("b", "info", "b still fine")
    send("a", "info", "a recovers")
    send("b", "error", "b fails again")
    send("a", "error", "a fails once more")
    assert sorted(send.changes(6)) == sorted(
        [
            ("a", "a fails"),
            ("b", "b fails"),
            ("b", "b recovers"),
            ("a", "a recovers"),
            ("b", "b fails again"),
            ("a", "a fails once more"),
        ]
    )
    per_object = {name: [m for n, m in send.changes(6) if n == name] for name in ("a", "b")}
    assert per_object == {
        "a": ["a fails", "a recovers", "a fails once more"],
        "b": ["b fails", "b recovers", "b fails again"],
    }, "each object's changes are sent in the order they happened"


def test_the_mode_is_per_alert_and_a_plain_alert_gets_everything(
    controller: Reconcilers, admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    nt = Notifications(admin_api, namespace, controller)
    on_change_and_witness(nt, recorder)
    send = Sender(controller, namespace, recorder)
    for severity, message in [("error", "e1"), ("error", "e2"), ("info", "i1"), ("info", "i2")]:
        send("app", severity, message)
    witnessed = [_what(r)[1] for r in recorder.received if r.path == "/witness"]
    assert witnessed == ["e1", "e2", "i1", "i2"]
    assert [m for _, m in send.changes(2)] == ["e1", "i1"]


def test_a_restart_loses_no_recovery(
    start_reconcilers: Callable[..., Reconcilers], admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    first = start_notification(start_reconcilers)
    nt = Notifications(admin_api, namespace, first)
    on_change_and_witness(nt, recorder)
    send = Sender(first, namespace, recorder)
    send("app", "error", "fails before the restart")
    send("app", "error", "fails again before the restart")
    assert send.changes(1) == [("app", "fails before the restart")]
    old_url = send.url
    first.stop()
    with pytest.raises(httpx.TransportError):
        post(old_url, flux_event(namespace, severity="info", message="nobody hears this"), timeout=2)

    second = start_notification(start_reconcilers)
    nt.reconcilers = second
    nt.settled()
    send.reconcilers = second
    send("app", "error", "fails after the restart")  # still failing: held back, the state came through
    send("app", "info", "recovers after the restart")
    send("app", "info", "still fine")
    assert send.changes(2) == [
        ("app", "fails before the restart"),
        ("app", "recovers after the restart"),
    ]


def test_a_failure_whose_notification_could_not_be_sent_is_sent_with_the_next_error(
    controller: Reconcilers, admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    """Holding back later errors is only right once the first one reached the provider."""
    nt = Notifications(admin_api, namespace, controller)
    on_change_and_witness(nt, recorder)
    send = Sender(controller, namespace, recorder)
    recorder.responder = lambda r: Reply(503) if r.path == "/changes" else None  # the provider is down
    send("app", "error", "fails while the provider is down")
    nt.wait_event("changes", DISPATCH_FAILED, timeout=120)
    recorder.responder = None  # the provider is back
    send("app", "error", "fails again")
    (sent,) = recorder.wait_for(1, where=lambda r: r.path == "/changes" and r.status == 200)
    assert sent.json()["message"] == "fails again"


def test_each_on_change_alert_keeps_its_own_marks(
    controller: Reconcilers, admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    nt = Notifications(admin_api, namespace, controller)
    on_change_and_witness(nt, recorder)
    send = Sender(controller, namespace, recorder)
    send("app", "error", "fails")
    nt.provider("late", address=f"{recorder.url}/late")
    nt.alert("late", "late", annotations={MODE_ANNOTATION: ON_CHANGE})  # it never saw the first failure
    nt.settled()
    send("app", "error", "fails again")
    send("app", "info", "recovers")
    assert send.changes(2) == [("app", "fails"), ("app", "recovers")]
    late = recorder.wait_for(2, where=lambda r: r.path == "/late")
    assert [r.json()["message"] for r in late] == ["fails again", "recovers"]


def test_editing_the_alert_keeps_its_marks(
    controller: Reconcilers, admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    nt = Notifications(admin_api, namespace, controller)
    on_change_and_witness(nt, recorder)
    send = Sender(controller, namespace, recorder)
    send("app", "error", "fails")
    edited = nt.patch(ALERT, "changes", {"spec": {"eventMetadata": {"env": "prod"}}})
    assert edited["metadata"]["generation"] == 2
    nt.settled()
    send("app", "error", "fails again")
    send("app", "info", "recovers")
    assert send.changes(2) == [("app", "fails"), ("app", "recovers")]
    recovery = [r.json() for r in recorder.received if r.path == "/changes"][-1]
    assert recovery["metadata"] == {"env": "prod"}, "the recovery went out under the edited spec"


def test_an_alert_made_again_under_the_same_name_starts_clean(
    controller: Reconcilers, admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    nt = Notifications(admin_api, namespace, controller)
    on_change_and_witness(nt, recorder)
    send = Sender(controller, namespace, recorder)
    send("app", "error", "fails")
    assert send.changes(1) == [("app", "fails")]
    nt.delete(ALERT, "changes")
    nt.settled()
    nt.alert("changes", "changes", annotations={MODE_ANNOTATION: ON_CHANGE})
    nt.settled()
    send("app", "error", "fails for the new Alert")
    assert send.changes(2) == [("app", "fails"), ("app", "fails for the new Alert")], "its first error is news"
