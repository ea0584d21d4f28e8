"""The notification benchmark's own parts: the load generator against the sink, and the deliveries it expects."""

from __future__ import annotations

import time
from pathlib import Path

from bench.event_load import Sent, drive, post
from bench.notification import ALERTS, Scenario, Sink, event, expected_deliveries, streams


def test_every_request_the_generator_sends_reaches_the_sink_once(tmp_path: Path) -> None:
    sink = Sink.start(tmp_path / "sink.log")
    try:
        body = b"bench-id=%d"
        load = [[Sent(post(f"/c{c}", body % (c * 1000 + k), sink.port), k) for k in range(200)] for c in range(4)]
        out = drive(sink.port, load, seconds=30)
        assert out.statuses == {200: 800}
        assert [len(tags) for tags in out.accepted] == [200, 200, 200, 200]
        found = sink.stats(times=True)
        assert found["count"] == 800
        assert {p: v["unique"] for p, v in found["paths"].items()} == {f"/c{c}": 200 for c in range(4)}
        assert found["times"] == sorted(found["times"]) and found["last"] <= time.monotonic()
        sink.reset()
        assert sink.stats()["count"] == 0
    finally:
        sink.child.stop()


def test_open_loop_keeps_the_rate_and_counts_latency_from_the_due_time(tmp_path: Path) -> None:
    sink = Sink.start(tmp_path / "sink.log")
    try:
        load = [[Sent(post("/", b"{}", sink.port)) for _ in range(100)] for _ in range(2)]
        out = drive(sink.port, load, rate=400.0, seconds=30)
        assert out.statuses[200] == 200
        assert 0.45 < out.seconds < 2.0  # 200 requests at 400/s: never faster than the rate
        assert len(out.lag) > 0 and min(out.latencies[200]) >= 0.0
    finally:
        sink.child.stop()


def test_each_object_stays_on_one_connection_in_order() -> None:
    s = Scenario("t", fanout=False, severities="alternate", on_change=True)
    out = streams(s, 1, 40, 3, first_id=0)
    for connection in out:
        objects = {tag[0] for tag in (sent.tag for sent in connection)}
        assert all(o % 3 == out.index(connection) for o in objects)
    per_object: dict[int, list[str]] = {}
    for connection in out:
        for sent in connection:
            per_object.setdefault(sent.tag[0], []).append(sent.tag[1])
    assert all(sev == ("error", "info")[i % 2] for sevs in per_object.values() for i, sev in enumerate(sevs))
    assert len(per_object) == ALERTS


def test_expected_deliveries_replay_the_on_change_rule() -> None:
    on_change = Scenario("t", fanout=False, severities="errors", on_change=True)
    failing: set[int] = set()
    accepted = [[(0, "error"), (0, "error"), (1, "error"), (1, "info"), (1, "info")], [(2, "info")]]
    assert expected_deliveries(on_change, accepted, failing) == 3  # 0 fails, 1 fails, 1 recovers
    assert failing == {0}
    assert expected_deliveries(on_change, [[(0, "info")]], failing) == 1 and failing == set()
    fanout = Scenario("t", fanout=True)
    assert expected_deliveries(fanout, [[(0, "info")] * 3, [(1, "info")]], set()) == 4 * ALERTS
    suspended = Scenario("t", fanout=False, suspended=True)
    assert expected_deliveries(suspended, [[(0, "info")]], set()) == 0


def test_events_are_distinct_flux_events() -> None:
    from fluxwarden.controllers.notification.event import parse
    from fluxwarden.controllers.notification.ratelimit import event_key

    a, b = parse(event("ns", True, 3, "error", 1)), parse(event("ns", True, 3, "error", 2))
    assert (a.involved_object.kind, a.involved_object.name, a.severity) == ("GitRepository", "repo-3", "error")
    assert a.meta("revision") == f"main@sha1:{1:040x}"
    assert event_key(a) != event_key(b)  # the rate limiter keeps both
