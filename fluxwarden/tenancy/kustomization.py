"""Remote bases in a kustomization.yaml: Flux's ``--no-remote-bases``, pure.

Takes the file's text (so findings carry line numbers) and returns every ``resources``, ``bases``
or ``components`` entry that kustomize would fetch over the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

REMOTE_FIELDS = ("resources", "bases", "components", "generators", "transformers", "validators")
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_GIT_PREFIXES = ("git@", "git::", "gh:", "github.com/", "gitlab.com/", "bitbucket.org/")
# `host.tld/owner/repo...`: a first segment with a dot and no path punctuation is a domain.
_HOST_PATH = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+(:\d+)?/[^/]+")


@dataclass(frozen=True)
class RemoteBase:
    """One remote entry: its list, the value, and the 1-based line it stands on."""

    field: str
    entry: str
    line: int

    @property
    def explanation(self) -> str:
        return (
            f"{self.field} entry '{self.entry}' is fetched from the network; vendor it into "
            "the repository and reference it by a relative path — remote bases are refused under multi-tenancy"
        )


def is_remote(entry: str) -> bool:
    """Whether kustomize would fetch ``entry`` rather than read it from the repository."""
    if entry.startswith((".", "/")):
        return False
    return bool(_SCHEME.match(entry)) or entry.startswith(_GIT_PREFIXES) or bool(_HOST_PATH.match(entry))


def remote_bases(text: str) -> list[RemoteBase]:
    """Remote entries of a kustomization.yaml; raises ``yaml.YAMLError`` when the text is not YAML."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        return []
    found = []
    for key, value in root.value:
        if key.value not in REMOTE_FIELDS or not isinstance(value, yaml.SequenceNode):
            continue
        for item in value.value:
            if isinstance(item, yaml.ScalarNode) and is_remote(str(item.value)):
                found.append(RemoteBase(key.value, str(item.value), item.start_mark.line + 1))
    return found
