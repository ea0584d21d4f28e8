"""The errors of artifact consumption; the tree is drawn in the package docstring."""

from __future__ import annotations


class ArtifactError(Exception):
    """An archive could not be unpacked safely; the message names the member or path."""


class DownloadError(Exception):
    """A download failed; ``message`` is one line without credentials.

    ``authentication``: the server refused the credentials (401/403). ``untrusted``: the server's TLS
    certificate did not verify against the trusted CAs.
    """

    def __init__(self, message: str, *, authentication: bool = False, untrusted: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.authentication = authentication
        self.untrusted = untrusted


class FetchError(Exception):
    """The artifact could not be downloaded, did not match its digest, or could not be unpacked."""
