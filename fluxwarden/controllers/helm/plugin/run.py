"""The post-renderer plugin's Python side: helm's rendered stream on stdin, kustomize's output on stdout.

``post-render.sh`` runs this for the strategies other than ``combined`` and whenever its own single
``kustomize build`` failed. Each configured layer (``postrender.layers()``) is a kustomization over the
previous one, so one build runs them all in order; if it fails, the layers run one by one to name the
failing spec field. helm discards a plugin's stderr, so the one-line error also goes to ``DIR/error``,
where the controller reads it (``PostRender.failure()``). Secret values of the
rendered manifests are blanked out of that message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

INPUT = "helm-output.yaml"
CONFIG = "config.json"  # in the directory prepare() writes and passes as the plugin's argument
ERROR = "error"  # the one-line error for PostRender.failure()
CHAIN = "chain"  # the layers as kustomizations, input/ <- layer-0 <- ... <- top, for post-render.sh
HOOK_ANNOTATION = "helm.sh/hook"
MAX_MESSAGE = 400
KUSTOMIZATION = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
_SEPARATOR = re.compile(rb"^---[ \t]*(?:#.*)?$", re.MULTILINE)
_ERROR_PREFIX = re.compile(r"(?:^|\n)Error: ")


class Failure(Exception):
    """A post-rendering error, already on one line and naming the spec field."""


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m fluxwarden.controllers.helm.plugin DIR < manifests", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    try:
        config = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"Error: fluxwarden-kustomize: cannot read its config in {directory}: {exc}", file=sys.stderr)
        return 1
    error_file = directory / ERROR
    error_file.unlink(missing_ok=True)
    manifests = sys.stdin.buffer.read()
    # post-render.sh's copy of them, when its fast path failed and handed over: no rendered Secret stays
    (directory / CHAIN / "input" / INPUT).unlink(missing_ok=True)
    try:
        output = post_render(manifests, config, directory)
    except Failure as failure:
        message = redact(str(failure), manifests)
        _write_private(error_file, message + "\n")
        print(f"Error: {message}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(output)
    return 0


def post_render(manifests: bytes, config: dict[str, Any], scratch: Path) -> bytes:
    """Run the layers over ``manifests`` per ``config["strategy"]``, as helm's Go post-render strategies do:
    ``combined`` sends hooks and templates together; ``nohooks`` leaves hooks untouched; ``separate``
    post-renders them in a pass of their own."""
    layers: list[dict[str, Any]] = config["layers"]
    kustomize: str = config["kustomize"]
    strategy = config.get("strategy", "combined")
    if strategy == "combined":
        output = _chain(manifests, layers, kustomize, scratch, "")
    else:
        hooks, templates = split_hooks(manifests)
        parts = []
        if hooks.strip():
            parts.append(hooks if strategy == "nohooks" else _chain(hooks, layers, kustomize, scratch, " (hooks)"))
        if templates.strip():
            parts.append(_chain(templates, layers, kustomize, scratch, ""))
        output = b"---\n".join(part if part.endswith(b"\n") else part + b"\n" for part in parts)
    # helm fails on an empty answer ("produced empty output"), even for a chart that renders nothing.
    return output if output.strip() else b"---\n"


def split_hooks(stream: bytes) -> tuple[bytes, bytes]:
    """(hook documents, other documents) of a stream, each kept byte for byte. A hook is what helm's
    manifest sorter calls one: a document with the ``helm.sh/hook`` annotation."""
    hooks: list[bytes] = []
    templates: list[bytes] = []
    for document in _SEPARATOR.split(stream):
        if not document.strip():
            continue
        (hooks if _is_hook(document) else templates).append(document.strip(b"\n") + b"\n")
    return b"---\n".join(hooks), b"---\n".join(templates)


def _load(document: bytes) -> Any:
    """One YAML document, or None if it does not parse. PyYAML (10 ms to import) only when needed."""
    import yaml

    try:
        return yaml.load(document, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # safe, C if built
    except yaml.YAMLError:
        return None


def _is_hook(document: bytes) -> bool:
    data = _load(document)  # None if broken: kustomize reports it, naming the field
    metadata = data.get("metadata") if isinstance(data, dict) else None
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    return isinstance(annotations, dict) and bool(annotations.get(HOOK_ANNOTATION))


def write_chain(root: Path, layers: list[dict[str, Any]]) -> Path:
    """The layers as kustomization dirs under ``root``: ``input/`` (which holds INPUT), then one dir per
    layer over the previous one, the last named ``top``. Returns the input file's path (not written)."""
    previous = "input"
    _write_kustomization(root / previous, {"kustomization": {}}, INPUT)
    for index, layer in enumerate(layers):
        name = "top" if index == len(layers) - 1 else f"layer-{index}"
        _write_kustomization(root / name, layer, f"../{previous}")
        previous = name
    return root / "input" / INPUT


