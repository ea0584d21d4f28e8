"""Integration fixtures: a real webhook server over real HTTPS on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.webhook import WebhookProcess


@pytest.fixture
def start_webhook(tmp_path: Path) -> Iterator[Callable[..., WebhookProcess]]:
    """Factory: ``start_webhook(*serve_args)`` runs ``fluxwarden serve`` and stops it after the test."""
    started: list[WebhookProcess] = []

    def start(*args: str) -> WebhookProcess:
        process = WebhookProcess(tmp_path / f"certs{len(started)}", tmp_path / f"serve{len(started)}.log", args)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def webhook(start_webhook: Callable[..., WebhookProcess]) -> WebhookProcess:
    return start_webhook("--request-timeout", "1", "--cert-reload-interval", "0.2")
