"""Generated manifests stay in step with the code that generates them."""

from __future__ import annotations

from pathlib import Path

import yaml

from fluxwarden.cli.manifests import render_webhooks
from fluxwarden.tenancy import KINDS
from fluxwarden.webhook.registration import UNJUDGED_NAMESPACES

ROOT = Path(__file__).parents[3]


def test_manifests_base_webhooks_is_the_generated_output() -> None:
    committed = (ROOT / "manifests/base/webhooks.yaml").read_text()
    assert committed == render_webhooks(None, None), "run: fluxwarden manifests webhooks > manifests/base/webhooks.yaml"


def test_registration_covers_every_kind_and_cannot_lock_itself_out() -> None:
    configs = list(yaml.safe_load_all(render_webhooks("https://127.0.0.1:9443", None)))
    assert [c["kind"] for c in configs] == ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
    for config in configs:
        (hook,) = config["webhooks"]
        covered = {(g, r) for rule in hook["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
        assert {(k.group, k.plural) for k in KINDS} <= covered
        assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]
        assert hook["timeoutSeconds"] == 5 and hook["failurePolicy"] == "Fail"
        (expression,) = hook["namespaceSelector"]["matchExpressions"]
        assert expression["operator"] == "NotIn" and set(expression["values"]) == set(UNJUDGED_NAMESPACES)
        assert hook["clientConfig"]["url"].startswith("https://127.0.0.1:9443/")


def test_crds_serve_every_kind_and_version_the_rules_know() -> None:
    served = set()
    for path in sorted((ROOT / "manifests/crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                spec = doc["spec"]
                storage = [v["name"] for v in spec["versions"] if v["storage"]]
                served |= {(spec["group"], spec["names"]["kind"], v["name"]) for v in spec["versions"] if v["served"]}
                assert storage == [spec["versions"][-1]["name"]], f"{doc['metadata']['name']}: newest is stored"
    assert {(k.group, k.kind, v) for k in KINDS for v in k.versions} == served
