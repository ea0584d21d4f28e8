"""What a GitRepository spec may ask git for: the URL's transport and the shape of refs and commits.

Called by ``api.GitRepositorySpec.of``. Everything from the spec reaches the ``git`` command line
(after ``--``), so anything git could read as an option, or as a transport that runs commands or
reads the controller's own disk (``ext::``, ``fd::``, ``file://``, plain paths), is refused here
with a ``Stalling`` naming the field; it is never retried until the spec changes.
"""

from __future__ import annotations

import re

from fluxwarden.controllers.runtime.errors import Stalling

ALLOWED = "use an http://, https:// or ssh:// URL"
_SCHEMES = ("http://", "https://", "ssh://")
_SCP = re.compile(r"^[A-Za-z0-9._~+-]+@[A-Za-z0-9.-]+:(?!//)")  # user@host:path, as git and ssh read it
_HELPER = re.compile(r"^([A-Za-z0-9][A-Za-z0-9+.-]*)::")
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def check_url(url: str) -> None:
    """Refuse any Git URL that is not plain http(s) or ssh to a remote host."""
    field = "spec.url"
    if not url:
        raise Stalling("URLInvalid", f"{field} is empty; {ALLOWED}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise Stalling("URLInvalid", f"{field} contains control characters; {ALLOWED}")
    shown = url if len(url) <= 80 else url[:77] + "..."
    if url.startswith("-"):
        raise Stalling("URLInvalid", f"{field} '{shown}' starts with '-' and would be read as a git option; {ALLOWED}")
    if helper := _HELPER.match(url):
        raise Stalling(
            "URLInvalid",
            f"{field} '{shown}' uses the '{helper.group(1)}::' transport, which is refused "
            f"(remote helpers can run commands or read local files); {ALLOWED}",
        )
    if url.lower().startswith("file:"):
        raise Stalling("URLInvalid", f"{field} '{shown}' is a file:// URL, which is refused (local disk); {ALLOWED}")
    if url.lower().startswith(_SCHEMES):
        authority = url.split("://", 1)[1].split("/", 1)[0]
        host = authority.rpartition("@")[2]
        user = authority.rpartition("@")[0]
        if not host or host.startswith("-") or user.startswith("-"):
            raise Stalling(
                "URLInvalid", f"{field} '{shown}' has a host or user starting with '-' or no host; {ALLOWED}"
            )
        return
    if _SCP.match(url) and not url.split("@", 1)[1].startswith("-"):
        return  # scp-like ssh: git@github.com:org/repo
    if url.startswith(("/", ".", "~")) or "://" not in url:
        raise Stalling("URLInvalid", f"{field} '{shown}' is a local path, which is refused; {ALLOWED}")
    raise Stalling("URLInvalid", f"{field} '{shown}' is not an http(s) or ssh Git URL; {ALLOWED}")


def check_commit(commit: str | None) -> str | None:
    """A full commit SHA (40 hex digits, or 64 in a SHA-256 repository), lower-cased."""
    if commit is None:
        return None
    value = commit.strip().lower()
    if not _COMMIT.match(value):
        shown = commit if len(commit) <= 70 else commit[:67] + "..."
        raise Stalling("InvalidSpec", f"spec.ref.commit '{shown}' is not a commit SHA: expected 40 hexadecimal digits")
    return value


def check_ref(field: str, value: str | None) -> str | None:
    """A name git accepts as a ref (the rules of ``git check-ref-format``), never an option."""
    if value is None:
        return None
    why = _ref_problem(value)
    if why:
        shown = value if len(value) <= 70 else value[:67] + "..."
        raise Stalling("InvalidSpec", f"{field} '{shown}' is not a valid Git ref name: {why}")
    return value


def _ref_problem(value: str) -> str | None:
    if value.startswith("-"):
        return "it starts with '-'"
    if _REF_FORBIDDEN.search(value):
        return "it contains a space, a control character or one of ~ ^ : ? * [ \\"
    if ".." in value or "@{" in value or "//" in value or value == "@":
        return "it contains '..', '@{' or '//'"
    if value.startswith("/") or value.endswith(("/", ".", ".lock")):
        return "it starts with '/' or ends with '/', '.' or '.lock'"
    if any(part.startswith(".") for part in value.split("/")):
        return "a component starts with '.'"
    return None
