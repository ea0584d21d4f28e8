"""Which Alerts an event goes to, and what each sends: Flux's rules, compiled once per Alert generation (pure).

An Alert's sources name a kind, a name or ``*`` (then ``matchLabels`` on the involved object), and a
namespace (the Alert's by default). Severity ``info`` takes every event, ``error`` only errors.
``exclusionList`` beats ``inclusionList``. As in Flux, a pattern that does not compile matches
nothing (so an inclusion list of only bad patterns takes no event); it and a source in another
namespace that the tenancy rules refuse are reported (``problems``, Warning ``InvalidConfig``).
The metadata sent is combined in Flux's order (RFC 0008), see :meth:`CompiledAlert.notification`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import re2

from fluxwarden.controllers.notification.api import EVENT_GROUP, MODE_ANNOTATION, ON_CHANGE
from fluxwarden.controllers.notification.event import Event
from fluxwarden.controllers.runtime.spec import mapping
from fluxwarden.tenancy import evaluate
from fluxwarden.tenancy.settings import Settings

EVENT_PREFIX = f"{EVENT_GROUP}/"
Pattern = Any  # re2._Regexp (the bindings ship no type information)
_QUIET = re2.Options()
_QUIET.log_errors = False  # a bad pattern is reported on the Alert, not on stderr

LabelsOf = Callable[[Event], dict[str, str] | None]
"""The involved object's labels (None: it cannot be read); only asked for ``*`` sources with ``matchLabels``."""


@dataclass(frozen=True)
class Source:
    kind: str
    name: str
    namespace: str
    match_labels: dict[str, str] | None = None  # None: not given; {} given and empty (Flux still reads the object)

    def selects(self, event: Event) -> bool:
        """Kind, namespace and name agree (the labels, if any, are still to be checked)."""
        obj = event.involved_object
        return obj.kind == self.kind and obj.namespace == self.namespace and self.name in ("*", obj.name)

    def takes(self, event: Event, labels_of: LabelsOf) -> bool:
        if not self.selects(event):
            return False
        if self.match_labels is None:
            return True
        labels = labels_of(event)
        return labels is not None and all(labels.get(k) == v for k, v in self.match_labels.items())


@dataclass(frozen=True)
class CompiledAlert:
    namespace: str
    name: str
    uid: str
    provider: str
    severity: str
    sources: tuple[Source, ...]
    inclusions: tuple[Pattern, ...] = ()
    has_inclusions: bool = False  # an inclusion list was given (even if none of it compiled)
    exclusions: tuple[Pattern, ...] = ()
    event_metadata: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    suspended: bool = False
    on_change: bool = False
    problems: tuple[str, ...] = ()  # one line each: the field, what is wrong, the fix
    obj: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # for events about it

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    def needs_labels(self, event: Event) -> bool:
        """Whether matching ``event`` reads the involved object's labels (a selecting source has matchLabels)."""
        return any(s.match_labels is not None and s.selects(event) for s in self.sources)

    def matches(self, event: Event, labels_of: LabelsOf) -> bool:
        if self.suspended:
            return False
        if self.severity == "error" and event.severity != "error":
            return False
        if not any(source.takes(event, labels_of) for source in self.sources):
            return False
        if self.has_inclusions and not any(p.search(event.message) for p in self.inclusions):
            return False
        return not any(p.search(event.message) for p in self.exclusions)

    def notification(self, event: Event) -> tuple[Event, dict[str, list[str]]]:
        """The event as this Alert sends it, and the metadata keys that more than one source gave.

        Flux's order, lowest first: the event's ``event.toolkit.fluxcd.io/`` keys (the object's
        annotations), the Alert's ``eventMetadata``, its ``summary``, then the emitting controller's
        ``<group>/`` keys, each prefix stripped.
        """
        combined: dict[str, str] = {}
        sources: dict[str, list[str]] = {}

        def put(key: str, value: str, source: str) -> None:
            combined[key] = value
            sources.setdefault(key, []).append(source)

        for key, value in event.metadata.items():
            if key.startswith(EVENT_PREFIX):
                put(key.removeprefix(EVENT_PREFIX), value, "involved object annotations")
        for key, value in self.event_metadata.items():
            put(key, value, "Alert object .spec.eventMetadata")
        if self.summary:
            put("summary", self.summary, "Alert object .spec.summary")
        group = f"{event.involved_object.group}/"
        for key, value in event.metadata.items():
            if event.involved_object.group and key.startswith(group):
                put(key.removeprefix(group), value, "involved object controller metadata")
        conflicts = {key: found for key, found in sources.items() if len(found) > 1}
        return replace(event, metadata=combined), conflicts


def compile_alert(obj: dict[str, Any], settings: Settings) -> CompiledAlert:
    meta, spec = mapping(obj.get("metadata")), mapping(obj.get("spec"))
    namespace, problems = str(meta.get("namespace") or ""), []
    refused = {f.field: f for f in evaluate(obj, settings, namespace=namespace) if f.denies}
    sources = []
    for index, raw in enumerate(spec.get("eventSources") or []):
        source = mapping(raw)
        where = f"spec.eventSources[{index}]"
        if (finding := refused.get(where)) is not None:  # the tenancy rules, as the webhook applies them
            problems.append(f"{finding.detail}; events from there are dropped — {finding.reason}")
            continue
        sources.append(
            Source(
                kind=str(source.get("kind") or ""),
                name=str(source.get("name") or ""),
                namespace=str(source.get("namespace") or namespace),
                match_labels=None
                if source.get("matchLabels") is None
                else {str(k): str(v) for k, v in mapping(source.get("matchLabels")).items()},
            )
        )
    inclusions = _patterns(spec, "inclusionList", problems)
    exclusions = _patterns(spec, "exclusionList", problems)
    annotations = mapping(meta.get("annotations"))
    return CompiledAlert(
        namespace=namespace,
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        provider=str(mapping(spec.get("providerRef")).get("name") or ""),
        severity=str(spec.get("eventSeverity") or "info"),
        sources=tuple(sources),
        inclusions=inclusions,
        has_inclusions=bool(spec.get("inclusionList")),
        exclusions=exclusions,
        event_metadata={str(k): str(v) for k, v in mapping(spec.get("eventMetadata")).items()},
        summary=str(spec.get("summary") or ""),
        suspended=bool(spec.get("suspend")),
        on_change=annotations.get(MODE_ANNOTATION) == ON_CHANGE,
        problems=tuple(problems),
        obj=obj,
    )


def _patterns(spec: dict[str, Any], name: str, problems: list[str]) -> tuple[Pattern, ...]:
    """Go's regexp is RE2: the same engine, so a pattern means here what it means in Flux."""
    compiled = []
    for index, pattern in enumerate(spec.get(name) or []):
        try:
            compiled.append(re2.compile(str(pattern), options=_QUIET))
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            noun = "inclusion" if name == "inclusionList" else "exclusion"
            problems.append(
                f"failed to compile {noun} regex: spec.{name}[{index}] {str(pattern)[:80]!r} ({reason}); "
                "it matches nothing until fixed"
            )
    return tuple(compiled)
