"""Build a Kustomization's manifests from an unpacked artifact with the real ``kustomize`` CLI.

Owns everything between "the artifact is on disk" and "a list of objects": resolving ``spec.path``
inside the artifact, generating a kustomization.yaml where the directory has none (as Flux does),
overlaying the spec fields (``targetNamespace``, ``namePrefix``/``nameSuffix``, ``patches``,
``images``, ``components``) onto it, refusing remote bases under multi-tenancy and anything that
reaches outside the artifact, running ``kustomize build`` and parsing its output. Called by the
kustomize reconciler after ``fetch.fetch_artifact``; ``Overlay.from_spec`` reads the spec fields.

The artifact directory is edited in place, like Flux's generator does, so it must be a private copy.

Safety: kustomize runs with its default load restrictor (a kustomization reads files only from its
own directory and below), without Helm, exec or container plugins, with a clean environment and
HOME in a temporary directory, under a timeout. Kustomize lets a base *directory* live anywhere,
so every local entry of ``resources``/``bases``/``components``/``generators``/``transformers``/
``validators`` of every kustomization reached from ``spec.path`` is checked to stay in the artifact.

Unlike Flux (``LoadRestrictionsNone`` inside the artifact), a kustomization here cannot read a
*file* outside its own directory (``../base/deploy.yaml``); referencing the directory works.

Errors: every refusal or failure is a ``BuildError`` with a one-line message naming the file
(relative to the artifact, with its line where known) or the spec field.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fluxwarden.tenancy.kustomization import KUSTOMIZATION_FILES, RemoteBase, is_remote, remote_bases

# Entries kustomize loads as kustomization directories, local or fetched from the network.
ENTRY_FIELDS = ("resources", "bases", "components", "generators", "transformers", "validators")
_MANIFEST_SUFFIXES = (".yaml", ".yml")
_TARGET_FIELDS = ("group", "version", "kind", "name", "namespace", "labelSelector", "annotationSelector")
_IMAGE_FIELDS = ("name", "newName", "newTag", "digest")
_ERROR_LINE = re.compile(r"^Error: ", re.MULTILINE)  # at a line start: not the end of "MalformedYAMLError: "
_MAX_MESSAGE = 1024  # a kustomize error quoting a huge patch must not flood the condition
_GENERATED_HEADER = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}


class BuildError(Exception):
    """The manifests could not be built; the one-line message names the file or spec field."""


class ManifestLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading plain scalars the way kustomize (YAML 1.2) writes them.

    kustomize quotes strings that YAML 1.1 would read as booleans or numbers, but leaves ``2024-01-01``,
    ``1:20``, ``=`` and ``<<`` plain: strings in YAML 1.2, while PyYAML's YAML 1.1 makes them a date,
    the sexagesimal 80, or fails on them. Here they stay strings; everything else is PyYAML's.
    """


_YAML11_ONLY = {f"tag:yaml.org,2002:{tag}" for tag in ("timestamp", "value", "merge", "int", "float")}
ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML11_ONLY]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# PyYAML's int and float patterns without their sexagesimal (base 60) forms.
ManifestLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
ManifestLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


class _CManifestLoader(getattr(yaml, "CSafeLoader", ManifestLoader)):  # type: ignore[misc]
    """ManifestLoader's resolvers and constructors on libyaml's parser (a tenth of the CPU)."""


_CManifestLoader.yaml_implicit_resolvers = ManifestLoader.yaml_implicit_resolvers


def _load_all(data: str | bytes) -> list[Any]:
    """Every document of ``data``: read by libyaml, and again by the pure-Python loader when libyaml refuses
    it, so that an accepted stream reads the same and a refused one fails with PyYAML's own message."""
    with contextlib.suppress(yaml.YAMLError):  # not lost: the pure-Python loader below raises it again
        return list(yaml.load_all(data, Loader=_CManifestLoader))
    return list(yaml.load_all(data, Loader=ManifestLoader))


