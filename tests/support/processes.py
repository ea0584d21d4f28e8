"""Which programs this test process started, seen from /proc while it runs.

The controllers run in the test's own process, so every helm they start is a descendant of it: a
watcher that samples /proc tells "no helm process ran" from "one ran", without wrapping helm. A
process is matched by the binary it runs (``/proc/<pid>/exe``), whatever name it was started under.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Any, Self


def descendant_pids(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc), parents before children, so a server's stop() can end its sessions."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _executable(pid: int) -> str | None:
    try:
        return os.path.realpath(f"/proc/{pid}/exe")
    except OSError:
        return None  # exited meanwhile


def descendants(root: int, executable: str) -> set[int]:
    """The pids of processes below ``root`` running ``executable`` (by the real path, so links count)."""
    return {pid for pid in descendant_pids(root) if _executable(pid) == executable}


def end(process: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM ``process``, SIGKILL it if it outlives ``grace`` seconds; reap it either way."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ChildWatch:
    """Samples, every ``interval`` seconds, the descendants of this process that run ``executable``.

    A program started through a link (the controller runs helm as ``helm-controller``) counts too.

    A helm run lasts far longer than the interval (process start, discovery, API calls), so a run
    the watcher misses would have to be shorter than any real helm call.
    """

    def __init__(self, executable: str, interval: float = 0.02) -> None:
        self.executable = os.path.realpath(executable)
        self.interval = interval
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="child-watch", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            self.seen |= descendants(me, self.executable)
            self._stop.wait(self.interval)
