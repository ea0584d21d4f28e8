"""Events for the provider tests, written out as Flux's controllers post them."""

from __future__ import annotations

from dataclasses import replace

from fluxwarden.controllers.notification.event import Event, parse
from fluxwarden.controllers.notification.matching import compile_alert
from fluxwarden.tenancy.settings import Settings

SHA = "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1"
PROVIDER_UID = "0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a"

# The example of docs/spec/v1beta3/providers.md ("Generic webhook"), with info severity.
KUSTOMIZATION_EVENT = (
    b'{"involvedObject":{"apiVersion":"kustomize.toolkit.fluxcd.io/v1","kind":"Kustomization",'
    b'"name":"webapp","namespace":"apps","uid":"7d0cdc51-ddcf-4743-b223-83ca5c699632"},'
    b'"metadata":{"kustomize.toolkit.fluxcd.io/revision":"main@sha1:' + SHA.encode() + b'"},'
    b'"severity":"info","reason":"ReconciliationSucceeded",'
    b'"message":"Applied revision: main@sha1:' + SHA.encode() + b'",'
    b'"reportingController":"kustomize-controller","reportingInstance":"kustomize-controller-7c7b47f5f-8bhrp",'
    b'"timestamp":"2022-10-28T07:26:19Z"}'
)


def kustomization_event(**changes: object) -> Event:
    return replace(parse(KUSTOMIZATION_EVENT), **changes)  # type: ignore[arg-type]


def as_sent(event: Event) -> Event:
    """The event as the event server hands it to a provider: metadata combined for an Alert whose
    ``eventMetadata`` is the event's unprefixed keys (the emitter's own keys carry a group prefix)."""
    own = {k: v for k, v in event.metadata.items() if "/" not in k}
    alert = {"metadata": {"name": "a", "namespace": event.involved_object.namespace}, "spec": {"eventMetadata": own}}
    return compile_alert(alert, Settings()).notification(event)[0]
