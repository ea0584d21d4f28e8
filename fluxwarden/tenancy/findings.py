"""What a rule says about an object: a :class:`Finding`, and the one-line texts made from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fluxwarden.tenancy.paths import dotted, pointer
from fluxwarden.tenancy.values import cut, text

Severity = Literal["deny", "warn"]

MESSAGE_LIMIT = 255  # one line under 256 characters (TENANCY.md, "Verdict messages")
WARNING_LIMIT = 119  # AdmissionReview warnings: each under 120 characters


def one_line(text: str, limit: int) -> str:
    """Collapse whitespace and cut to ``limit`` characters, marking the cut."""
    return cut(" ".join(text.split()), limit)


@dataclass(frozen=True)
class ObjectRef:
    """The object a finding is about, as a reader would name it."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    @classmethod
    def of(cls, obj: dict[str, Any], namespace: str | None = None) -> ObjectRef:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        ns = namespace if namespace is not None else text(meta.get("namespace") or "")
        name = text(meta.get("name") or meta.get("generateName") or "<unnamed>")
        return cls(text(obj.get("kind") or "<no kind>"), ns, name)


@dataclass(frozen=True)
class Finding:
    """One rule's verdict on one field of one object.

    ``field`` is a dotted path with list indexes (``spec.eventSources[1]``), ``pointer`` the same
    place as a JSON Pointer (for patches), ``detail`` says what is wrong, ``fix`` how to mend it and
    ``reason`` why the rule exists.
    """

    rule: str
    severity: Severity
    obj: ObjectRef
    field: str
    pointer: str
    detail: str
    fix: str
    reason: str

    @property
    def denies(self) -> bool:
        return self.severity == "deny"

    @property
    def explanation(self) -> str:
        """Object, field and value, fix, reason: the message without the rule id."""
        return f"{self.obj}: {self.detail}; {self.fix} — {self.reason}"

    @property
    def message(self) -> str:
        """The denial text: rule, object, field and value, fix, reason; one line."""
        return one_line(f"{self.rule}: {self.explanation}", MESSAGE_LIMIT)

    @property
    def warning(self) -> str:
        """The short form for AdmissionReview ``warnings``."""
        return one_line(f"{self.rule}: {self.detail}; {self.fix}", WARNING_LIMIT)


def finding_at(
    rule: str,
    obj: dict[str, Any],
    namespace: str,
    steps: tuple[str | int, ...],
    detail: str,
    fix: str,
    reason: str,
    severity: Severity = "deny",
) -> Finding:
    """One finding about the field at ``steps``: every rule names its field the same two ways."""
    return Finding(rule, severity, ObjectRef.of(obj, namespace), dotted(steps), pointer(steps), detail, fix, reason)
