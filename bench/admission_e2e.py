"""The latency fluxwarden's webhooks add to a create through a real kube-apiserver, side by side in one run.

``python -m bench.admission_e2e`` starts etcd + kube-apiserver (``tests/support/control_plane.py``),
installs fluxwarden's CRDs, runs ``fluxwarden serve`` (default settings) and registers it with the
shipped webhook configurations (``webhook_configurations``) on a loopback URL. One namespace is
left out of the registration through its namespaceSelector, the way kube-system and flux-system are.

It then creates Kustomizations without ``serviceAccountName`` one at a time over one keep-alive
HTTPS connection, in blocks that alternate between a judged namespace and the excluded one (ABBA
order), so both conditions share the apiserver, etcd, connection, selector matching and drift; the
only difference is the two webhook calls (mutate, which patches ``serviceAccountName``, then
validate). It prints p50/p99 for both, the difference, and fluxwarden's own time per call from its
decision log. About half a minute with a warm binary cache; everything is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cluster import Api, cluster
from bench.stats import pct
from fluxwarden.certs import ca_bundle
from fluxwarden.webhook.registration import UNJUDGED_NAMESPACES, Endpoint, webhook_configurations
from tests.support.binaries import binary_dir
from tests.support.kube import KubectlRunner
from tests.support.webhook import WebhookProcess

TARGET_ADDED_P50_MS = 3.0
REGISTRATION = "fluxwarden-bench"
APPLIER = "flux-applier"
KUSTOMIZATIONS = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{namespace}/kustomizations"
WITH, WITHOUT = "with fluxwarden", "without webhooks"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.admission_e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=300, help="measured creates per condition (default 300)")
    parser.add_argument("--block", type=int, default=25, help="creates per block before switching (default 25)")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured creates per condition first (default 30)")
    return parser.parse_args(argv)


def kustomization(name: str) -> bytes:
    """A tenant's Kustomization as a repository holds it: no serviceAccountName, so the mutator patches it."""
    obj = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "bench"}},
        "spec": {
            "interval": "10m",
            "path": "./apps/production",
            "prune": True,
            "targetNamespace": "apps",
            "sourceRef": {"kind": "GitRepository", "name": "platform"},
        },
    }
    return json.dumps(obj).encode()


def create(api: Api, namespace: str, name: str, *, dry_run: bool = False) -> tuple[dict[str, Any], float]:
    path = KUSTOMIZATIONS.format(namespace=namespace) + ("?dryRun=All" if dry_run else "")
    status, data, seconds = api.post(path, kustomization(name))
    if status != 201:
        raise RuntimeError(f"create {namespace}/{name}: HTTP {status}: {data[:500]!r}")
    stored: dict[str, Any] = json.loads(data)
    return stored, seconds


def admission_records(webhook: WebhookProcess) -> list[dict[str, Any]]:
    """The decision records of fluxwarden's JSON log (the start-up banner is plain text)."""
    records = []
    for line in webhook.log_file.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("msg") == "admission":
                records.append(record)
    return records


def register(kubectl: KubectlRunner, api: Api, webhook: WebhookProcess, judged: str, excluded: str) -> None:
    """Register the webhooks with ``excluded`` left out, and wait until the apiserver calls both."""
    configurations = webhook_configurations(
        Endpoint(url=webhook.url),
        ca_bundle(webhook.ca_file.read_bytes()),
        name=REGISTRATION,
        unjudged_namespaces=(*UNJUDGED_NAMESPACES, excluded),
    )
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": configurations})
    kubectl("apply", "--server-side", "-f", "-", input=document)
    deadline = time.monotonic() + 30
    while True:  # the apiserver reads registrations from a cache: probe until both routes are called
        probe = f"probe-{uuid.uuid4().hex[:8]}"
        create(api, judged, probe, dry_run=True)
        if {r["route"] for r in admission_records(webhook) if r.get("name") == probe} >= {"mutate", "validate"}:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"registration not in effect after 30s:\n{webhook.log_tail()}")
        time.sleep(0.05)


@dataclass(frozen=True)
class Summary:
    p50_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Summary:
        return cls(pct(seconds, 50) * 1e3, pct(seconds, 99) * 1e3, sum(seconds) / len(seconds) * 1e3)