def _chain(stream: bytes, layers: list[dict[str, Any]], kustomize: str, scratch: Path, group: str) -> bytes:
    if not stream.strip():
        return stream
    with tempfile.TemporaryDirectory(prefix="run-", dir=scratch) as temporary:
        root = Path(temporary)
        input_file = write_chain(root, layers)
        input_file.write_bytes(stream)
        ok, output, error = _build(kustomize, root / "top", root)
        if not ok and "unknown anchor" in error:
            stream = as_list(stream)
            input_file.write_bytes(stream)
            ok, output, error = _build(kustomize, root / "top", root)
        if ok:
            return output
        # Which layer? Each one alone, over the previous one's output.
        current = stream
        for index, layer in enumerate(layers):
            directory = root / f"single-{index}"
            directory.mkdir()
            (directory / INPUT).write_bytes(current)
            _write_kustomization(directory, layer, INPUT)
            ok, current, single_error = _build(kustomize, directory, root)
            if not ok:
                raise Failure(f"{layer['field']}{group}: {single_error}")
        raise Failure(f"post-rendering{group}: {error}")


def as_list(stream: bytes) -> bytes:
    """The documents of ``stream`` as the items of one ``kind: List`` document, so that YAML aliases
    between them resolve again (kustomize then inlines them). helm 4 unwraps a chart's List into one
    document per item but keeps its anchors, which kustomize rejects as unknown; Flux wraps them likewise."""
    lines = [b"apiVersion: v1", b"kind: List", b"items:"]
    for document in _SEPARATOR.split(stream):
        if document.strip():
            body = document.strip(b"\n").split(b"\n")
            lines += [b"- " + body[0], *(b"  " + line if line.strip() else line for line in body[1:])]
    return b"\n".join(lines) + b"\n"


def _write_kustomization(directory: Path, layer: dict[str, Any], base: str) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    kustomization = {**KUSTOMIZATION, **layer["kustomization"], "resources": [base]}
    (directory / "kustomization.yaml").write_text(json.dumps(kustomization), encoding="utf-8")


def _build(kustomize: str, directory: Path, root: Path) -> tuple[bool, bytes, str]:
    """``kustomize build`` with its safe defaults (no plugins, exec functions, Helm or network) and a
    scratch HOME: (ok, stdout, one-line error)."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(root), "XDG_CONFIG_HOME": str(root)}
    try:
        result = subprocess.run(
            [kustomize, "build", str(directory)], cwd=root, env=env, stdin=subprocess.DEVNULL, capture_output=True
        )
    except OSError as exc:
        return False, b"", f"cannot run kustomize ({kustomize}): {exc.strerror or exc}"
    if result.returncode == 0:
        return True, result.stdout, ""
    return False, b"", _kustomize_error(result.stderr, root)


def _kustomize_error(stderr: bytes, root: Path) -> str:
    """kustomize's last ``Error: `` to the end, on one line, without scratch paths, with a hint for the
    usual mistake."""
    text = stderr.decode("utf-8", errors="replace")
    starts = [match.end() for match in _ERROR_PREFIX.finditer(text)]
    message = " ".join((text[starts[-1] :] if starts else text).split()) or "kustomize build failed"
    message = re.sub(rf"{re.escape(str(root))}/(?:input|top|layer-\d+|single-\d+)(?:/{INPUT})?", INPUT, message)
    message = message.replace(str(root), ".")
    return _hint(_innermost(message))


def _innermost(message: str) -> str:
    """The cause inside kustomize's wrappers for an error met while loading a resource (the file of
    manifests, or a base), which also says that it is not a directory either."""
    while True:
        if (at := message.rfind("recursed accumulation of path '")) >= 0:
            inner = re.sub(r"^recursed accumulation of path '[^']*': ", "", message[at:])
        elif found := re.search(r"accumulating resources from '[^']*': (.*?)': must build at directory", message):
            inner = found.group(1)
        else:
            return message
        if inner == message or not inner.strip():
            return message
        message = inner


def _hint(message: str) -> str:
    if "no matches for Id" in message or "failed to find unique target" in message:
        message += " (a patch without a target must name an object the chart renders)"
    elif "already registered id" in message:
        message += " (the chart renders it twice, e.g. as a hook and a template: try spec.postRenderStrategy separate)"
    return message


def redact(message: str, manifests: bytes) -> str:
    """``message`` on one line, at most MAX_MESSAGE characters, with every Secret value of ``manifests``
    (base64 ``data`` and its decoded text, ``stringData``) replaced by ``<redacted>``."""
    for value in sorted(_secret_values(manifests), key=len, reverse=True):
        message = message.replace(value, "<redacted>")
        message = message.replace(" ".join(value.split()), "<redacted>")
    message = " ".join(message.split())
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def _secret_values(manifests: bytes) -> set[str]:
    values: set[str] = set()
    for document in _SEPARATOR.split(manifests):
        data = _load(document)
        if not isinstance(data, dict) or data.get("kind") != "Secret":
            continue
        for field in ("data", "stringData"):
            entries = data.get(field)
            for value in entries.values() if isinstance(entries, dict) else ():
                if not isinstance(value, str):
                    continue
                values.add(value)
                if field == "data":
                    with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                        values.add(base64.b64decode(value, validate=True).decode("utf-8"))
    return {value for value in values if len(value.strip()) >= 3}


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
