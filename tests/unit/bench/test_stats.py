"""bench.stats.pct, the one percentile of every benchmark: nearest rank, ceil(q/100 * n), in any order."""

from __future__ import annotations

from bench.stats import median, pct


def test_nearest_rank_of_unsorted_values() -> None:
    values = [9.0, 1.0, 5.0, 3.0, 7.0, 2.0, 10.0, 4.0, 8.0, 6.0]
    assert [pct(values, q) for q in (10, 50, 90, 99, 100)] == [1.0, 5.0, 9.0, 10.0, 10.0]
    assert pct(values, 51) == 6.0  # rank ceil(5.1) = 6
    assert pct([4.0], 1) == 4.0


def test_no_values() -> None:
    assert pct([], 99) == 0.0 and median([]) == 0.0
    assert median([3.0, 1.0, 2.0, 10.0]) == 2.5
