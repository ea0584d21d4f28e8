"""Flux's duplicate-event limit (``ratelimit.py``): which events are the same, and for how long."""

from __future__ import annotations

import time

from fluxwarden.controllers.notification.event import Event, ObjectRef
from fluxwarden.controllers.notification.ratelimit import RateLimiter, event_key

KUSTOMIZE = "kustomize.toolkit.fluxcd.io"


def event(
    message: str = "applied",
    metadata: dict[str, str] | None = None,
    name: str = "app",
    namespace: str = "apps",
    kind: str = "Kustomization",
    **more: str,
) -> Event:
    obj = ObjectRef(kind, name, namespace, uid=more.pop("uid", "u1"), api_version=f"{KUSTOMIZE}/v1")
    return Event(
        obj,
        more.pop("severity", "info"),
        more.pop("timestamp", "2026-12-01T18:00:00Z"),
        message,
        more.pop("reason", "ReconciliationSucceeded"),
        metadata or {},
        more.pop("controller", "kustomize-controller"),
    )


def test_the_key_is_name_namespace_kind_message_and_revision_token() -> None:
    base = event(metadata={f"{KUSTOMIZE}/revision": "r1"})
    same = [
        event(metadata={f"{KUSTOMIZE}/revision": "r1"}, uid="u2"),
        event(metadata={f"{KUSTOMIZE}/revision": "r1"}, severity="error"),
        event(metadata={f"{KUSTOMIZE}/revision": "r1"}, reason="Other", timestamp="2030-01-01T00:00:00Z"),
        event(metadata={f"{KUSTOMIZE}/revision": "r1"}, controller="another"),
        event(metadata={f"{KUSTOMIZE}/revision": "r1", f"{KUSTOMIZE}/summary": "not in the key"}),
    ]
    different = [
        event(metadata={f"{KUSTOMIZE}/revision": "r2"}),
        event(metadata={f"{KUSTOMIZE}/revision": "r1", f"{KUSTOMIZE}/token": "t"}),
        event(metadata={}),
        event("applied again", metadata={f"{KUSTOMIZE}/revision": "r1"}),
        event(metadata={f"{KUSTOMIZE}/revision": "r1"}, name="other"),
        event(metadata={f"{KUSTOMIZE}/revision": "r1"}, namespace="other"),
        event(metadata={f"{KUSTOMIZE}/revision": "r1"}, kind="HelmRelease"),
    ]
    assert {event_key(e) for e in same} == {event_key(base)}
    assert len({event_key(e) for e in different} | {event_key(base)}) == len(different) + 1


def test_the_origin_revision_is_part_of_the_key() -> None:
    """Flux v1.9 notifier.EventKey: originRevision, revision and token, each when present."""
    one = event(metadata={f"{KUSTOMIZE}/revision": "r1", f"{KUSTOMIZE}/originRevision": "o1"})
    two = event(metadata={f"{KUSTOMIZE}/revision": "r1", f"{KUSTOMIZE}/originRevision": "o2"})
    assert event_key(one) != event_key(two)


def test_components_are_labelled_so_a_message_cannot_pose_as_a_revision() -> None:
    """Flux prefixes each part (``message=``, ``revision=``): 'applied/r1' without a revision is another event."""
    assert event_key(event("applied/r1")) != event_key(event("applied", {f"{KUSTOMIZE}/revision": "r1"}))
    assert event_key(event("a/b", name="app")) != event_key(event("b", name="app/a"))


def test_only_the_objects_group_revision_counts() -> None:
    """Flux reads ``<involved object group>/revision``; the event group's key is metadata, not identity."""
    plain = event()
    other_group = event(metadata={"event.toolkit.fluxcd.io/revision": "r9"})
    assert event_key(plain) == event_key(other_group)


def test_a_duplicate_within_the_interval_is_refused_then_allowed_after_it() -> None:
    limiter = RateLimiter(0.3)
    first = event(metadata={f"{KUSTOMIZE}/revision": "r1"})
    assert limiter.allow(first)
    assert not limiter.allow(first)
    assert limiter.allow(event(metadata={f"{KUSTOMIZE}/revision": "r2"}))
    time.sleep(0.35)
    assert limiter.allow(first), "the interval is over"
    assert not limiter.allow(first), "and a new one starts"


def test_forget_undoes_allow() -> None:
    limiter = RateLimiter(300)
    first = event()
    assert limiter.allow(first)
    limiter.forget(first)
    assert limiter.allow(first)
    assert not limiter.allow(first)


def test_a_zero_interval_allows_everything() -> None:
    limiter = RateLimiter(0)
    assert all(limiter.allow(event()) for _ in range(3))


def test_many_keys_stay_bounded_once_expired() -> None:
    limiter = RateLimiter(0.05)
    for number in range(3000):
        assert limiter.allow(event(f"m{number}"))
    time.sleep(0.1)
    for number in range(5000):
        assert limiter.allow(event(f"n{number}"))
    assert len(limiter._seen) < 8000, "expired keys are swept"
