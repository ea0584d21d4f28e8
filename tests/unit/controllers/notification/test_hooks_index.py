"""The receiver server's path index, and which Receivers a Secret change wakes."""

from __future__ import annotations

import threading
from typing import Any

from fluxwarden.controllers.notification.receiver import _receivers_of_secret
from fluxwarden.controllers.notification.receiver_index import ReceiverIndex


def receiver(name: str, path: str = "", namespace: str = "team-a", secret: str = "token") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"secretRef": {"name": secret}},
        "status": {"webhookPath": path} if path else {},
    }


class Cache:
    """An informer cache as the server reads it (get by key)."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.synced = threading.Event()
        self.objects = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        return self.objects.get(key)

    def items(self) -> list[dict[str, Any]]:
        return list(self.objects.values())


def test_events_move_a_receiver_between_paths() -> None:
    index = ReceiverIndex()
    first, moved = receiver("a", "/hook/1"), receiver("a", "/hook/2")
    index.handle("ADDED", first, None)
    assert index.find("/hook/1", Cache(first)) is first
    index.handle("MODIFIED", moved, first)  # the token changed: a new path
    cache = Cache(moved)
    assert index.find("/hook/1", cache) is None
    assert index.find("/hook/2", cache) is moved
    index.handle("DELETED", moved, moved)
    assert index.find("/hook/2", Cache()) is None
    assert len(index) == 0


def test_a_receiver_without_a_path_is_not_served() -> None:
    index = ReceiverIndex()
    index.handle("MODIFIED", receiver("a"), receiver("a", "/hook/1"))  # TokenNotFound took the path away
    assert index.find("/hook/1", Cache(receiver("a"))) is None
    assert len(index) == 0


def test_a_stale_entry_is_checked_against_the_cache() -> None:
    """The fill ran with an older copy than an event already delivered: the old path must not serve."""
    index = ReceiverIndex()
    new = receiver("a", "/hook/new")
    index.handle("MODIFIED", new, receiver("a", "/hook/old"))
    index.fill([receiver("a", "/hook/old")])
    cache = Cache(new)
    assert index.find("/hook/old", cache) is None
    assert index.find("/hook/new", cache) is new


def test_the_fill_serves_what_was_cached_before_the_handler() -> None:
    index = ReceiverIndex()
    objects = [receiver("a", "/hook/a"), receiver("b", "/hook/b", namespace="team-b")]
    index.fill(objects)
    assert index.find("/hook/b", Cache(*objects)) is objects[1]


def test_a_secret_change_wakes_the_receivers_that_name_it_in_its_namespace() -> None:
    own = [receiver("a"), receiver("b", secret="other"), receiver("c", namespace="team-b")]
    secret = {"metadata": {"name": "token", "namespace": "team-a", "resourceVersion": "2"}}
    assert _receivers_of_secret(secret, None, own) == [("team-a", "a")]
    same = {"metadata": {**secret["metadata"]}}
    assert _receivers_of_secret(secret, same, own) == [], "a relist of an unchanged Secret wakes nobody"
    older = {"metadata": {**secret["metadata"], "resourceVersion": "1"}}
    assert _receivers_of_secret(secret, older, own) == [("team-a", "a")]
