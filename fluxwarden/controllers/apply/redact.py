"""Secret values out of messages: what ``postBuild.substituteFrom`` read from Secrets never reaches a
status, an event or a log, even when the API server echoes it back in an apply error."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable

MASK = "***"
MIN_LENGTH = 2  # a single character is everywhere in a message; masking it would only garble it


class Redactor:
    """Replaces each secret value, and the forms an error may echo it in (JSON-escaped, base64)."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for value in values:
            if len(value) < MIN_LENGTH:
                continue
            forms.update({value, json.dumps(value)[1:-1], base64.b64encode(value.encode()).decode()})
        self._forms = sorted(forms, key=len, reverse=True)  # longest first: a value inside another

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, MASK)
        return text
