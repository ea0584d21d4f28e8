"""Credentials out of messages: URLs with ``user:password@`` lose it, and everything is one line."""

from __future__ import annotations

import re

_CREDENTIALS_IN_URL = re.compile(r"(://)[^/@\s]+@")


def scrub(text: str) -> str:
    """One line without credentials embedded in URLs."""
    return " ".join(_CREDENTIALS_IN_URL.sub(r"\1", text).split())
