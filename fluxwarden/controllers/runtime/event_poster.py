"""Flux event posts to the notification controller, off the reconcile, retried as Flux's recorder does.

Flux's controllers post through go-retryablehttp: connection errors and 5xx are retried with
backoff. Here a daemon thread per recorder drains a bounded queue, so a reconcile never waits for
the notification controller, and a post that finds it restarting (connection refused, 503 until its
caches are listed) is sent again. A 429 is final when it is the duplicate limit (the event is
there already) and retried when it carries ``Retry-After`` (its delivery queue was full, nothing kept).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import httpx

logger = logging.getLogger("fluxwarden.controllers.events")

RETRIES = 4  # as go-retryablehttp's RetryMax in Flux's recorder
BACKOFF = (1.0, 2.0, 4.0, 8.0)
BACKLOG = 1000  # posts waiting; beyond, the newest is dropped (and logged)
TIMEOUT = 5.0


class EventPoster:
    def __init__(self, url: str) -> None:
        self.url = url
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(BACKLOG)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def post(self, payload: dict[str, Any]) -> None:
        """Queue one event; returns at once."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            logger.warning("event not posted to %s: %d posts waiting already", self.url, BACKLOG)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued post was sent or given up (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="event-poster", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=TIMEOUT) as http:
            while True:
                payload = self._queue.get()
                try:
                    self._send(http, payload)
                finally:
                    self._queue.task_done()

    def _send(self, http: httpx.Client, payload: dict[str, Any]) -> None:
        for attempt in range(RETRIES + 1):
            try:
                response = http.post(self.url, json=payload)
            except httpx.HTTPError as exc:
                problem = f"{exc.__class__.__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return
                if response.status_code == 429 and "retry-after" not in response.headers:
                    return  # a duplicate the notification controller already has
                if response.status_code < 500 and response.status_code != 429:
                    logger.warning("event not posted to %s: %d %s", self.url, response.status_code, response.text[:200])
                    return
                problem = f"{response.status_code} {response.text.strip()[:200]}"
            if attempt < RETRIES:
                time.sleep(BACKOFF[attempt])
        logger.warning("event not posted to %s after %d attempts: %s", self.url, RETRIES + 1, problem)