class Listings:
    """The ``resources`` Flux's generator lists for a directory, by artifact digest and directory.

    The digest (checked on download) fixes every file the listing reads, and nothing writes to the
    tree before the listing, so a hit is the listing a fresh walk would make. Failures are never kept.
    """

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[tuple[str, str], list[str]] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, key: tuple[str, str]) -> list[str] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return list(found) if found is not None else None

    def put(self, key: tuple[str, str], resources: list[str]) -> None:
        with self._lock:
            self._items[key] = list(resources)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (patches) as literal blocks, so a rewritten kustomization.yaml stays readable."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _represent_str)


@dataclass(frozen=True)
class Overlay:
    """The Kustomization spec fields Flux writes into the kustomization file before building."""

    target_namespace: str | None = None
    name_prefix: str | None = None
    name_suffix: str | None = None
    patches: tuple[dict[str, Any], ...] = ()  # {patch: str, target?: {kind, name, labelSelector...}}
    images: tuple[dict[str, Any], ...] = ()  # {name, newName?, newTag?, digest?}
    components: tuple[str, ...] = ()

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Overlay:
        """Read (and check the shape of) the overlay fields of a Kustomization's ``spec``."""
        return cls(
            target_namespace=_optional_str(spec, "targetNamespace"),
            name_prefix=_optional_str(spec, "namePrefix"),
            name_suffix=_optional_str(spec, "nameSuffix"),
            patches=tuple(_patch(i, item) for i, item in enumerate(_spec_list(spec, "patches"))),
            images=tuple(_image(i, item) for i, item in enumerate(_spec_list(spec, "images"))),
            components=tuple(_component(i, item) for i, item in enumerate(_spec_list(spec, "components"))),
        )


def _optional_str(spec: dict[str, Any], field: str) -> str | None:
    value = spec.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BuildError(f"spec.{field} must be a string")
    return value


def _spec_list(spec: dict[str, Any], field: str) -> list[Any]:
    value = spec.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BuildError(f"spec.{field} must be a list")
    return value


def _fields(where: str, item: Any, allowed: tuple[str, ...]) -> dict[str, str]:
    """The non-empty string fields of a mapping, refusing unknown fields and non-string values."""
    if not isinstance(item, dict):
        raise BuildError(f"{where} must be a mapping")
    unknown = sorted(str(key) for key in item if key not in allowed)
    if unknown:
        raise BuildError(f"{where} has unknown field '{unknown[0]}' (allowed: {', '.join(allowed)})")
    for key, value in item.items():
        if value is not None and not isinstance(value, str):
            raise BuildError(f"{where}.{key} must be a string")
    return {key: value for key, value in item.items() if value}


def _patch(index: int, item: Any) -> dict[str, Any]:
    where = f"spec.patches[{index}]"
    if not isinstance(item, dict):
        raise BuildError(f"{where} must be a mapping with 'patch' and 'target'")
    fields = _fields(where, {k: v for k, v in item.items() if k != "target"}, ("patch",))
    if "patch" not in fields:
        raise BuildError(f"{where}.patch must be a non-empty string (a strategic merge or JSON6902 patch)")
    patch: dict[str, Any] = {"patch": fields["patch"]}
    target = _fields(f"{where}.target", item.get("target") or {}, _TARGET_FIELDS)
    if target:  # without a target, kustomize matches a strategic merge patch by its own kind and name
        patch["target"] = target
    return patch


def _image(index: int, item: Any) -> dict[str, Any]:
    image = _fields(f"spec.images[{index}]", item, _IMAGE_FIELDS)
    if "name" not in image:
        raise BuildError(f"spec.images[{index}].name must be a non-empty string")
    return dict(image)


def _component(index: int, item: Any) -> str:
    if not isinstance(item, str) or not item:
        raise BuildError(f"spec.components[{index}] must be a non-empty path")
    return item


