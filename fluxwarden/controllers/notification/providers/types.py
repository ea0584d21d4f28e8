"""The Provider types fluxwarden sends to, and what each needs."""

from __future__ import annotations

SUPPORTED = frozenset({"generic", "generic-hmac", "slack", "msteams", "discord", "github", "gitlab", "alertmanager"})
COMMIT_STATUS = frozenset({"github", "gitlab"})  # Flux's commit-status types among them
NEEDS_TOKEN = frozenset({"generic-hmac", "github", "gitlab"})
