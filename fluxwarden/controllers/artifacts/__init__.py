"""Artifact consumption, shared by every controller that reads what a source produced or names.

The kustomize controller (and later the helm controller) fetch ``status.artifact.url``, check its
digest and unpack it; the source controller itself downloads Helm indexes and charts. All of that
goes through this package, so the safety rules live in one place:

- ``http``: bounded HTTP(S) downloads that stream to a file with the digest computed on the fly,
  TLS 1.2+, and credentials sent only to the origin they belong to;
- ``unpack``: ``safe_extract``, which refuses unsafe archive members and oversize contents;
- ``client``: ``fetch_artifact`` = download + verify digest + unpack;
- ``scrub``: credentials out of every message.

Errors (``errors``)::

    Exception
    ├── ArtifactError      an archive is unsafe, corrupt or over the size limit (unpack)
    ├── DownloadError      HTTP status, timeout, TLS, size limit (http); .authentication, .untrusted
    └── FetchError         fetch_artifact's one error: download, digest or unpack failed (client)

This package imports nothing of the controllers that use it (an import-linter contract checks it).
"""
