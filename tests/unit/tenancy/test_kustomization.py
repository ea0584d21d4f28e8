"""Remote bases in kustomization.yaml."""

from __future__ import annotations

import pytest
import yaml

from fluxwarden.tenancy import remote_bases
from fluxwarden.tenancy.kustomization import is_remote


@pytest.mark.parametrize(
    ("entry", "remote"),
    [
        ("../base", False),
        ("deploy.yaml", False),
        ("./apps/podinfo", False),
        ("/abs/path", False),
        ("configmap.v1.yaml", False),
        ("https://github.com/fluxcd/flux2/manifests/install?ref=v2.3.0", True),
        ("http://example.com/deploy.yaml", True),
        ("github.com/kubernetes-sigs/kustomize/examples/multibases?ref=v1.0.6", True),
        ("git@github.com:owner/repo.git//path", True),
        ("git::https://gitlab.com/org/repo//base", True),
        ("ssh://git@example.com/repo.git", True),
        ("example.com/team/repo/base", True),
    ],
)
def test_is_remote(entry: str, remote: bool) -> None:
    assert is_remote(entry) is remote


def test_remote_bases_report_field_and_line() -> None:
    text = "resources:\n- ../base\n- https://example.com/x.yaml\ncomponents:\n- github.com/o/r/c\nbases:\n- ./ok\n"
    found = remote_bases(text)
    assert [(b.field, b.line) for b in found] == [("resources", 3), ("components", 5)]
    assert "vendor it into the repository" in found[0].explanation


def test_not_a_mapping_and_broken_yaml() -> None:
    assert remote_bases("- a\n- b\n") == []
    with pytest.raises(yaml.YAMLError):
        remote_bases("resources: [unclosed\n")
