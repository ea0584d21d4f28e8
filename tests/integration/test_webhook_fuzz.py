"""A small seeded fuzz of the real webhook over TLS keep-alive: no 5xx, no dropped connection.

The same cases and client as ``python -m bench.fuzz_webhook`` (which runs 100,000 of them); 2,000
take a few seconds. A failure names the case: ``python -m bench.fuzz_webhook --seed S --show-case N``.
"""

from __future__ import annotations

from bench import fuzz_cases, fuzz_webhook
from tests.support.webhook import WebhookProcess

SEED = 20261201
CASES = 2000


def test_a_seeded_fuzz_gets_no_5xx_and_drops_no_connection(webhook: WebhookProcess) -> None:
    report = fuzz_webhook.run(webhook.port, webhook.ca_file, seed=SEED, count=CASES, connections=4)

    assert report.cases == CASES
    assert {family for family, _ in report.outcomes} == set(fuzz_cases.FAMILIES), "every family was sent"
    assert report.count("200") > CASES // 5 and report.count("400") > CASES // 5, "both verdicts and refusals"
    assert report.failures == {}, f"seed {SEED}: {report.failures}"
    assert report.server_errors == 0 and report.dropped == 0 and report.wrong == 0
    assert webhook.process is not None and webhook.process.poll() is None
    assert webhook.failures_logged() == 0, webhook.log_tail()
