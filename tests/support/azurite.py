"""A real Azure Blob API on loopback: Azurite (tests/azurite/package.json, Microsoft's emulator) over HTTPS.

Bucket sources of ``provider: azure`` must meet real shared-key and SAS checks. Azurite serves one
storage account of our own (``AZURITE_ACCOUNTS``, a random key per server) in path style:
``https://127.0.0.1:<port>/<account>``. ``well_known_account=True`` serves Azurite's documented
``devstoreaccount1`` and its published key instead. Telemetry is off; data lives in a temp directory.

    with Azurite(PrivateCA()) as azure:
        azure.service_client().create_container("configs")
"""

from __future__ import annotations

import base64
import datetime
import secrets
import tempfile
from pathlib import Path

from azure.storage.blob import (
    AccountSasPermissions,
    BlobServiceClient,
    ContainerSasPermissions,
    ResourceTypes,
    generate_account_sas,
    generate_container_sas,
)

from tests.support.server_process import (
    HOST,
    ManagedServer,
    ServerProcess,
    answers_http,
    client_context,
    write_tls_files,
)
from tests.support.storage_binaries import azurite_blob
from tests.support.tls import PrivateCA

WELL_KNOWN_ACCOUNT = "devstoreaccount1"
# Published in Azurite's README for every emulator user: not a secret.
WELL_KNOWN_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
ACCOUNT = "fluxwarden"


class Azurite(ManagedServer):
    """``azurite-blob`` on ``127.0.0.1:<port>`` with TLS from ``tls``; ``account_url`` is the blob endpoint."""

    def __init__(self, tls: PrivateCA, *, well_known_account: bool = False) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="fluxwarden-azurite-"))
        self.tls = tls
        self._files = write_tls_files(tls, self.state_dir / "tls")
        self.ca_file = self._files.ca
        env: dict[str, str] = {}
        if well_known_account:
            self.account_name, self.account_key = WELL_KNOWN_ACCOUNT, WELL_KNOWN_KEY
        else:
            self.account_name = ACCOUNT
            self.account_key = base64.b64encode(secrets.token_bytes(64)).decode()
            env["AZURITE_ACCOUNTS"] = f"{self.account_name}:{self.account_key}"
        (self.state_dir / "data").mkdir()
        self._process = ServerProcess(
            "azurite-blob",
            self._command,
            lambda port: answers_http(f"https://{HOST}:{port}/", client_context(tls)),
            self.state_dir / "azurite.log",
            env=env,
            cwd=self.state_dir,
        )

    @property
    def port(self) -> int:
        return self._process.port

    @property
    def ca_pem(self) -> bytes:
        """The CA that signed the serving certificate (a ``certSecretRef``'s ``ca.crt``)."""
        return self.tls.ca_pem

    @property
    def account_url(self) -> str:
        """``https://127.0.0.1:<port>/<account>``: the blob service endpoint (a Bucket's ``spec.endpoint``)."""
        return f"https://{HOST}:{self.port}/{self.account_name}"

    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=https;AccountName={self.account_name};AccountKey={self.account_key};"
            f"BlobEndpoint={self.account_url};"
        )

    def service_client(self, credential: str | dict[str, str] | None = None) -> BlobServiceClient:
        """A client of the account with the shared key (default), a SAS token string, or another credential."""
        if credential is None:
            credential = {"account_name": self.account_name, "account_key": self.account_key}
        return BlobServiceClient(self.account_url, credential=credential, connection_verify=str(self.ca_file))

    def account_sas(self, *, write: bool = False, hours: float = 1) -> str:
        """An account SAS (no leading ``?``): read and list containers and blobs; ``write`` adds create/write."""
        return generate_account_sas(
            self.account_name,
            self.account_key,
            resource_types=ResourceTypes(service=True, container=True, object=True),
            permission=AccountSasPermissions(read=True, list=True, write=write, create=write),
            expiry=_in_hours(hours),
        )

    def container_sas(self, container: str, *, hours: float = 1) -> str:
        """A container SAS token (read and list) for ``container``; negative ``hours`` gives an expired one."""
        return generate_container_sas(
            self.account_name,
            container,
            account_key=self.account_key,
            permission=ContainerSasPermissions(read=True, list=True),
            expiry=_in_hours(hours),
        )

    def _command(self, port: int) -> list[str]:
        return [
            str(azurite_blob()),
            "--blobHost", HOST,
            "--blobPort", str(port),
            "--location", str(self.state_dir / "data"),
            "--cert", str(self._files.cert),
            "--key", str(self._files.key),
            "--skipApiVersionCheck",  # the Python SDK may be newer than the emulator's API version
            "--loose",
            "--disableTelemetry",
        ]  # fmt: skip


def listed_as(name: str) -> str:
    """The blob name to upload so that Azurite lists ``name``, ``..`` segments included.

    Azurite refuses a name with a ``..`` segment but turns ``\\`` into ``/`` after that check, so
    ``listed_as("a/../../evil")`` makes a real listing carry a key that escapes the directory: what a
    Bucket source must refuse. (versitygw cannot: its directory backend normalises such keys.)
    """
    return name.replace("/", "\\")


def _in_hours(hours: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=hours)
