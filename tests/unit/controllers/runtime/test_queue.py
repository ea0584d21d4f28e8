"""The work queue's guarantees: de-duplication, one worker per key, delays, backoff."""

from __future__ import annotations

import threading
import time

from fluxwarden.controllers.runtime.queue import WorkQueue


def test_duplicate_adds_are_one_item() -> None:
    queue = WorkQueue()
    for _ in range(3):
        queue.add("a")
    queue.add("b")
    assert [queue.get(0.1), queue.get(0.1), queue.get(0.05)] == ["a", "b", None]


def test_a_key_added_while_processing_comes_back_after_done_only() -> None:
    queue = WorkQueue()
    queue.add("a")
    assert queue.get(0.1) == "a"
    queue.add("a")
    assert queue.get(0.05) is None, "never two workers on one key"
    queue.done("a")
    assert queue.get(0.1) == "a"


def test_add_after_keeps_the_earliest_time_and_add_supersedes_it() -> None:
    queue = WorkQueue()
    queue.add_after("a", 0.3)
    queue.add_after("a", 5)
    started = time.monotonic()
    assert queue.get(2) == "a"
    assert 0.25 < time.monotonic() - started < 1.5
    queue.done("a")
    queue.add_after("b", 10)
    queue.add("b")
    assert queue.get(0.1) == "b"
    queue.done("b")
    assert queue.get(0.2) is None, "the superseded delayed entry does not fire again"


def test_backoff_grows_exponentially_and_forget_resets_it() -> None:
    queue = WorkQueue(backoff_base=0.01, backoff_max=0.1)
    delays = [queue.add_rate_limited("a") for _ in range(6)]
    assert 0.009 <= delays[0] <= 0.011
    assert 0.018 <= delays[1] <= 0.022
    assert delays[-1] <= 0.11, "capped"
    queue.forget("a")
    assert queue.add_rate_limited("a") <= 0.011


def test_shutdown_wakes_blocked_workers() -> None:
    queue = WorkQueue()
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(queue.get()))
    worker.start()
    time.sleep(0.05)
    queue.shutdown()
    worker.join(2)
    assert results == [None]
