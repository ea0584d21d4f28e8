"""The helm command line of each release action, from a HelmRelease's spec blocks (Flux's defaults).

Pure functions: nothing here runs helm. Values, chart and post-renderer config are files the caller
wrote; only their paths appear, never their contents.
"""

from __future__ import annotations

from pathlib import Path

from fluxwarden.controllers.helm.api import HelmReleaseSpec


def _seconds(value: float) -> str:
    return f"{max(1, round(value))}s"


def _wait(block: dict[str, object]) -> list[str]:
    if block.get("disableWait"):
        return ["--wait=hookOnly"]
    flags = ["--wait=watcher"]
    if not block.get("disableWaitForJobs"):
        flags.append("--wait-for-jobs")
    return flags


def _common(spec: HelmReleaseSpec, action: str) -> list[str]:
    block = spec.block(action)
    flags = ["--namespace", spec.target_namespace, "--timeout", _seconds(spec.action_timeout(action))]
    if block.get("disableHooks"):
        flags.append("--no-hooks")
    return flags


def server_side(spec: HelmReleaseSpec, action: str, last_apply_method: str | None) -> bool:
    """Whether ``action`` applies server-side, as Flux decides it.

    ``install.serverSideApply`` is a bool (default true); ``upgrade``/``rollback`` take ``enabled``,
    ``disabled`` or ``auto`` (the default: as the last release was applied, helm's ``apply_method``).
    """
    mode = spec.block(action).get("serverSideApply")
    if action == "install":
        return mode is not False
    if mode in ("enabled", "disabled"):
        return bool(mode == "enabled")
    return last_apply_method != "csa"  # auto; helm 4 records "ssa" or "csa"


def _apply_flags(server_side_apply: bool, force: bool) -> list[str]:
    """Server-side apply always forces conflicts (the release owns its fields); ``force`` replaces only
    client-side (helm refuses --force-replace beside --force-conflicts)."""
    if server_side_apply:
        return ["--server-side=true", "--force-conflicts"]
    return ["--server-side=false", *(["--force-replace"] if force else [])]


def _release_flags(spec: HelmReleaseSpec, action: str, chart: Path, values: Path, post_render: list[str]) -> list[str]:
    block = spec.block(action)
    flags = [str(chart), "--values", str(values), *_common(spec, action), *_wait(block), *post_render]
    if not block.get("disableTakeOwnership"):
        flags.append("--take-ownership")  # Flux's default: adopt objects that exist without helm's annotations
    if block.get("disableOpenAPIValidation"):
        flags.append("--disable-openapi-validation")
    if block.get("disableSchemaValidation"):
        flags.append("--skip-schema-validation")
    return flags


def install(spec: HelmReleaseSpec, chart: Path, values: Path, post_render: list[str], replace: bool) -> list[str]:
    block = spec.block("install")
    flags = ["install", spec.release_name, *_release_flags(spec, "install", chart, values, post_render)]
    flags += _apply_flags(server_side(spec, "install", None), False)
    if block.get("createNamespace") and spec.raw.get("targetNamespace"):
        flags.append("--create-namespace")
    if block.get("crds") == "Skip" or block.get("skipCRDs"):
        flags.append("--skip-crds")
    if block.get("replace") or replace:
        flags.append("--replace")
    return flags


def upgrade(
    spec: HelmReleaseSpec, chart: Path, values: Path, post_render: list[str], last_apply_method: str | None
) -> list[str]:
    block = spec.block("upgrade")
    flags = ["upgrade", spec.release_name, *_release_flags(spec, "upgrade", chart, values, post_render)]
    flags += ["--reset-values", "--history-max", str(spec.max_history)]
    flags += _apply_flags(server_side(spec, "upgrade", last_apply_method), bool(block.get("force")))
    if block.get("cleanupOnFail"):
        flags.append("--cleanup-on-fail")
    return flags


def test(spec: HelmReleaseSpec) -> list[str]:
    flags = ["test", spec.release_name, *_common(spec, "test")]
    for rule in spec.block("test").get("filters") or []:
        if isinstance(rule, dict) and rule.get("name"):
            flags += ["--filter", f"{'!' if rule.get('exclude') else ''}name={rule['name']}"]
    return [f for f in flags if f != "--no-hooks"]


def rollback(spec: HelmReleaseSpec, version: int, last_apply_method: str | None) -> list[str]:
    block = spec.block("rollback")
    flags = ["rollback", spec.release_name, str(version), *_common(spec, "rollback"), *_wait(block)]
    flags += ["--history-max", str(spec.max_history)]
    flags += _apply_flags(server_side(spec, "rollback", last_apply_method), bool(block.get("force")))
    if block.get("cleanupOnFail"):
        flags.append("--cleanup-on-fail")
    return flags


def uninstall(spec: HelmReleaseSpec, name: str | None = None, namespace: str | None = None) -> list[str]:
    """Uninstall the release (``name``/``namespace``: one the spec no longer names, after a target change)."""
    block = spec.block("uninstall")
    flags = ["uninstall", name or spec.release_name, *_common(spec, "uninstall")]
    if namespace:
        flags[flags.index("--namespace") + 1] = namespace
    if block.get("keepHistory"):
        flags.append("--keep-history")
    if not block.get("disableWait"):
        flags.append("--wait")
    flags += ["--cascade", str(block.get("deletionPropagation") or "background")]
    return flags
