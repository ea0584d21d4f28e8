"""The build's two shortcuts read exactly what the slow paths read: kustomize's output parsed by libyaml
(the pure-Python loader's result and errors), and the generated listing kept by artifact digest and path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fluxwarden.controllers.kustomize.build import (
    BuildError,
    Listings,
    ManifestLoader,
    generate_kustomization,
    parse_manifests,
)
from tests.support.files import write_tree as write

# Plain scalars where YAML 1.1 and 1.2 differ, numbers in every base, quoting, blocks, anchors, unicode.
STREAM = """apiVersion: v1
kind: ConfigMap
metadata:
  name: a
  labels: {on: "yes", "off": no}
data:
  date: 2024-01-01
  clock: 1:20
  eq: =
  merge: <<
  octal: 0755
  hex: 0x1F
  float: 1.5e+3
  inf: .inf
  quoted: "true"
  block: |
    line one
    line two
  folded: >-
    folded
    text
  unicode: "caf\\u00e9 \\U0001F600"
  empty: ""
  nothing: null
  list: &anchor [1, two, 3.0]
  again: *anchor
---
---
apiVersion: v1
kind: Secret
metadata: {name: b}
stringData: {key: 'single ''quoted'''}
"""


def test_parse_manifests_reads_what_the_pure_python_loader_reads() -> None:
    expected = [d for d in yaml.load_all(STREAM, Loader=ManifestLoader) if d is not None]
    found = parse_manifests(STREAM)
    assert found == expected
    assert found[0]["data"]["date"] == "2024-01-01" and found[0]["data"]["clock"] == "1:20"  # YAML 1.2 strings
    assert found[0]["data"]["octal"] == 0o755 and found[0]["data"]["hex"] == 31
    assert [type(v) for v in found[0]["data"].values()] == [type(v) for v in expected[0]["data"].values()]


@pytest.mark.parametrize("bad", ["a: [1, 2\n", "a: b\n c: d\n", "- a\nb: c\n", "a: \x07\n", "a: 'open\n"])
def test_a_refused_stream_fails_with_the_pure_python_message(bad: str) -> None:
    with pytest.raises(yaml.YAMLError) as pure:
        list(yaml.load_all(bad, Loader=ManifestLoader))
    mark = getattr(pure.value, "problem_mark", None) or getattr(pure.value, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(pure.value, "problem", None) or getattr(pure.value, "reason", None)
    with pytest.raises(BuildError) as built:
        parse_manifests(bad)
    said = " ".join(str(problem).split())
    assert str(built.value) == f"kustomize build output is not valid YAML at line {line}: {said}"


def _tree(root: Path) -> None:
    write(root, {"apps/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n", "apps/ci.yaml": "x: 1\n"})


def test_a_listing_is_kept_per_digest_and_path(tmp_path: Path) -> None:
    listings = Listings()
    _tree(tmp_path / "one")
    first = generate_kustomization(tmp_path / "one", tmp_path / "one" / "apps", (listings, "sha256:aa")).read_text()
    assert listings.get(("sha256:aa", "apps")) == ["a.yaml"]
    # A second tree of the same digest lists what the first did, without reading its files: prove it by
    # a tree whose files would list differently (a digest names one content, so this never happens live).
    write(tmp_path / "two", {"apps/b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n"})
    again = generate_kustomization(tmp_path / "two", tmp_path / "two" / "apps", (listings, "sha256:aa"))
    assert again.read_text() == first
    other = generate_kustomization(tmp_path / "two", tmp_path / "two" / "apps", (listings, "sha256:bb"))
    assert "b.yaml" in other.read_text() and "a.yaml" not in other.read_text()


def test_a_failed_listing_is_not_kept(tmp_path: Path) -> None:
    listings = Listings()
    write(tmp_path, {"apps/bad.yaml": "a: [1\n"})
    for _ in range(2):
        with pytest.raises(BuildError):
            generate_kustomization(tmp_path, tmp_path / "apps", (listings, "sha256:cc"))
    assert listings.get(("sha256:cc", "apps")) is None
