"""``fluxwarden review``: the same answer as the server, with exit codes 0 / 1 / 2."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from fluxwarden.cli.main import main
from tests.support.reviews import admission_review, legacy_helmrelease


def write(tmp_path: Path, review: object) -> str:
    path = tmp_path / "review.json"
    path.write_text(json.dumps(review))
    return str(path)


def test_denied_review_exits_1_with_the_response(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["review", write(tmp_path, admission_review(legacy_helmrelease(), uid="u-1"))])
    answer = json.loads(capsys.readouterr().out)
    assert code == 1
    assert answer["response"]["uid"] == "u-1" and answer["response"]["allowed"] is False
    assert answer["response"]["status"]["message"].startswith("cross-namespace-ref: HelmRelease nginx/nginx")


def test_allowed_review_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixed = legacy_helmrelease(source_namespace="nginx")
    assert main(["review", write(tmp_path, admission_review(fixed))]) == 0
    assert json.loads(capsys.readouterr().out)["response"]["allowed"] is True


def test_mutate_from_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    body = json.dumps(admission_review(legacy_helmrelease())).encode()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(body)))
    assert main(["review", "--mutate", "--mode", "fix", "-"]) == 0
    response = json.loads(capsys.readouterr().out)["response"]
    patch = json.loads(base64.b64decode(response["patch"]))
    assert {op["path"] for op in patch} == {"/spec/serviceAccountName", "/spec/chart/spec/sourceRef/namespace"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{oops", "body is not JSON"),
        (json.dumps({"apiVersion": "v1", "kind": "Pod"}).encode(), "send kind AdmissionReview"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "field request"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    assert main(["review", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err and captured.err.count("\n") == 1


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["review", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