def measure(api: Api, namespaces: dict[str, str], args: argparse.Namespace) -> dict[str, list[float]]:
    """Interleaved blocks, ABBA, after an unmeasured warm-up of each condition; checks every answer."""
    for namespace in namespaces.values():
        for i in range(args.warmup):
            create(api, namespace, f"warmup-{i}")
    latencies: dict[str, list[float]] = {condition: [] for condition in namespaces}
    blocks = -(-args.creates // args.block)
    for block in range(blocks):
        order = list(namespaces) if block % 2 == 0 else list(reversed(namespaces))
        for condition in order:
            namespace, done = namespaces[condition], len(latencies[condition])
            for i in range(done, min(done + args.block, args.creates)):
                stored, seconds = create(api, namespace, f"bench-{i}")
                patched = stored["spec"].get("serviceAccountName") == APPLIER
                if patched != (condition == WITH):
                    raise RuntimeError(f"{condition}: {namespace}/bench-{i} patched={patched}; registration wrong")
                latencies[condition].append(seconds)
    return latencies


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bins = binary_dir()
    with tempfile.TemporaryDirectory(prefix="fluxwarden-bench-") as tmp:
        work = Path(tmp)
        began = time.monotonic()
        with cluster(bins, work) as running:
            plane, kubectl, version = running.plane, running.kubectl, running.version
            namespaces = {WITH: "bench-judged", WITHOUT: "bench-excluded"}
            kubectl("create", "namespace", namespaces[WITH])
            kubectl("create", "namespace", namespaces[WITHOUT])
            webhook = WebhookProcess(work / "certs", work / "webhook.log").start()
            api = Api(plane)
            try:
                register(kubectl, api, webhook, namespaces[WITH], namespaces[WITHOUT])
                print(
                    f"admission e2e: kube-apiserver {version} + etcd on loopback, fluxwarden serve (pid "
                    f"{webhook.process.pid if webhook.process else '?'}), {os.cpu_count()} CPUs; set-up "
                    f"{time.monotonic() - began:.1f}s"
                )
                print(
                    f"{args.creates} Kustomization creates per condition, blocks of {args.block} interleaved "
                    f"(ABBA), {args.warmup} warm-up each; one keep-alive HTTPS connection, one request at a time"
                )
                started = time.monotonic()
                latencies = measure(api, namespaces, args)
                elapsed = time.monotonic() - started
            finally:
                api.close()
                webhook.stop()
            records = [r for r in admission_records(webhook) if str(r.get("name", "")).startswith("bench-")]
    report(latencies, records, elapsed)
    return 0


def report(latencies: dict[str, list[float]], records: list[dict[str, Any]], elapsed: float) -> None:
    summaries = {condition: Summary.of(values) for condition, values in latencies.items()}
    print(f"measured in {elapsed:.1f}s")
    print(f"{'condition':<18} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for condition in (WITHOUT, WITH):
        s = summaries[condition]
        print(f"{condition:<18} {s.p50_ms:>8.2f} {s.p99_ms:>8.2f} {s.mean_ms:>8.2f}")
    with_, without = summaries[WITH], summaries[WITHOUT]
    added_p50, added_p99 = with_.p50_ms - without.p50_ms, with_.p99_ms - without.p99_ms
    print(f"{'added':<18} {added_p50:>+8.2f} {added_p99:>+8.2f} {with_.mean_ms - without.mean_ms:>+8.2f}")
    for route in ("mutate", "validate"):
        inside = [float(r["ms"]) for r in records if r.get("route") == route]
        if inside:
            print(
                f"  fluxwarden's own time in /{route} (its decision log, body read to answer): "
                f"p50 {pct(inside, 50):.3f} ms, p99 {pct(inside, 99):.3f} ms, {len(inside)} calls"
            )
    verdict = "met" if added_p50 < TARGET_ADDED_P50_MS else "MISSED"
    print(f"added p50 {added_p50:.2f} ms; target < {TARGET_ADDED_P50_MS:g} ms: {verdict}")


if __name__ == "__main__":
    sys.exit(main())
