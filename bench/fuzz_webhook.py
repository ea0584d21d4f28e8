"""Fuzz the webhook with seeded malformed AdmissionReviews over TLS keep-alive connections.

``python -m bench.fuzz_webhook --seed 1 --cases 100000`` starts ``fluxwarden serve`` the way the
benchmark does (:mod:`bench.servers`: pinned to the server core), and sends the cases of
:mod:`bench.fuzz_cases` from the load core over a few keep-alive HTTPS connections
(:func:`bench.load.exchange`). It counts, per family, the answers by status, the 5xx answers and
the dropped connections (reset or closed without an answer, or closed by the server after one),
and checks every answer: a 200 is an AdmissionReview echoing the uid, a 4xx a one-line error.
The target is no 5xx, no dropped connection and no wrong answer. It prints each failing case's
index, which ``--show-case`` re-makes alone. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import fuzz_cases, servers
from bench.fuzz_cases import Case
from bench.load import Answer, Connection, exchange, http_request
from fluxwarden.certs.files import ensure_serving_pair
from tests.support.webhook import failures_logged

ANSWER_TIMEOUT = 10.0  # seconds; the server's own body timeout is 4
EXPECTED_STATUSES = frozenset({200, 400, 413})
SHOWN_FAILURES = 10


@dataclass
class Report:
    """What one run saw: counts by family and outcome, and the first failures of each kind."""

    seed: int
    cases: int = 0
    seconds: float = 0.0
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (family, outcome) -> cases
    failures: dict[str, list[str]] = field(default_factory=dict)  # kind -> "case N (family): detail"

    def count(self, kind: str) -> int:
        return sum(n for (_, outcome), n in self.outcomes.items() if outcome == kind)

    @property
    def server_errors(self) -> int:
        return self.count("5xx")

    @property
    def dropped(self) -> int:
        return self.count("dropped") + self.count("closed")

    @property
    def wrong(self) -> int:
        return self.count("wrong")

    @property
    def ok(self) -> bool:
        return self.cases > 0 and not (self.server_errors or self.dropped or self.wrong)

    def fail(self, kind: str, case: Case, detail: str) -> None:
        shown = self.failures.setdefault(kind, [])
        if len(shown) < SHOWN_FAILURES:
            shown.append(f"case {case.index} ({case.family}, {case.route}, {len(case.body)} bytes): {detail[:200]}")


def judge(case: Case, answer: Answer) -> str | None:
    """What is wrong with ``answer`` to ``case``, or ``None``."""
    if answer.status not in EXPECTED_STATUSES:
        return f"status {answer.status}"
    if case.valid and answer.status != 200:
        return f"a valid review got {answer.status}: {answer.body[:150]!r}"
    try:
        payload = json.loads(answer.body)
    except ValueError:
        return f"status {answer.status} with a body that is not JSON: {answer.body[:100]!r}"
    if answer.status != 200:
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, str) or "\n" in error or len(error) > 400:
            return f"status {answer.status} without a one-line error: {answer.body[:150]!r}"
        return None
    response = payload.get("response") if isinstance(payload, dict) else None
    if not isinstance(response, dict) or payload.get("kind") != "AdmissionReview":
        return f"200 that is not an AdmissionReview: {answer.body[:150]!r}"
    if not isinstance(response.get("allowed"), bool) or not isinstance(response.get("uid"), str):
        return f"AdmissionReview without uid/allowed: {answer.body[:150]!r}"
    if case.uid is not None and response["uid"] != case.uid:
        return f"uid {response['uid']!r} answered for {case.uid!r}"
    return None


async def _close(connection: Connection) -> None:
    """Close with a TLS goodbye if the server answers it within a second, else cut it."""
    writer = connection[1]
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except (OSError, TimeoutError):
        writer.transport.abort()


async def _worker(port: int, context: ssl.SSLContext, work: Iterator[Case], report: Report) -> None:
    async def connect() -> Connection:
        return await asyncio.open_connection("127.0.0.1", port, ssl=context)

    connection = await connect()
    try:
        for case in work:
            report.cases += 1
            try:
                answer = await asyncio.wait_for(
                    exchange(connection, http_request(case.route, case.body, port)), ANSWER_TIMEOUT
                )
            except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                report.outcomes[case.family, "dropped"] += 1
                report.fail("dropped", case, f"no answer: {exc!r}")
                connection[1].transport.abort()
                connection = await connect()
                continue
            report.outcomes[case.family, str(answer.status)] += 1
            if answer.status >= 500:
                report.outcomes[case.family, "5xx"] += 1
                report.fail("5xx", case, f"{answer.status}: {answer.body[:150]!r}")
            elif (problem := judge(case, answer)) is not None:
                report.outcomes[case.family, "wrong"] += 1
                report.fail("wrong", case, problem)
            if answer.close:
                report.outcomes[case.family, "closed"] += 1
                report.fail("closed", case, f"the server closed the connection after a {answer.status}")
                await _close(connection)
                connection = await connect()
    finally:
        await _close(connection)


async def _fuzz(port: int, context: ssl.SSLContext, seed: int, count: int, connections: int) -> Report:
    report = Report(seed)
    work = fuzz_cases.cases(seed, count)  # one generator shared by every worker: each case is sent once
    started = time.monotonic()
    await asyncio.gather(*(_worker(port, context, work, report) for _ in range(connections)))
    report.seconds = time.monotonic() - started
    return report


def run(port: int, ca_file: Path, *, seed: int, count: int, connections: int = 8) -> Report:
    """Send ``count`` cases of ``seed`` to the webhook on ``port`` and report what came back."""
    context = ssl.create_default_context(cafile=str(ca_file))
    return asyncio.run(_fuzz(port, context, seed, count, connections))


def print_report(report: Report) -> None:
    families = sorted({family for family, _ in report.outcomes})
    columns = ("200", "400", "413", "5xx", "dropped", "closed", "wrong")
    print(f"{'family':<14}{'cases':>8}" + "".join(f"{c:>9}" for c in columns))
    totals: Counter[str] = Counter()
    for family in families:
        row = {c: report.outcomes[family, c] for c in columns}
        cases = sum(n for (f, outcome), n in report.outcomes.items() if f == family and outcome.isdigit())
        cases += report.outcomes[family, "dropped"]
        totals.update(row)
        totals["cases"] += cases
        print(f"{family:<14}{cases:>8}" + "".join(f"{row[c]:>9}" for c in columns))
    print(f"{'total':<14}{totals['cases']:>8}" + "".join(f"{totals[c]:>9}" for c in columns))
    for kind, shown in report.failures.items():
        print(f"first {kind} cases (re-make one with --show-case N):")
        for line in shown:
            print(f"  {line}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz_webhook", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    parser.add_argument("--cases", type=int, default=100_000, help="number of cases (default 100000)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive TLS connections (default 8)")
    parser.add_argument("--server-core", type=int, default=0, help="the core the server runs on (default 0)")
    parser.add_argument("--load-core", type=int, default=1, help="the core this client runs on (default 1)")
    parser.add_argument("--show-case", type=int, metavar="N", help="print case N of the seed and exit")
    return parser.parse_args(argv)


def _status_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    return "?"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.show_case is not None:
        case = fuzz_cases.case(args.seed, args.show_case)
        print(f"case {case.index} of seed {args.seed}: {case.family}, POST {case.route}, {len(case.body)} bytes")
        sys.stdout.buffer.write(case.body[:4000] + b"\n")
        return 0
    os.sched_setaffinity(0, {args.load_core})
    with tempfile.TemporaryDirectory(prefix="fluxwarden-fuzz-") as tmp:
        work = Path(tmp)
        certs = ensure_serving_pair(work / "certs")
        server = servers.fluxwarden(certs, work / "fluxwarden.log")
        server.start(args.server_core)
        try:
            cpu_before = server.cpu_seconds()
            report = run(server.port, certs.ca_cert, seed=args.seed, count=args.cases, connections=args.connections)
            cpu = server.cpu_seconds() - cpu_before
            assert server.process is not None
            peak_rss = _status_field(server.process.pid, "VmHWM")
            healthy = server.request("GET", "/healthz")[0] == 200
        finally:
            code = server.stop()
        log = server.log_file.read_text(errors="replace")
    rate = report.cases / report.seconds if report.seconds else 0.0
    print(
        f"fuzz: seed {report.seed}, {report.cases} cases over {args.connections} keep-alive TLS connections "
        f"in {report.seconds:.1f}s ({rate:.0f} cases/s), server on core {args.server_core}"
    )
    print_report(report)
    tracebacks = failures_logged(log)
    print(
        f"5xx answers: {report.server_errors}; dropped connections: {report.dropped} "
        f"(no answer {report.count('dropped')}, closed by the server {report.count('closed')}); "
        f"wrong answers: {report.wrong}"
    )
    print(
        f"server: healthy after the run: {healthy}; CPU {cpu:.1f}s; peak RSS {peak_rss}; "
        f"tracebacks in its log: {tracebacks}; exit status {code}"
    )
    return 0 if report.ok and healthy and not tracebacks and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
