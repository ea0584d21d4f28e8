"""The on-change mode when a notification cannot go out: the transition it carried is not lost.

A recovery (or a first failure) whose send fails is undone, so the next event of its kind carries it
again; an event refused with 429 (queue full) moves no mark, and marks of other objects survive it and
a restart. Every "held back" is asserted after a later delivery through the same Alert arrived.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from fluxwarden.controllers.app import Reconcilers
from fluxwarden.controllers.notification.api import DISPATCH_FAILED, MODE_ANNOTATION, ON_CHANGE
from fluxwarden.controllers.notification.onchange import STATE_KEY, config_map_name
from tests.support.notification import Notifications, event_url, flux_event, post, start_notification
from tests.support.recorder import Recorder, Reply


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as endpoint:
        yield endpoint


def messages(recorder: Recorder) -> list[tuple[str, int]]:
    return [(r.json()["message"], r.status) for r in recorder.received]


def test_a_recovery_whose_send_fails_is_sent_with_the_next_info(
    start_reconcilers: Callable[..., Reconcilers], admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    controller = start_notification(start_reconcilers)
    nt = Notifications(admin_api, namespace, controller)
    nt.provider("changes", address=f"{recorder.url}/changes")
    nt.alert("changes", "changes", annotations={MODE_ANNOTATION: ON_CHANGE})
    nt.settled()
    url = event_url(controller)

    assert post(url, flux_event(namespace, severity="error", message="broken 1")).status_code == 202
    recorder.wait_for(1)
    recorder.script(Reply(400, b"bad request on purpose\n"))  # a 4xx is final: no retry
    assert post(url, flux_event(namespace, severity="info", message="recovered 1")).status_code == 202
    recorder.wait_for(2)
    nt.wait_event("changes", DISPATCH_FAILED)
    assert post(url, flux_event(namespace, severity="info", message="recovered 2")).status_code == 202
    recorder.wait_for(3)
    assert post(url, flux_event(namespace, severity="info", message="fine again")).status_code == 202  # held
    assert post(url, flux_event(namespace, severity="error", message="broken 2")).status_code == 202
    recorder.wait_for(4)
    assert messages(recorder) == [("broken 1", 200), ("recovered 1", 400), ("recovered 2", 200), ("broken 2", 200)]


def test_a_full_queue_moves_no_mark_and_other_marks_survive_it_and_a_restart(
    start_reconcilers: Callable[..., Reconcilers], admin_api: client.ApiClient, namespace: str, recorder: Recorder
) -> None:
    # One send at a time and one waiting: the third failure in flight finds the queue full.
    first = start_notification(start_reconcilers, queue_size=1, delivery_concurrency=1)
    nt = Notifications(admin_api, namespace, first)
    nt.provider("changes", address=f"{recorder.url}/changes")
    nt.alert("changes", "changes", annotations={MODE_ANNOTATION: ON_CHANGE})
    nt.settled()
    url = event_url(first)
    assert post(url, flux_event(namespace, "a", severity="error", message="a fails")).status_code == 202
    recorder.wait_for(1)

    recorder.answer(200, delay=1.5)  # slow: b is in flight, c waits, d finds no room
    assert post(url, flux_event(namespace, "b", severity="error", message="b fails")).status_code == 202
    assert post(url, flux_event(namespace, "c", severity="error", message="c fails")).status_code == 202
    refused = post(url, flux_event(namespace, "d", severity="error", message="d fails"))
    assert refused.status_code == 429, refused.text
    recorder.wait_for(3)
    recorder.answer(200)

    saved = client.CoreV1Api(admin_api).read_namespaced_config_map(config_map_name("changes"), namespace)
    assert sorted(json.loads(saved.data[STATE_KEY])) == [f"Kustomization/{namespace}/{n}" for n in "abc"]

    first.stop()
    second = start_notification(start_reconcilers)
    nt.reconcilers = second
    nt.settled()
    url = event_url(second)
    for name in "dabc":  # d never failed here: its info is held; a, b and c recover
        assert post(url, flux_event(namespace, name, severity="info", message=f"{name} recovers")).status_code == 202
    recorder.wait_for(6)
    assert post(url, flux_event(namespace, "e", severity="error", message="e fails")).status_code == 202
    recorder.wait_for(7)
    sent = [m for m, _ in messages(recorder)]
    assert sent[:3] == ["a fails", "b fails", "c fails"]
    assert sorted(sent[3:6]) == ["a recovers", "b recovers", "c recovers"] and sent[6] == "e fails"
