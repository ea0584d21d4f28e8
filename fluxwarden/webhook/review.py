"""AdmissionReview in, AdmissionReview out: parsing, judging and answering, without I/O.

The Starlette routes and ``fluxwarden review`` both call :func:`parse_review` then :func:`decide`,
so the server and the CLI give the same answer to the same review.
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from fluxwarden.tenancy import Finding, Requester, Settings, cut, evaluate, mutate, text
from fluxwarden.tenancy.findings import one_line
from fluxwarden.webhook.errors import BadReview

REVIEW_API_VERSION = "admission.k8s.io/v1"
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
JUDGED_OPERATIONS = frozenset({"CREATE", "UPDATE"})
SHOWN_LIMIT = 64  # characters of a bad value quoted in an error message


@dataclass(frozen=True)
class AdmissionRequest:
    """The parts of ``AdmissionReview.request`` fluxwarden reads, checked for type."""

    uid: str
    operation: str
    namespace: str
    obj: dict[str, Any] | None
    requester: Requester
    dry_run: bool = False
    old_obj: dict[str, Any] | None = None  # the stored object, on UPDATE (and DELETE)

    @property
    def kind(self) -> str:
        return text(self.obj.get("kind", "")) if self.obj else ""

    @property
    def name(self) -> str:
        if not self.obj or not isinstance(self.obj.get("metadata"), dict):
            return ""
        return text(self.obj["metadata"].get("name") or "")


@dataclass(frozen=True)
class Decision:
    """What fluxwarden answers: allowed or not, why, warnings, and (mutate) a JSON Patch."""

    uid: str
    allowed: bool
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    patch: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def rules(self) -> list[str]:
        return sorted({f.rule for f in self.findings})

    def to_review(self) -> dict[str, Any]:
        """The response AdmissionReview (``admission.k8s.io/v1``)."""
        response: dict[str, Any] = {"uid": self.uid, "allowed": self.allowed}
        if not self.allowed:
            response["status"] = {"code": 403, "reason": "Forbidden", "message": self.message}
        if self.warnings:
            response["warnings"] = self.warnings
        if self.patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(self.patch).encode()).decode("ascii")
        return {"apiVersion": REVIEW_API_VERSION, "kind": "AdmissionReview", "response": response}


def _expect(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind):
        raise BadReview(f"AdmissionReview {where} must be a JSON {kind.__name__.replace('dict', 'object')}")
    return value


def _shown(value: Any) -> str:
    """A value quoted in an error message: one short line whatever the value is."""
    if value is None:
        return "missing"
    return repr(cut(text(value), SHOWN_LIMIT))


def _load(body: bytes) -> Any:
    """``json.loads``, with every way it can fail turned into a one-line :class:`BadReview`."""
    fix = "send an admission.k8s.io/v1 AdmissionReview"
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadReview(f"body is not JSON ({exc.msg} at char {exc.pos}); {fix}") from None
    except UnicodeDecodeError as exc:
        raise BadReview(f"body is not JSON (undecodable text at byte {exc.start}); {fix}") from None
    except RecursionError:
        # The C parser recurses once per level. The API server stores far deeper objects (in
        # preserve-unknown-fields, such as HelmRelease values), but no Flux object comes near this.
        raise BadReview(
            f"body is not usable JSON (nested deeper than about {sys.getrecursionlimit()} levels); "
            "flatten the object: Flux objects nest a few dozen levels"
        ) from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise BadReview(f"body is not usable JSON ({one_line(str(exc), SHOWN_LIMIT)}); {fix}") from None


def parse_review(body: bytes) -> AdmissionRequest:
    """Check a request body and return its request; :class:`BadReview` names what is wrong."""
    review = _expect(_load(body), dict, "body")
    if review.get("apiVersion") != REVIEW_API_VERSION or review.get("kind") != "AdmissionReview":
        raise BadReview(
            f"got apiVersion={_shown(review.get('apiVersion'))} kind={_shown(review.get('kind'))}; "
            f"send kind AdmissionReview, apiVersion {REVIEW_API_VERSION} (admissionReviewVersions: [v1])"
        )
    request = _expect(review.get("request"), dict, "field request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("AdmissionReview field request.uid must be a non-empty string")
    operation = request.get("operation")
    if not isinstance(operation, str) or operation not in OPERATIONS:
        raise BadReview(f"AdmissionReview field request.operation must be one of {', '.join(sorted(OPERATIONS))}")
    obj = request.get("object")
    if operation in JUDGED_OPERATIONS:
        _expect(obj, dict, f"field request.object (operation {operation})")
    old_obj = request.get("oldObject")
    if old_obj is not None:
        _expect(old_obj, dict, "field request.oldObject")
    namespace = request.get("namespace", "")
    _expect(namespace, str, "field request.namespace")
    user = _expect(request.get("userInfo", {}), dict, "field request.userInfo")
    groups = _expect(user.get("groups") or [], list, "field request.userInfo.groups")
    requester = Requester(text(user.get("username", "")), frozenset(text(g) for g in groups))
    return AdmissionRequest(
        uid=uid,
        operation=operation,
        namespace=namespace,
        obj=obj if isinstance(obj, dict) else None,
        requester=requester,
        dry_run=request.get("dryRun") is True,
        old_obj=old_obj,
    )


def _denial_message(denials: list[Finding]) -> str:
    first = denials[0].message
    if len(denials) == 1:
        return first
    others = ", ".join(sorted({f.rule for f in denials[1:]}))
    return f"{first} (+{len(denials) - 1} more: {others})"


def decide(request: AdmissionRequest, settings: Settings, *, mutating: bool = False) -> Decision:
    """Judge (``mutating=False``) or patch (``mutating=True``) one request.

    DELETE and CONNECT are always allowed; kinds the rules do not know come back allowed, untouched.
    """
    if request.operation not in JUDGED_OPERATIONS or request.obj is None:
        return Decision(request.uid, allowed=True)
    if mutating:
        result = mutate(request.obj, settings, namespace=request.namespace, requester=request.requester)
        return Decision(request.uid, allowed=True, warnings=result.warnings, patch=result.patch)
    old = request.old_obj if request.operation == "UPDATE" else None
    findings = evaluate(request.obj, settings, namespace=request.namespace, requester=request.requester, old=old)
    denials = [f for f in findings if f.denies]
    warnings = [f.warning for f in findings if not f.denies]
    if denials:
        return Decision(request.uid, False, _denial_message(denials), warnings, findings=findings)
    return Decision(request.uid, True, warnings=warnings, findings=findings)
