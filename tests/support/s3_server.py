"""A real S3 API on loopback: versitygw (tests/storage/go.mod) serving a local directory, HTTP or HTTPS.

Bucket sources of ``provider: generic`` must meet a real S3 server: real SigV4 checks, real ETags,
real ListObjectsV2 paging. versitygw's ``posix`` backend turns each top-level directory of ``root``
into a bucket. The root credentials are random per server and passed in the environment, never on
the command line. ``tls=None`` serves plain HTTP (a Bucket's ``insecure: true``). stop() and start() again
keep the objects; leaving the ``with`` block removes the state (and ``root`` when it was not given).

    with S3Server(tmp_path / "s3", tls=PrivateCA()) as s3:
        s3.client().create_bucket(Bucket="configs")
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.support.server_process import (
    HOST,
    ManagedServer,
    ServerProcess,
    answers_http,
    client_context,
    write_tls_files,
)
from tests.support.storage_binaries import storage_binary
from tests.support.tls import PrivateCA

REGION = "us-east-1"


class S3Server(ManagedServer):
    """versitygw on ``127.0.0.1:<port>``; ``endpoint`` is ``host:port`` as a Flux Bucket's spec wants it."""

    def __init__(
        self, root: Path | None = None, *, tls: PrivateCA | None = None, region: str = REGION, keep_alive: bool = False
    ) -> None:
        self.keep_alive = keep_alive  # versitygw closes every connection after one answer unless told otherwise
        self.state_dir = Path(tempfile.mkdtemp(prefix="fluxwarden-s3-"))
        self.root = (root or self.state_dir / "buckets").resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.region = region
        self.access_key = "fw" + secrets.token_hex(9)
        self.secret_key = secrets.token_urlsafe(30)
        self._iam_dir = self.state_dir / "iam"
        self._iam_dir.mkdir()
        self._files = write_tls_files(tls, self.state_dir / "tls") if tls else None
        self.ca_file = self._files.ca if self._files else None  # for clients that read a CA bundle path
        self._process = ServerProcess(
            "versitygw",
            self._command,
            lambda port: answers_http(f"{self._scheme}://{HOST}:{port}/", client_context(tls)),
            self.state_dir / "versitygw.log",
            env={"ROOT_ACCESS_KEY_ID": self.access_key, "ROOT_SECRET_ACCESS_KEY": self.secret_key},
            cwd=self.state_dir,
        )

    @property
    def _scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:<port>``, no scheme: Flux's Bucket ``spec.endpoint``."""
        return f"{HOST}:{self._process.port}"

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:<port>``: the endpoint URL an S3 client is given."""
        return f"{self._scheme}://{self.endpoint}"

    @property
    def ca_pem(self) -> bytes | None:
        """The CA that signed the serving certificate (a ``certSecretRef``'s ``ca.crt``); None over HTTP."""
        return self.tls.ca_pem if self.tls else None

    @property
    def insecure(self) -> bool:
        """Flux's ``spec.insecure``: true for plain HTTP."""
        return self.tls is None

    def secret_data(self) -> dict[str, str]:
        """The ``secretRef`` Secret's data of a generic Bucket (plain text; encode it for ``data:``)."""
        return {"accesskey": self.access_key, "secretkey": self.secret_key}

    def client(self, *, access_key: str | None = None, secret_key: str | None = None) -> Any:
        """A boto3 S3 client of this server (path-style addressing, the CA trusted); other keys to test refusals."""
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            verify=str(self.ca_file) if self.ca_file else True,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def _command(self, port: int) -> list[str]:
        command = [str(storage_binary("versitygw")), "--port", f"{HOST}:{port}", "--region", self.region, "--quiet"]
        # The internal IAM answers an unknown access key 403 InvalidAccessKeyId, as AWS does; the
        # root-only default answers 404 XAdminUserNotFound.
        command += ["--iam-dir", str(self._iam_dir)]
        if self._files:
            command += ["--cert", str(self._files.cert), "--key", str(self._files.key)]
        if self.keep_alive:
            command.append("--keep-alive")
        return [*command, "posix", str(self.root)]
