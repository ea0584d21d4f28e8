"""Bounded HTTP(S) downloads for Helm repositories: size limit, timeout, credentials, clear errors."""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass

import httpx

from fluxwarden.controllers.source.git import scrub


class FetchError(Exception):
    def __init__(self, message: str, authentication: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.authentication = authentication


@dataclass(frozen=True)
class HttpCredentials:
    username: str | None = None
    password: str | None = None
    ca_pem: bytes | None = None

    @classmethod
    def from_secret(cls, data: dict[str, bytes]) -> HttpCredentials:
        return cls(
            username=data["username"].decode() if "username" in data else None,
            password=data["password"].decode() if "password" in data else None,
            ca_pem=data.get("caFile") or data.get("ca.crt"),
        )


@functools.cache
def _system_trust() -> ssl.SSLContext:
    """Built once: loading the CA bundle costs ~20 ms, once per download otherwise."""
    return ssl.create_default_context()


def fetch(url: str, credentials: HttpCredentials, timeout: float, max_size: int) -> bytes:
    """GET ``url`` into memory, refusing bodies over ``max_size``; errors are scrubbed of credentials."""
    auth = httpx.BasicAuth(credentials.username or "", credentials.password or "") if credentials.username else None
    verify = _system_trust()
    if credentials.ca_pem:
        verify = ssl.create_default_context(cadata=credentials.ca_pem.decode())
    try:
        with (
            httpx.Client(auth=auth, timeout=timeout, verify=verify, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code in (401, 403):
                raise FetchError(f"{response.status_code} from {scrub(url)}: check the credentials", True)
            if response.status_code >= 400:
                raise FetchError(f"{response.status_code} {response.reason_phrase} from {scrub(url)}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_size:
                    raise FetchError(f"{scrub(url)} is larger than the {max_size} byte limit")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.TimeoutException:
        raise FetchError(f"timeout after {timeout:g}s fetching {scrub(url)}") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"cannot fetch {scrub(url)}: {scrub(str(exc))}") from None