def build(
    root: Path,
    path: str,
    overlay: Overlay,
    *,
    block_remote_bases: bool,
    timeout: float = 120,
    listings: tuple[Listings, str] | None = None,
) -> list[dict[str, Any]]:
    """``kustomize build`` of ``path`` (``spec.path``) inside the unpacked artifact ``root``.

    Generates a kustomization.yaml if the directory has none, overlays ``overlay`` onto it, refuses
    remote bases when ``block_remote_bases``, and returns the built objects in kustomize's order.
    ``listings``: the generated listings and the digest of the artifact unpacked at ``root``.
    """
    root = Path(root).resolve()
    directory = resolve_path(root, path)
    components = _component_dirs(root, directory, overlay.components, block_remote_bases)
    kfile = kustomization_file(root, directory) or generate_kustomization(root, directory, listings)
    # Checked before the overlay rewrites the file, so reported lines are the author's.
    check_tree(root, [directory, *components], block_remote_bases)
    apply_overlay(root, kfile, overlay)
    return parse_manifests(_run_kustomize(root, directory, timeout))


def resolve_path(root: Path, path: str) -> Path:
    """The directory ``spec.path`` names inside ``root``; like Flux, a leading ``/`` means the root."""
    cleaned = posixpath.normpath(path.strip().lstrip("/") or ".")
    directory = (root / cleaned).resolve()
    if cleaned == ".." or cleaned.startswith("../") or not _inside(root, directory):
        raise BuildError(f"spec.path '{path}' points outside the artifact; use a path relative to its root")
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "was not found"
        raise BuildError(f"spec.path '{path}' {what} in the artifact")
    return directory


def kustomization_file(root: Path, directory: Path) -> Path | None:
    """The kustomization file of ``directory``, or None; more than one is refused, as kustomize does."""
    found = [directory / name for name in KUSTOMIZATION_FILES if (directory / name).is_file()]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise BuildError(f"{_rel(root, directory)}: found several kustomization files ({names}); keep one")
    return found[0] if found else None


def generate_kustomization(root: Path, directory: Path, listings: tuple[Listings, str] | None = None) -> Path:
    """Write the kustomization.yaml Flux generates for a directory of plain manifests, and return it.

    Lists, recursively and in name order, every .yaml/.yml file holding at least one Kubernetes
    object (a mapping with ``apiVersion`` and ``kind``; other YAML such as CI configs is skipped),
    and every subdirectory with its own kustomization file instead of the files below it.
    """
    cache, digest = listings if listings is not None else (None, "")
    key = (digest, directory.relative_to(root).as_posix())
    resources = cache.get(key) if cache is not None and digest else None
    if resources is None:
        resources = list(_manifest_entries(root, directory, directory))
        if cache is not None and digest:
            cache.put(key, resources)
    kfile = directory / KUSTOMIZATION_FILES[0]
    kfile.write_text(_dump({**_GENERATED_HEADER, "resources": resources}), encoding="utf-8")
    return kfile


