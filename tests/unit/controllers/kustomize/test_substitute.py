"""Post-build substitution: Flux's ${var} language, escapes, opt-out, strict mode, typing, secrecy."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from fluxwarden.controllers.kustomize.substitute import (
    SUBSTITUTE_KEY,
    SubstitutionError,
    object_id,
    substitute,
    variables_from,
)

VARS = {
    "app": "podinfo",
    "empty": "",
    "count": "3",
    "enabled": "true",
    "quote": '"',
    "colon": "a: b",
    "quotes": "he said \"hi\" and 'bye'",
    "hash": "x #y",
    "flow": "[1, 2]",
    "path": "/home/bozo/ideas/thoughts.for.today",
    "file": "bash.string.txt",
    "mixed": "abcABC123ABCabc",
}


def config_map(data: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app", "namespace": "team", **metadata},
        "data": data,
    }


def expand(text: str, variables: dict[str, str] = VARS, strict: bool = True) -> Any:
    return substitute([config_map({"key": text})], variables, strict=strict)[0]["data"]["key"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("${app}", "podinfo"),
        ("image: ghcr.io/${app}:v1", "image: ghcr.io/podinfo:v1"),
        ("${app}-${app}", "podinfo-podinfo"),
        # defaults: all three forms use the default when the variable is unset or empty (Flux)
        ("${missing:=fallback}", "fallback"),
        ("${missing:-fallback}", "fallback"),
        ("${missing=fallback}", "fallback"),
        ("${empty:=fallback}", "fallback"),
        ("${empty=fallback}", "fallback"),
        ("${app:=fallback}", "podinfo"),
        ("${missing:=}", None),
        ("${missing:=${app}-x}", "podinfo-x"),
        ("${missing:=pre${app}}", "prepodinfo"),
        # escapes: $$ is a literal $, so $${var} is kept as ${var}; $var is never expanded
        ("$${app}", "${app}"),
        ("$${missing}", "${missing}"),
        ("echo $app $$HOME", "echo $app $HOME"),
        ("cost: 5$", "cost: 5$"),
        ("$${var$${app}$app${app}", "${var${app}$apppodinfo"),
        ("$${missing=${app}}", "${missing=podinfo}"),
        # the other functions of Flux's envsubst
        ("${#app}", 7),
        ("${app^}", "Podinfo"),
        ("${app^^}", "PODINFO"),
        ("${mixed,}", "abcABC123ABCabc"),
        ("${mixed,,}", "abcabc123abcabc"),
        ("${path:11}", "ideas/thoughts.for.today"),
        ("${path:11:5}", "ideas"),
        ("${app: -4}", "info"),
        ("${app:1:-1}", "odinf"),
        ("${app:x}", "podinfo"),
        ("${mixed/abc/xyz}", "xyzABC123ABCabc"),
        ("${mixed//abc/xyz}", "xyzABC123ABCxyz"),
        ("${mixed/#abc/XYZ}", "XYZABC123ABCabc"),
        ("${mixed/%abc/XYZ}", "abcABC123ABCXYZ"),
        ("${app/#/pre-}", "pre-podinfo"),
        ("${path//\\//-}", "-home-bozo-ideas-thoughts.for.today"),
        ("${mixed/abc/}", "ABC123ABCabc"),
        ("${file#*.}", "string.txt"),
        ("${file##*.}", "txt"),
        ("${file%.*}", "bash.string"),
        ("${file%%.*}", "bash"),
        ("${path##*/}", "thoughts.for.today"),
    ],
)
def test_expressions(text: str, expected: Any) -> None:
    assert expand(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a one-line string that held an expression is typed as Flux's re-parse of a plain scalar
        ("${count}", 3),
        ("${enabled}", True),
        ("${empty}", None),
        ("${flow}", [1, 2]),
        ("${quote}${count}${quote}", "3"),  # Flux's documented way to keep a number a string
        ("${quote}${enabled}${quote}", "true"),
        ("v${count}", "v3"),
        # values with YAML syntax stay the exact text (Flux would fail on 'a: b' or cut at '#')
        ("${colon}", "a: b"),
        ("key: ${colon}", "key: a: b"),
        ("${quotes}", "he said \"hi\" and 'bye'"),
        ("'${quotes}'", "'he said \"hi\" and 'bye''"),
        ("${hash}", "x #y"),
        ("${quote}", '"'),
        # strings without expressions are never retyped, escapes included
        ("8080", "8080"),
        ("$${count}", "${count}"),
    ],
)
def test_typing_of_substituted_strings(text: str, expected: Any) -> None:
    result = expand(text)
    assert result == expected and type(result) is type(expected)


def test_multi_line_strings_stay_strings() -> None:
    script = "#!/bin/sh\necho ${app} ${count}\nexit $$?\n"
    assert expand(script) == "#!/bin/sh\necho podinfo 3\nexit $?\n"


def test_numbers_already_strings_stay_strings_and_types_are_kept() -> None:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app", "labels": {"version": "1.0", "tier": "${app}"}},
        "spec": {"replicas": "${count}", "paused": False, "ports": [8080, "9090"], "ratio": 0.5},
    }
    result = substitute([obj], VARS)[0]
    assert result["metadata"]["labels"] == {"version": "1.0", "tier": "podinfo"}
    assert result["spec"] == {"replicas": 3, "paused": False, "ports": [8080, "9090"], "ratio": 0.5}


def test_keys_are_substituted_but_not_retyped() -> None:
    result = substitute([config_map({"${app}.conf": "x", "${count}": "y"})], VARS)[0]
    assert result["data"] == {"podinfo.conf": "x", "3": "y"}


def test_results_are_valid_yaml_whatever_the_values() -> None:
    nasty = {"v": "a: b\n- c\n'\"\\ {[ #  &x *y !tag %p @q `r"}
    obj = config_map({"one": "${v}", "two": "pre ${v} post", "three": "${v:=x}"})
    result = substitute([obj], variables_from(nasty, []))[0]
    assert yaml.safe_load(yaml.safe_dump(result)) == result
    assert result["data"]["two"] == "pre a: b- c'\"\\ {[ #  &x *y !tag %p @q `r post"


@pytest.mark.parametrize(
    "metadata",
    [
        {"labels": {SUBSTITUTE_KEY: "disabled"}},
        {"annotations": {SUBSTITUTE_KEY: "disabled"}},
    ],
    ids=["label", "annotation"],
)
def test_opt_out_by_label_or_annotation(metadata: dict[str, Any]) -> None:
    opted_out = config_map({"key": "${missing} ${app}"}, **metadata)
    other = config_map({"key": "${app}"})
    result = substitute([opted_out, other], VARS)
    assert result[0] is opted_out and result[0]["data"]["key"] == "${missing} ${app}"
    assert result[1]["data"]["key"] == "podinfo"


def test_other_values_of_the_opt_out_key_do_not_opt_out() -> None:
    obj = config_map({"key": "${app}"}, annotations={SUBSTITUTE_KEY: "enabled"})
    assert substitute([obj], VARS)[0]["data"]["key"] == "podinfo"


def test_inputs_are_not_modified() -> None:
    obj = config_map({"key": "${app}"})
    substitute([obj], VARS)
    assert obj["data"]["key"] == "${app}"


def test_no_variables_means_no_substitution_as_in_flux() -> None:
    obj = config_map({"key": "${missing}"})
    assert substitute([obj], {}) == [obj]


def test_strict_mode_names_the_variable_object_and_field() -> None:
    with pytest.raises(SubstitutionError) as caught:
        expand("prefix-${region}")
    message = str(caught.value)
    assert "'region'" in message and "ConfigMap/team/app" in message and "data.key" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("${region}", None), ("x-${region}-y", "x--y"), ("${#region}", 0), ("${region^^}", None)],
)
def test_non_strict_mode_expands_unset_variables_to_nothing(text: str, expected: Any) -> None:
    assert expand(text, strict=False) == expected


@pytest.mark.parametrize("text", ["${#region}", "${region^^}", "${region:1}", "${region/a/b}", "${region%%.*}"])
def test_strict_mode_also_covers_functions_of_unset_variables(text: str) -> None:
    with pytest.raises(SubstitutionError, match="'region' is not set"):
        expand(text)


def test_strict_mode_only_evaluates_a_default_when_it_is_used() -> None:
    assert expand("${app:=${missing}}") == "podinfo"
    with pytest.raises(SubstitutionError, match="'missing'"):
        expand("${other:=${missing}}")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("${app", "missing '}'"),
        ("${app-x}", "not supported"),
        ("${app:+x}", "not supported"),
        ("${app:?x}", "not supported"),
        ("${1abc}", "bad variable name"),
        ("${}", "bad variable name"),
        ("${app!}", "bad substitution"),
        ("${app/x}", "missing '/'"),
        ("${app^^x}", "bad substitution"),
    ],
)
def test_malformed_expressions(text: str, fragment: str) -> None:
    with pytest.raises(SubstitutionError, match=r"^ConfigMap/team/app: data\.key: ") as caught:
        expand(text)
    assert fragment in str(caught.value)


def test_errors_never_contain_values() -> None:
    secret = "s3cr3t-value"
    variables = {"token": secret, "other": secret}
    cases: list[tuple[dict[str, Any], dict[str, str]]] = [
        (config_map({"key": "${token} ${missing}"}), variables),
        (config_map({"key": "${token} ${other/s3/x"}), variables),
        ({"apiVersion": "v1", "kind": "${token}", "metadata": {"name": "x"}}, {"token": ""}),
        ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "${flag}"}}, {"flag": "true"}),
    ]
    for obj, values in cases:
        with pytest.raises(SubstitutionError) as caught:
            substitute([obj], values)
        assert secret not in str(caught.value)
    with pytest.raises(SubstitutionError) as caught:
        variables_from({"bad-name": secret}, [])
    assert secret not in str(caught.value) and "'bad-name'" in str(caught.value)


def test_identity_fields_must_survive_substitution() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "${flag}"}}
    with pytest.raises(SubstitutionError, match=r"metadata\.name is not a non-empty string"):
        substitute([obj], {"flag": "true"})


@pytest.mark.parametrize(
    ("substitute_vars", "sources", "expected"),
    [
        (None, [], {}),
        ({"a": "inline"}, [], {"a": "inline"}),
        (None, [{"a": "first", "b": "first"}, {"a": "second"}], {"a": "second", "b": "first"}),
        ({"a": "inline"}, [{"a": "cm", "b": "cm"}, {"a": "secret"}], {"a": "inline", "b": "cm"}),
        ({"a": "multi\nline\n"}, [{"b": "x\ny"}], {"a": "multiline", "b": "xy"}),
    ],
    ids=["nothing", "inline", "later-source-wins", "inline-wins", "newlines-removed"],
)
def test_variables_from_merges_like_flux(
    substitute_vars: dict[str, str] | None, sources: list[dict[str, str]], expected: dict[str, str]
) -> None:
    assert variables_from(substitute_vars, sources) == expected


@pytest.mark.parametrize("name", ["my-var", "1abc", "a.b", "", "ünï"])
def test_invalid_variable_names_are_refused(name: str) -> None:
    with pytest.raises(SubstitutionError, match="is invalid"):
        variables_from(None, [{name: "x"}])
    with pytest.raises(SubstitutionError, match="is invalid"):
        substitute([config_map({})], {name: "x"})


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (config_map({}), "ConfigMap/team/app"),
        ({"kind": "Namespace", "metadata": {"name": "team"}}, "Namespace/team"),
        ({"kind": "ClusterRole"}, "ClusterRole/?"),
    ],
)
def test_object_id(obj: dict[str, Any], expected: str) -> None:
    assert object_id(obj) == expected
