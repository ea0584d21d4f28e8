"""``fluxwarden push artifact oci://host/repo:tag --path DIR``: publish a Flux-content artifact without the flux CLI.

The artifact is what ``flux push artifact`` makes (``controllers.source.oci.push``). Credentials:
``--creds USER`` with the password from ``--password-stdin`` or ``$FLUXWARDEN_REGISTRY_PASSWORD``
(``$FLUXWARDEN_REGISTRY_CREDS=user:password`` also works); else the entry for the registry host in
``$DOCKER_CONFIG/config.json`` (``~/.docker/config.json``). A password is never read from argv, where
every user of the machine can see it. ``--ca-file`` adds a CA; ``--insecure-registry`` speaks HTTP.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

from fluxwarden.controllers.runtime.durations import parse_duration
from fluxwarden.controllers.source.oci.auth import Login, login_for
from fluxwarden.controllers.source.oci.push import DEFAULT_IGNORE, created_now, push_artifact
from fluxwarden.controllers.source.oci.reference import parse_repository
from fluxwarden.controllers.source.oci.registry import Registry, RegistryError, Tls
from fluxwarden.errors import UsageError

PASSWORD_ENV = "FLUXWARDEN_REGISTRY_PASSWORD"
CREDS_ENV = "FLUXWARDEN_REGISTRY_CREDS"
CA_HINT = "pass the CA that signed it with --ca-file"
AUTH_HINT = f"check the credentials (--creds and the password, ${CREDS_ENV} or the docker config)"


def _login(args: argparse.Namespace, host: str) -> Login | None:
    if args.creds:
        if ":" in args.creds:
            raise UsageError(
                f"--creds takes the user name only; give the password on stdin (--password-stdin) or in ${PASSWORD_ENV}"
            )
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        elif os.environ.get(PASSWORD_ENV):
            password = os.environ[PASSWORD_ENV]
        else:
            raise UsageError(f"--creds {args.creds}: give the password with --password-stdin or ${PASSWORD_ENV}")
        return Login(args.creds, password)
    if args.password_stdin:
        raise UsageError("--password-stdin needs --creds USER")
    if os.environ.get(CREDS_ENV):
        user, _, password = os.environ[CREDS_ENV].partition(":")
        return Login(user, password)
    config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    if not config.is_file():
        return None
    try:
        return login_for(config.read_bytes(), host)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{config}: {exc}") from None


def _annotations(values: list[str]) -> dict[str, str]:
    found = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key or "=" in text:
            raise UsageError(f"invalid annotation {value}, must be in the format key=value")
        found[key] = text
    return found


def run(args: argparse.Namespace) -> int:
    try:
        repository, tag = parse_repository(args.url, allow_tag=True)
    except ValueError as exc:
        raise UsageError(f"{args.url}: {exc}") from None
    if not tag:
        raise UsageError(f"{args.url}: the URL needs a tag (oci://host/repo:tag)")
    path = Path(args.path)
    if not path.exists():
        raise UsageError(f"invalid path '{path}', must point to an existing directory or file")
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}") from None
    ca = Path(args.ca_file).read_bytes() if args.ca_file else None
    ignore = (
        [p.strip() for item in args.ignore_paths for p in item.split(",") if p.strip()] if args.ignore_paths else None
    )
    annotations = _annotations(args.annotations or [])
    login = _login(args, repository.host)
    if not args.output:
        print(f"► pushing artifact to {repository}:{tag}", file=sys.stderr)
    try:
        with Registry(
            repository, login=login, tls=Tls(ca_pem=ca) if ca else None, plain_http=args.insecure_registry,
            timeout=timeout, push=True, tls_hint=CA_HINT, auth_hint=AUTH_HINT,
            cert_hint="this fluxwarden push artifact sends no client certificate",
        ) as registry:  # fmt: skip
            pushed = push_artifact(
                registry, tag, path, source=args.source, revision=args.revision, annotations=annotations,
                ignore_paths=ignore, created=created_now(args.reproducible),
            )  # fmt: skip
    except RegistryError as exc:
        print(f"✗ pushing artifact failed: {exc.message}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(pushed.as_dict(), indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump(pushed.as_dict(), sort_keys=True), end="")
    else:
        print(f"✔ artifact successfully pushed to {pushed.repository}@{pushed.digest}", file=sys.stderr)
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    push = commands.add_parser("push", help="push artifacts to OCI registries").add_subparsers(
        dest="push_what", required=True
    )
    p = push.add_parser("artifact", help="push a directory or file as a Flux OCI artifact (as flux push artifact)")
    p.add_argument("url", help="oci://host/repository:tag")
    p.add_argument("-f", "--path", required=True, help="the directory (or single file) to push")
    p.add_argument("--source", help="the source address, e.g. the Git URL (org.opencontainers.image.source)")
    p.add_argument("--revision", help="'<branch|tag>@sha1:<commit>' (org.opencontainers.image.revision)")
    p.add_argument("--creds", help=f"the registry user; the password from --password-stdin or ${PASSWORD_ENV}")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.add_argument("--ca-file", help="a PEM CA to trust besides the system's")
    p.add_argument("--insecure-registry", action="store_true", help="speak plain HTTP to the registry")
    p.add_argument(
        "--ignore-paths", action="append", help=f"gitignore patterns to leave out (default {','.join(DEFAULT_IGNORE)})"
    )
    p.add_argument("-a", "--annotations", action="append", help="extra OCI annotations, key=value (repeatable)")
    p.add_argument("--reproducible", action="store_true", help="created = 1970-01-01T00:00:00Z (stable digests)")
    p.add_argument("-o", "--output", choices=("json", "yaml"), help="print the pushed digest as json or yaml")
    p.add_argument("--timeout", default="5m", help="per registry operation (Go duration, default 5m)")
    p.set_defaults(func=run)
