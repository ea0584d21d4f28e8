"""A process and its descendants as ``/proc`` shows them, sampled: summed RSS peaks, children, peak RSS of one.

A controller that runs CLIs (helm, kustomize, a Python plugin) costs more memory than its own
``VmHWM``: what counts is the controller plus the children alive at the same moment. A child caught
between fork and exec (still the controller's executable) shows the controller's own pages, so it
is left out. Short-lived
children come and go between samples, so peaks are lower bounds of the true peak, and a process
seen in no sample is not counted (``bench.helm`` counts helm processes exactly, another way).
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def _exe(pid: int) -> str | None:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/exe")
    return None


def _status(pid: int) -> dict[str, str]:
    values: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Name", "VmRSS", "RssAnon", "VmHWM"):
                values[key] = rest.strip().split()[0] if key != "Name" else rest.strip()
    return values


@dataclass
class Tree:
    """The controller's process tree as sampled: peaks of the sum over live processes."""

    samples: int = 0
    peak_rss_kib: int = 0  # sum of VmRSS: counts helm's shared binary pages once per process, an upper bound
    peak_anon_kib: int = 0  # sum of RssAnon: the memory no process shares
    peak_children: int = 0
    child_hwm_kib: int = 0  # the largest VmHWM seen of a helm child
    helm_pids: set[int] = field(default_factory=set)
    seen: dict[int, tuple[float, float]] = field(default_factory=dict)  # helm pid -> first and last sample seen
    names: dict[int, str] = field(default_factory=dict)  # every descendant seen -> its name (comm)
    sampler_cpu_s: float = 0.0
    unexeced: int = 0  # samples of a child forked but not yet exec'd: the root's own pages, not counted again

    def lifetimes_ms(self, commands: dict[int, str]) -> dict[str, list[float]]:
        """How long each helm process lived, by its first argument (``commands``: pid -> it), to one sample."""
        found: dict[str, list[float]] = collections.defaultdict(list)
        for pid, (first, last) in self.seen.items():
            if pid in commands:
                found[commands[pid]].append((last - first) * 1e3)
        return dict(found)

    def unlogged(self, commands: dict[int, str]) -> collections.Counter[str]:
        """Names of the descendants that the counting helm did not log (not helm, or not through PATH)."""
        return collections.Counter(name for pid, name in self.names.items() if pid not in commands)


class TreeSampler:
    """A thread that reads ``root``'s descendants from ``/proc`` every ``every`` s; those whose name starts
    with ``tracked`` are followed one by one (``Tree.helm_pids``, ``seen``, ``child_hwm_kib``)."""

    def __init__(self, root: int, every: float = 0.02, tracked: str = "helm") -> None:
        self.root, self.every, self.tracked, self.tree = root, every, tracked, Tree()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)

    def _sample(self) -> None:
        # A child of the root running the root's executable is between fork (or vfork, which shares the
        # root's memory) and exec: its VmRSS is the root's pages, which would be counted twice.
        root_exe = _exe(self.root)
        pids, queue = [self.root], []
        for child in _children(self.root):
            if root_exe is not None and _exe(child) == root_exe:
                self.tree.unexeced += 1
            else:
                queue.append(child)
        while queue:
            pid = queue.pop()
            pids.append(pid)
            queue += _children(pid)
        rss = anon = children = 0
        now = time.monotonic()
        for pid in pids:
            status = _status(pid)
            if not status.get("VmRSS"):
                continue  # gone, or a zombie
            rss, anon = rss + int(status["VmRSS"]), anon + int(status.get("RssAnon", "0"))
            if pid != self.root:
                children += 1
                self.tree.names[pid] = status.get("Name", "?")  # the last: a fork shows its parent's name until exec
                if status.get("Name", "").startswith(self.tracked):
                    self.tree.helm_pids.add(pid)
                    self.tree.seen[pid] = (self.tree.seen.get(pid, (now, now))[0], now)
                    self.tree.child_hwm_kib = max(self.tree.child_hwm_kib, int(status.get("VmHWM", "0")))
        t = self.tree
        t.samples += 1
        t.peak_rss_kib, t.peak_anon_kib = max(t.peak_rss_kib, rss), max(t.peak_anon_kib, anon)
        t.peak_children = max(t.peak_children, children)

    def _run(self) -> None:
        began = time.thread_time()
        while not self._stop.wait(self.every):
            self._sample()
        self.tree.sampler_cpu_s = time.thread_time() - began

    def __enter__(self) -> Tree:
        self._thread.start()
        return self.tree

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


class PeakRss:
    """A thread that reads ``VmHWM`` of ``pid`` every 10 ms until it exits (``ru_maxrss`` of a child would count
    the pages of this process it was forked from)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.kib = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            hwm = _status(self.pid).get("VmHWM")
            if hwm:
                self.kib = max(self.kib, int(hwm))
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
