"""Flux's bucket index digest, which keys may reach the disk, and masking of credentials in messages."""

from __future__ import annotations

import hashlib

import pytest

from fluxwarden.controllers.source.bucket_azure import account_name, with_sas
from fluxwarden.controllers.source.bucket_client import mask
from fluxwarden.controllers.source.bucket_index import local_name, revision


def test_revision_is_sha256_over_sorted_key_space_etag_lines() -> None:
    index = {"foo": "bar", "bar": "baz", "a/b.yaml": '"0x1"'}
    expected = hashlib.sha256(b'a/b.yaml "0x1"\nbar baz\nfoo bar\n').hexdigest()
    assert revision(index) == f"sha256:{expected}"
    assert revision({}) == "sha256:" + hashlib.sha256(b"").hexdigest()


def test_revision_sorts_by_bytes_as_go_does() -> None:
    index = {"é": "1", "z": "2", "Z": "3"}  # Go's sort.Strings: byte order, "Z" < "z" < "é"
    assert revision(index) == "sha256:" + hashlib.sha256("Z 3\nz 2\né 1\n".encode()).hexdigest()


@pytest.mark.parametrize(
    "key", ["../evil", "a/../../evil", "/etc/passwd", "a\\..\\..\\evil", "a//b", "./a", "a/./b", "a\x00b", "a/.."]
)
def test_keys_that_escape_or_alias_are_refused(key: str) -> None:
    assert local_name(key) is None


def test_plain_keys_keep_their_path() -> None:
    assert local_name("apps/deploy.yaml") == "apps/deploy.yaml"
    assert local_name("a\\b.yaml") == "a/b.yaml"  # a backslash is a separator, as on the consumer's side
    assert local_name("..hidden/x") == "..hidden/x"


def test_azure_account_name_from_host_or_path() -> None:
    assert account_name("https://myaccount.blob.core.windows.net") == "myaccount"
    assert account_name("https://127.0.0.1:10000/devstoreaccount1") == "devstoreaccount1"
    assert account_name("https://localhost:10000/acct/") == "acct"
    assert account_name("https://127.0.0.1:10000") is None


def test_sas_merges_into_the_endpoint_query_and_wins() -> None:
    merged = with_sas("https://a.blob.core.windows.net/?sv=old&x=1", "?sv=new&sig=abc")
    assert merged == "https://a.blob.core.windows.net/?sv=new&x=1&sig=abc"


def test_mask_hides_secrets_and_url_signatures() -> None:
    text = mask("GET /c?sv=1&sig=SECRETSIG&se=2030 key=hunter2-key", [b"hunter2-key"])
    assert "SECRETSIG" not in text and "hunter2-key" not in text and "sig=***" in text
