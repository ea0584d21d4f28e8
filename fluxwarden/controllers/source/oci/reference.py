"""``oci://<host>[:port]/<repository>`` URLs, tags and digests, checked as the distribution spec names them."""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "oci://"
# The distribution spec's grammar (docs/spec/api.md): path components, tags and digests.
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")  # fmt: skip
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Repository:
    """A repository in a registry: ``host`` (with its port) and ``name`` (``org/app``)."""

    host: str
    name: str

    def __str__(self) -> str:
        return f"{self.host}/{self.name}"


def parse_repository(url: str, *, allow_tag: bool = False) -> tuple[Repository, str | None]:
    """``oci://host/name[:tag]`` as its repository and tag; ``ValueError`` with a one-line reason.

    Without ``allow_tag`` a tag is refused, as Flux refuses one in ``spec.url``.
    """
    if not url.startswith(PREFIX):
        raise ValueError("URL must be in format 'oci://<domain>/<org>/<repo>'")
    rest = url[len(PREFIX) :]
    host, _, path = rest.partition("/")
    if "@" in host:
        raise ValueError("URL must not contain credentials")
    if not host or not _HOST.match(host):
        raise ValueError(f"registry host '{host[:80]}' is not a valid host[:port]")
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        if not allow_tag:
            raise ValueError(f"URL must not contain a tag; remove ':{last.split(':', 1)[1]}'")
        path, _, tag = path.rpartition(":")
        if not TAG.match(tag):
            raise ValueError(f"tag '{tag[:80]}' is not a valid OCI tag")
    if not path or not _REPOSITORY.match(path):
        raise ValueError(f"repository '{path[:120]}' is not a valid OCI repository name (lower case, '/'-separated)")
    return Repository(host.lower(), path), tag
