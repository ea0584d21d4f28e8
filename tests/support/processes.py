"""Which programs this test process started, seen from /proc while it runs.

The controllers run in the test's own process, so every helm they start is a descendant of it: a
watcher that samples /proc tells "no helm process ran" from "one ran", without wrapping helm.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Self


def _parents() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command name) of every process readable in /proc."""
    found: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        found[int(entry.name)] = (ppid, name)
    return found


def descendants(root: int, name: str) -> set[int]:
    """The pids of processes called ``name`` below ``root``."""
    table = _parents()
    hits = set()
    for pid, (_, command) in table.items():
        if command != name:
            continue
        parent = pid
        while parent in table and parent not in (0, 1):
            parent = table[parent][0]
            if parent == root:
                hits.add(pid)
                break
    return hits


class ChildWatch:
    """Samples, every ``interval`` seconds, the descendants called ``name`` of this process.

    A helm run lasts far longer than the interval (process start, discovery, API calls), so a run
    the watcher misses would have to be shorter than any real helm call.
    """

    def __init__(self, name: str = "helm", interval: float = 0.02) -> None:
        self.name = name
        self.interval = interval
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            self.seen |= descendants(me, self.name)
            self._stop.wait(self.interval)
