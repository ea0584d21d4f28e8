"""valuesFrom ``targetPath`` in helm's ``--set`` syntax, the merge order, and the config digest."""

from __future__ import annotations

import hashlib
import json

import pytest

from fluxwarden.controllers.helm.values import config_digest, load_values, set_path
from fluxwarden.controllers.runtime.values import merge_values as merge


@pytest.mark.parametrize(
    ("path", "raw", "expected"),
    [
        ("a.b", "3", {"a": {"b": 3}}),
        ("a.b", "true", {"a": {"b": True}}),
        ("a.b", "null", {"a": {"b": None}}),
        ("a.b", "007", {"a": {"b": "007"}}),  # leading zeros stay a string, as helm's --set keeps them
        ("a.b", '"5"', {"a": {"b": "5"}}),  # quoted: a string (Flux's ParseIntoString)
        ("a.b", "{x,y}", {"a": {"b": ["x", "y"]}}),
        ("list[1].name", "z", {"list": [None, {"name": "z"}]}),
        ("dotted\\.key", "v", {"dotted.key": "v"}),
    ],
)
def test_set_path_types_values_as_helm_set_does(path: str, raw: str, expected: dict[str, object]) -> None:
    values: dict[str, object] = {}
    set_path(values, path, raw)
    assert values == expected


@pytest.mark.parametrize("path", ["a..b", "[0]", "a[x]", "a.", "a[99999999]"])
def test_malformed_target_paths_are_refused_with_the_path_named(path: str) -> None:
    with pytest.raises(ValueError, match="targetPath"):
        set_path({}, path, "1")


def test_set_path_replaces_a_scalar_on_the_way_with_a_map() -> None:
    values: dict[str, object] = {"a": "scalar"}
    set_path(values, "a.b", "1")
    assert values == {"a": {"b": 1}}


def test_merge_is_deep_for_maps_and_replaces_everything_else() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    assert merge(base, {"a": {"y": [3]}, "c": 2}) == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}, "the inputs are not changed"


def test_the_config_digest_ignores_key_order_and_sees_every_value() -> None:
    canonical = json.dumps({"a": 1, "b": {"c": [1, "x"]}}, sort_keys=True, separators=(",", ":"))
    expected = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    assert config_digest({"b": {"c": [1, "x"]}, "a": 1}) == expected
    assert config_digest({"a": 1, "b": {"c": [1, "y"]}}) != expected
    assert config_digest(None) == config_digest({})


def test_values_yaml_is_read_as_helm_reads_it() -> None:
    # go-yaml (helm): no timestamps, no base-60 numbers; 1e3 is a float, 0o17 an octal integer.
    read = load_values("a: 22:22\nb: 2001-12-14\nc: 0x1f\nd: 1e3\ne: 0o17\nf: 'x'\n")
    assert read == {"a": "22:22", "b": "2001-12-14", "c": 31, "d": 1000.0, "e": 15, "f": "x"}


def test_an_integral_float_digests_as_helm_stores_it() -> None:
    # helm's release record is JSON from Go: 2.0 comes back as 2, which must not look like a change.
    assert config_digest({"tag": 2.0, "n": [1.0, 2.5]}) == config_digest({"tag": 2, "n": [1, 2.5]})
