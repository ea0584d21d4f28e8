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


def _release_flags(spec: HelmReleaseSpec, action: str, chart: Path, values: Path, post_render: list[str]) -> list[str]:
    block = spec.block(action)
    flags = [str(chart), "--values", str(values), *_common(spec, action), *_wait(block), *post_render]
    if not block.get("disableTakeOwnership"):
        flags.append("--take-ownership")  # Flux's default: adopt objects that exist without helm's annotations
    if block.get("disableOpenAPIValidation"):
        flags.append("--disable-openapi-validation")
    if block.get("disableSchemaValidation"):
        flags.append("--skip-schema-validation")
    server_side = block.get("serverSideApply")
    if action == "install":
        flags.append(f"--server-side={'false' if server_side is False else 'true'}")
    else:
        flags.append("--server-side=" + ("auto" if server_side is None else str(bool(server_side)).lower()))
        flags.append("--force-conflicts")  # Flux applies forcing conflicts: the release owns its fields
    return flags


def install(spec: HelmReleaseSpec, chart: Path, values: Path, post_render: list[str], replace: bool) -> list[str]:
    block = spec.block("install")
    flags = ["install", spec.release_name, *_release_flags(spec, "install", chart, values, post_render)]
    if block.get("createNamespace"):
        flags.append("--create-namespace")
    if block.get("crds") == "Skip" or block.get("skipCRDs"):
        flags.append("--skip-crds")
    if block.get("replace") or replace:
        flags.append("--replace")
    return flags


def upgrade(spec: HelmReleaseSpec, chart: Path, values: Path, post_render: list[str]) -> list[str]:
    block = spec.block("upgrade")
    flags = ["upgrade", spec.release_name, *_release_flags(spec, "upgrade", chart, values, post_render)]
    flags += ["--reset-values", "--history-max", str(spec.max_history)]
    if block.get("force"):
        flags.append("--force-replace")
    if block.get("cleanupOnFail"):
        flags.append("--cleanup-on-fail")
    return flags


def test(spec: HelmReleaseSpec) -> list[str]:
    flags = ["test", spec.release_name, *_common(spec, "test")]
    for rule in spec.block("test").get("filters") or []:
        if isinstance(rule, dict) and rule.get("name"):
            flags += ["--filter", f"{'!' if rule.get('exclude') else ''}name={rule['name']}"]
    return [f for f in flags if f != "--no-hooks"]


def rollback(spec: HelmReleaseSpec, version: int) -> list[str]:
    block = spec.block("rollback")
    flags = ["rollback", spec.release_name, str(version), *_common(spec, "rollback"), *_wait(block)]
    flags += ["--history-max", str(spec.max_history)]
    if block.get("force"):
        flags.append("--force-replace")
    if block.get("cleanupOnFail"):
        flags.append("--cleanup-on-fail")
    server_side = block.get("serverSideApply")
    flags.append("--server-side=" + ("auto" if server_side is None else str(bool(server_side)).lower()))
    return flags


def uninstall(spec: HelmReleaseSpec) -> list[str]:
    block = spec.block("uninstall")
    flags = ["uninstall", spec.release_name, *_common(spec, "uninstall")]
    if block.get("keepHistory"):
        flags.append("--keep-history")
    if not block.get("disableWait"):
        flags.append("--wait")
    flags += ["--cascade", str(block.get("deletionPropagation") or "background")]
    return flags