def _manifest_entries(root: Path, base: Path, current: Path) -> Iterator[str]:
    for entry in sorted(os.scandir(current), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.is_symlink():  # artifacts hold none; never follow one out of the tree
            continue
        if entry.is_dir():
            if kustomization_file(root, path) is not None:
                yield path.relative_to(base).as_posix()
            else:
                yield from _manifest_entries(root, base, path)
        elif entry.is_file() and path.suffix in _MANIFEST_SUFFIXES and _holds_objects(root, path):
            yield path.relative_to(base).as_posix()


def _holds_objects(root: Path, path: Path) -> bool:
    try:
        # Bytes, so PyYAML honours a UTF-16 byte order mark as kustomize does.
        documents = list(yaml.load_all(path.read_bytes(), Loader=ManifestLoader))
    except yaml.YAMLError as exc:
        raise _yaml_error(root, path, exc, "; fix it or exclude it from the source") from None
    return any(
        isinstance(doc, dict) and isinstance(doc.get("apiVersion"), str) and isinstance(doc.get("kind"), str)
        for doc in documents
    )


def _component_dirs(root: Path, directory: Path, components: tuple[str, ...], block_remote: bool) -> list[Path]:
    """The local directories of ``spec.components``; remote ones refused when blocking, escapes always."""
    found = []
    for index, component in enumerate(components):
        if is_remote(component):
            if block_remote:
                raise BuildError(f"spec.components[{index}]: {RemoteBase('components', component, 0).explanation}")
            continue
        target = _local_target(directory, component)
        if not _inside(root, target):
            raise BuildError(f"spec.components[{index}] '{component}' points outside the artifact")
        found.append(target)
    return found


def check_tree(root: Path, starts: list[Path], block_remote: bool) -> None:
    """Walk the kustomizations reachable from ``starts``: refuse remote entries (when blocking) and
    local entries leaving ``root``, each reported with its file and line."""
    seen: set[Path] = set()
    for start in starts:
        _check_kustomization(root, start, block_remote, seen)


def _check_kustomization(root: Path, directory: Path, block_remote: bool, seen: set[Path]) -> None:
    if directory in seen:
        return
    seen.add(directory)
    kfile = kustomization_file(root, directory)
    if kfile is None:
        return  # not a kustomization: kustomize reports it if something refers to it
    text = _read_text(root, kfile)
    where = _rel(root, kfile)
    if block_remote:
        try:
            found = remote_bases(text)
        except yaml.YAMLError as exc:
            raise _yaml_error(root, kfile, exc) from None
        if found:
            raise BuildError(f"{where}:{found[0].line}: {found[0].explanation}")
    for field, entry, line in _entries(root, kfile, text):
        if is_remote(entry):
            # remote_bases covers resources/bases/components; kustomize fetches these others as well.
            if block_remote:
                raise BuildError(f"{where}:{line}: {RemoteBase(field, entry, line).explanation}")
            continue
        target = _local_target(directory, entry)
        if not _inside(root, target):
            raise BuildError(f"{where}:{line}: {field} entry '{entry}' points outside the artifact")
        if target.is_dir():
            _check_kustomization(root, target, block_remote, seen)


def _entries(root: Path, kfile: Path, text: str) -> Iterator[tuple[str, str, int]]:
    """``(field, entry, line)`` of every scalar listed under one of ``ENTRY_FIELDS``."""
    try:
        node = yaml.compose(text, Loader=ManifestLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(root, kfile, exc) from None
    if node is None:
        return
    if not isinstance(node, yaml.MappingNode):
        raise BuildError(f"{_rel(root, kfile)}: not a kustomization (expected a YAML mapping)")
    for key, value in node.value:
        if key.value in ENTRY_FIELDS and isinstance(value, yaml.SequenceNode):
            for item in value.value:
                if isinstance(item, yaml.ScalarNode):
                    yield key.value, str(item.value), item.start_mark.line + 1


def apply_overlay(root: Path, kfile: Path, overlay: Overlay) -> None:
    """Write the overlay's fields into the kustomization file, as Flux's generator does."""
    if overlay == Overlay():
        return  # nothing to add: the author's file stays byte for byte
    data = _load_kustomization(root, kfile)
    if overlay.target_namespace:
        data["namespace"] = overlay.target_namespace
    if overlay.name_prefix:
        data["namePrefix"] = overlay.name_prefix
    if overlay.name_suffix:
        data["nameSuffix"] = overlay.name_suffix
    if overlay.patches:
        data["patches"] = [*_existing_list(root, kfile, data, "patches"), *overlay.patches]
    if overlay.images:
        images = list(_existing_list(root, kfile, data, "images"))
        for image in overlay.images:
            # Flux replaces an entry for the same image name and appends the others.
            same = [i for i, old in enumerate(images) if isinstance(old, dict) and old.get("name") == image["name"]]
            if same:
                images[same[0]] = dict(image)
            else:
                images.append(dict(image))
        data["images"] = images
    if overlay.components:
        data["components"] = [*_existing_list(root, kfile, data, "components"), *overlay.components]
    kfile.write_text(_dump(data), encoding="utf-8")


def _load_kustomization(root: Path, kfile: Path) -> dict[str, Any]:
    try:
        data = yaml.load(_read_text(root, kfile), Loader=ManifestLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(root, kfile, exc) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BuildError(f"{_rel(root, kfile)}: not a kustomization (expected a YAML mapping)")
    return data


def _existing_list(root: Path, kfile: Path, data: dict[str, Any], field: str) -> list[Any]:
    value = data.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BuildError(f"{_rel(root, kfile)}: {field} must be a list")
    return value


def _run_kustomize(root: Path, directory: Path, timeout: float) -> str:
    binary = shutil.which("kustomize")
    if binary is None:
        raise BuildError("the kustomize CLI was not found on PATH")
    with tempfile.TemporaryDirectory(prefix="kustomize-home-") as home:
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": home,
            "XDG_CONFIG_HOME": home,
            "XDG_CACHE_HOME": home,
            "GIT_TERMINAL_PROMPT": "0",  # remote bases (when allowed) must never wait for a password
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        # No --load-restrictor, --enable-helm, --enable-alpha-plugins, --enable-exec or --network:
        # each stays at its safe default (root-only loading, no Helm, no plugins, no network functions).
        try:
            process = subprocess.Popen(
                [binary, "build", str(directory)],
                cwd=home,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, so a timeout also ends git children
            )
        except OSError as exc:
            raise BuildError(f"cannot run kustomize: {exc.strerror or exc}") from None
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise BuildError(f"kustomize build timed out after {timeout:g}s") from None
        except BaseException:
            _kill_group(process)
            raise
    if process.returncode != 0:
        raise BuildError(_kustomize_error(root, stderr))
    return stdout.decode("utf-8", errors="replace")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def _kustomize_error(root: Path, stderr: bytes) -> str:
    """kustomize's error on one line: from its last ``Error: `` (which may span lines, e.g. quoting a
    patch) to the end, without the prefix and with artifact paths made relative."""
    text = stderr.decode("utf-8", errors="replace")
    starts = [match.end() for match in _ERROR_LINE.finditer(text)]
    lines = [line for line in text.splitlines() if line.strip()]
    # Without an error line, the last line is all kustomize said.
    error = text[starts[-1] :] if starts else (lines[-1] if lines else "")
    message = " ".join(error.split()) or "kustomize build failed without a message"
    message = message.replace(f"{root}{os.sep}", "").replace(str(root), ".")
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def parse_manifests(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML stream (kustomize's output); empty documents are dropped."""
    try:
        documents = _load_all(text)
    except yaml.YAMLError as exc:
        line, problem = _yaml_problem(exc)
        raise BuildError(f"kustomize build output is not valid YAML at line {line}: {problem}") from None
    objects = []
    for document in documents:
        if document is None:
            continue
        if not isinstance(document, dict):
            raise BuildError("kustomize build output holds a document that is not an object")
        objects.append(document)
    return objects


def _read_text(root: Path, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BuildError(f"{_rel(root, path)}: not UTF-8 text") from None
    except OSError as exc:
        raise BuildError(f"{_rel(root, path)}: cannot read: {exc.strerror or exc}") from None


def _yaml_problem(exc: yaml.YAMLError) -> tuple[int, str]:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or type(exc).__name__
    return line, " ".join(str(problem).split())


def _yaml_error(root: Path, path: Path, exc: yaml.YAMLError, hint: str = "") -> BuildError:
    line, problem = _yaml_problem(exc)
    return BuildError(f"{_rel(root, path)}:{line}: invalid YAML: {problem}{hint}")


def _local_target(directory: Path, entry: str) -> Path:
    # Lexical first (kustomize joins and cleans paths), then resolved, so neither '..' nor a link escapes.
    return Path(os.path.normpath(directory / entry)).resolve()


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if _inside(root, path) else str(path)


def _dump(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
