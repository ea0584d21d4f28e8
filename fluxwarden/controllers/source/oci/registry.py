"""A small OCI distribution client over httpx: auth, manifests, blobs, tags, and the pushes Flux makes.

Speaks the distribution API (``/v2/<name>/...``) to one repository. Authentication follows the
registry's ``WWW-Authenticate`` challenge: ``Basic`` (htpasswd registries) sends the login directly;
``Bearer`` fetches a token from the challenge's ``realm`` (with ``service`` and ``scope``), sending the
login there only over HTTPS or to the registry's own origin. A redirect to another origin (a blob in
object storage) is followed without the Authorization header or the client certificate.

Every byte is checked: a manifest must hash to the digest it was asked for (or that the registry
announced), a blob to its digest, both streamed with a size bound; nothing is trusted before the
check. Every failure is one ``RegistryError`` whose message is one line without credentials.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from fluxwarden.controllers.artifacts.errors import DownloadError
from fluxwarden.controllers.artifacts.http import copy_limited, private_file, same_origin, shown_origin
from fluxwarden.controllers.artifacts.scrub import scrub
from fluxwarden.controllers.source.oci import media
from fluxwarden.controllers.source.oci.auth import Challenge, Login, parse_challenge
from fluxwarden.controllers.source.oci.reference import DIGEST, Repository

MAX_MANIFEST_SIZE = 4 * 1024 * 1024  # distribution's own limit for a manifest body
MAX_REDIRECTS = 5
MAX_TAG_PAGES = 100
_CHUNK = 1 << 20
USER_AGENT = "fluxwarden/oci"
TLS_HINT = "add the CA that signed it as ca.crt to the Secret named by spec.certSecretRef"
CERT_HINT = "set tls.crt and tls.key in the Secret named by spec.certSecretRef"
AUTH_HINT = "check the credentials for this host in the Secret named by spec.secretRef"


class RegistryError(Exception):
    """A registry operation failed; ``message`` is one line without credentials.

    ``authentication``: the registry refused the credentials; ``untrusted``: its TLS certificate did not
    verify; ``not_found``: the manifest (tag) or blob does not exist; ``mismatch``: content did not hash
    to its digest.
    """

    def __init__(
        self,
        message: str,
        *,
        authentication: bool = False,
        untrusted: bool = False,
        not_found: bool = False,
        mismatch: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())
        self.authentication = authentication
        self.untrusted = untrusted
        self.not_found = not_found
        self.mismatch = mismatch


@dataclass(frozen=True)
class Tls:
    """A CA to trust beside the system's, and an optional client certificate (PEM)."""

    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry served it, its bytes checked against ``digest``."""

    digest: str
    media_type: str
    body: bytes

    @property
    def data(self) -> dict[str, Any]:
        parsed = json.loads(self.body)
        return parsed if isinstance(parsed, dict) else {}

    @property
    def is_index(self) -> bool:
        return self.media_type in media.INDEXES

    @property
    def layers(self) -> list[dict[str, Any]]:
        return [layer for layer in self.data.get("layers") or [] if isinstance(layer, dict)]

    @property
    def annotations(self) -> dict[str, str]:
        raw = self.data.get("annotations")
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def sha256_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _short(digest: str) -> str:
    return digest[:19] + "..." if len(digest) > 19 else digest


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@functools.cache
def _system_trust() -> ssl.SSLContext:
    """Built once: loading the system's CA bundle costs ~20 ms, once per reconcile otherwise."""
    return _harden(ssl.create_default_context())


@functools.lru_cache(maxsize=64)
def _ca_trust(ca_pem: bytes) -> ssl.SSLContext:
    """System CAs plus one CA, built once per CA (a context holds no secret without a client certificate)."""
    context = _harden(ssl.create_default_context())
    try:
        context.load_verify_locations(cadata=ca_pem.decode())
    except (ssl.SSLError, ValueError, UnicodeDecodeError):
        raise RegistryError("ca.crt is not a PEM certificate") from None
    return context


def tls_context(tls: Tls | None, scratch: Path, *, client_cert: bool = True) -> ssl.SSLContext:
    """System CAs plus ``tls.ca_pem``, and the client certificate when ``client_cert``; TLS 1.2+."""
    if tls is None or not (tls.ca_pem or (client_cert and tls.cert_pem)):
        return _system_trust()
    if not (client_cert and tls.cert_pem):
        return _ca_trust(tls.ca_pem or b"")
    context = _harden(ssl.create_default_context())
    if tls.ca_pem:
        try:
            context.load_verify_locations(cadata=tls.ca_pem.decode())
        except (ssl.SSLError, ValueError, UnicodeDecodeError):
            raise RegistryError("ca.crt is not a PEM certificate") from None
    if not tls.key_pem:
        raise RegistryError("tls.crt is set but tls.key is missing")
    cert = private_file(scratch / "tls.crt", tls.cert_pem)
    key = private_file(scratch / "tls.key", tls.key_pem)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError:
        raise RegistryError("tls.crt and tls.key are not a matching PEM certificate and key") from None
    return context


Body = bytes | Callable[[], Iterator[bytes]] | None


class Registry:
    """One repository of one registry; a context manager owning its connections.

    ``plain_http``: speak HTTP (``spec.insecure``); ``push``: ask for push scope as well as pull.
    """

    def __init__(
        self,
        repository: Repository,
        *,
        login: Login | None = None,
        tls: Tls | None = None,
        plain_http: bool = False,
        timeout: float = 60.0,
        push: bool = False,
        tls_hint: str = TLS_HINT,
        auth_hint: str = AUTH_HINT,
        cert_hint: str = CERT_HINT,
    ) -> None:
        self.repository = repository
        self.login = login
        self.timeout = timeout
        self.tls_hint = tls_hint
        self.auth_hint = auth_hint
        self.cert_hint = cert_hint
        self.base = f"{'http' if plain_http else 'https'}://{repository.host}"
        self._scope = f"repository:{repository.name}:{'pull,push' if push else 'pull'}"
        self._authorization: str | None = None
        self._scratch = tempfile.TemporaryDirectory(prefix="fluxwarden-oci-")
        try:
            own = tls_context(tls, Path(self._scratch.name))
            foreign = tls_context(tls, Path(self._scratch.name), client_cert=False)
        except RegistryError:
            self._scratch.cleanup()
            raise
        headers = {"User-Agent": USER_AGENT}
        self._client = httpx.Client(timeout=timeout, verify=own, follow_redirects=False, headers=headers)
        self._foreign = httpx.Client(timeout=timeout, verify=foreign, follow_redirects=False, headers=headers)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()
        self._foreign.close()
        self._scratch.cleanup()

    @property
    def shown(self) -> str:
        """``https://host:port/name`` for messages."""
        return f"{shown_origin(self.base)}/{self.repository.name}"

    def _path(self, kind: str, reference: str = "") -> str:
        return f"{self.base}/v2/{self.repository.name}/{kind}/{reference}".rstrip("/")

    # -- requests --------------------------------------------------------------------------------

    def _send(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, body: Body = None, stream: bool = False
    ) -> httpx.Response:
        """One request to the registry, answering one 401 challenge; redirects are the caller's."""
        for attempt in range(2):
            sent = dict(headers or {})
            if self._authorization:
                sent["Authorization"] = self._authorization
            content = body() if callable(body) else body
            try:
                request = self._client.build_request(method, url, headers=sent, content=content)
                response = self._client.send(request, stream=stream)
            except httpx.TimeoutException:
                raise RegistryError(f"timeout after {self.timeout:g}s talking to {self.shown}") from None
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, url) from None
            if response.status_code != 401 or attempt == 1:
                return response
            challenge = parse_challenge(response.headers.get("www-authenticate", ""))
            response.close()
            if not self._answer(challenge):
                return response
        raise AssertionError("unreachable")

    def _answer(self, challenge: Challenge | None) -> bool:
        """Set the Authorization for ``challenge``; False when there is nothing (new) to send."""
        if challenge is None:
            return False
        if challenge.scheme == "basic":
            if self.login is None or (self._authorization or "").startswith("Basic "):
                return False
            pair = f"{self.login.username}:{self.login.password}".encode()
            self._authorization = "Basic " + base64.b64encode(pair).decode()
            return True
        if challenge.scheme == "bearer":
            self._authorization = f"Bearer {self._token(challenge)}"
            return True
        return False

    def _token(self, challenge: Challenge) -> str:
        realm = challenge.params.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"{self.shown} asked for a token from an invalid realm '{scrub(realm)[:80]}'")
        query = {"scope": challenge.params.get("scope") or self._scope}
        if challenge.params.get("service"):
            query["service"] = challenge.params["service"]
        own = same_origin(realm, self.base)
        auth = None
        if self.login is not None and (own or urlsplit(realm).scheme == "https"):
            auth = httpx.BasicAuth(self.login.username, self.login.password)
        client = self._client if own else self._foreign
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        try:
            response = client.get(url, auth=auth)
        except httpx.TimeoutException:
            raise RegistryError(
                f"timeout after {self.timeout:g}s fetching a token from {shown_origin(realm)}"
            ) from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, realm) from None
        if response.status_code in (401, 403):
            raise RegistryError(
                f"{response.status_code} from the token service {shown_origin(realm)} for {self.shown}: "
                f"{self.auth_hint}", authentication=True,
            )  # fmt: skip
        if response.status_code >= 400:
            raise RegistryError(f"{response.status_code} from the token service {shown_origin(realm)}")
        try:
            answer = response.json()
            token = str(answer.get("token") or answer.get("access_token") or "")
        except (ValueError, AttributeError):
            token = ""
        if not token:
            raise RegistryError(f"the token service {shown_origin(realm)} sent no token")
        return token

    def _transport_error(self, exc: httpx.HTTPError, url: str) -> RegistryError:
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text:
            reason = text.split("certificate verify failed:", 1)[-1].split("(_ssl", 1)[0].strip() or "verify failed"
            return RegistryError(
                f"TLS certificate of {shown_origin(url)} is not trusted ({reason}): {self.tls_hint}", untrusted=True
            )
        if "CERTIFICATE_REQUIRED" in text or "HANDSHAKE_FAILURE" in text:
            return RegistryError(
                f"{shown_origin(url)} refused the TLS handshake (it asks for a client certificate): {self.cert_hint}"
            )
        return RegistryError(f"cannot reach {shown_origin(url)}: {scrub(text)}")

    def _check(self, response: httpx.Response, what: str) -> None:
        if response.status_code in (401, 403):
            raise RegistryError(
                f"{response.status_code} from {self.shown} for {what}: {self.auth_hint}", authentication=True
            )
        if response.status_code == 404:
            raise RegistryError(f"{what} not found in {self.shown}", not_found=True)
        if response.status_code >= 400:
            raise RegistryError(f"{response.status_code} {response.reason_phrase} from {self.shown} for {what}")

    # -- pull ------------------------------------------------------------------------------------

    def _what(self, reference: str) -> str:
        return f"manifest '{_short(reference)}'" if DIGEST.match(reference) else f"tag '{reference}'"

    def resolve(self, reference: str) -> str:
        """The digest of the manifest ``reference`` (a tag) names: a HEAD, else a GET of the manifest only."""
        response = self._send("HEAD", self._path("manifests", reference), headers={"Accept": media.ACCEPT})
        response.close()
        announced = str(response.headers.get("docker-content-digest", ""))
        if response.status_code == 200 and DIGEST.match(announced):
            return announced
        if response.status_code in (401, 403, 404):
            self._check(response, self._what(reference))
        return self.manifest(reference).digest

    def manifest(self, reference: str) -> Manifest:
        """GET the manifest ``reference`` (tag or digest); its bytes must hash to the digest asked for, or
        else the one the registry announced."""
        what = self._what(reference)
        response = self._send("GET", self._path("manifests", reference), headers={"Accept": media.ACCEPT}, stream=True)
        try:
            self._check(response, what)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_MANIFEST_SIZE:
                    raise RegistryError(f"{what} in {self.shown} is larger than {MAX_MANIFEST_SIZE} bytes")
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, self.base) from None
        finally:
            response.close()
        actual = sha256_digest(bytes(body))
        announced = response.headers.get("docker-content-digest", "")
        expected = reference if DIGEST.match(reference) else announced if DIGEST.match(announced) else actual
        if actual != expected:
            raise RegistryError(
                f"manifest digest mismatch for {what} in {self.shown}: expected {_short(expected)}, "
                f"got {_short(actual)}", mismatch=True,
            )  # fmt: skip
        try:
            parsed = json.loads(body)
        except ValueError:
            raise RegistryError(f"{what} in {self.shown} is not JSON") from None
        declared = parsed.get("mediaType") if isinstance(parsed, dict) else None
        content_type = response.headers.get("content-type", "").split(";")[0].strip()
        return Manifest(actual, str(declared or content_type), bytes(body))

    def blob(self, digest: str, out: IO[bytes], max_size: int) -> int:
        """Stream the blob ``digest`` into ``out`` (at most ``max_size`` bytes, within the timeout), checking
        it hashes to ``digest``; the number of bytes. ``out`` holds unchecked bytes on error: discard it."""
        if not DIGEST.match(digest):
            raise RegistryError(f"blob digest '{digest[:80]}' is not sha256:<hex>")
        deadline = time.monotonic() + self.timeout
        url, what = self._path("blobs", digest), f"blob '{_short(digest)}'"
        response = self._send("GET", url, stream=True)
        for _ in range(MAX_REDIRECTS):
            if not (response.is_redirect and "location" in response.headers):
                break
            response.close()
            url = urljoin(url, response.headers["location"])
            if same_origin(url, self.base):
                response = self._send("GET", url, stream=True)
            else:  # object storage: no Authorization, no client certificate
                try:
                    response = self._foreign.send(self._foreign.build_request("GET", url), stream=True)
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc, url) from None
        try:
            self._check(response, what)
            copied = copy_limited(
                response.iter_bytes(_CHUNK), out, f"{what} from {self.shown}", max_size, deadline, self.timeout
            )
        except DownloadError as exc:
            raise RegistryError(exc.message) from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, url) from None
        finally:
            response.close()
        if copied.digest != digest:
            raise RegistryError(
                f"blob digest mismatch for {what} in {self.shown}: got {_short(copied.digest)}", mismatch=True
            )
        return copied.size

    def tags(self) -> list[str]:
        """Every tag of the repository, following the ``Link`` pagination."""
        url, found = self._path("tags", "list") + "?n=1000", []
        for _ in range(MAX_TAG_PAGES):
            response = self._send("GET", url)
            self._check(response, "the tag list")
            try:
                page = response.json()
            except ValueError:
                raise RegistryError(f"the tag list of {self.shown} is not JSON") from None
            found += [str(t) for t in (page.get("tags") if isinstance(page, dict) else None) or []]
            link = response.links.get("next", {}).get("url")
            if not link:
                return found
            url = urljoin(url, link)
            if not same_origin(url, self.base):
                raise RegistryError(f"the tag list of {self.shown} links to another host")
        raise RegistryError(f"the tag list of {self.shown} has more than {MAX_TAG_PAGES} pages")

    # -- push ------------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        response = self._send("HEAD", self._path("blobs", digest))
        response.close()
        if response.status_code == 404:
            return False
        self._check(response, f"blob '{_short(digest)}'")
        return True

    def push_blob(self, digest: str, size: int, body: Body) -> None:
        """Upload a blob in one PUT (``POST`` then ``PUT ?digest=``), unless the registry has it already."""
        if self.has_blob(digest):
            return
        started = self._send("POST", self._path("blobs", "uploads") + "/", headers={"Content-Length": "0"})
        self._check(started, "a blob upload")
        location = started.headers.get("location")
        if started.status_code != 202 or not location:
            raise RegistryError(f"{self.shown} did not start a blob upload ({started.status_code})")
        url = urljoin(self.base + "/", location)
        if not same_origin(url, self.base):
            raise RegistryError(f"{self.shown} sent the blob upload to another host")
        url += ("&" if "?" in url else "?") + urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        done = self._send("PUT", url, headers=headers, body=body)
        self._check(done, f"blob '{_short(digest)}'")
        if done.status_code != 201:
            raise RegistryError(f"{self.shown} did not accept blob '{_short(digest)}' ({done.status_code})")

    def push_manifest(self, tag: str, body: bytes, media_type: str) -> str:
        """PUT the manifest under ``tag``; its digest."""
        response = self._send("PUT", self._path("manifests", tag), headers={"Content-Type": media_type}, body=body)
        self._check(response, f"tag '{tag}'")
        if response.status_code != 201:
            raise RegistryError(f"{self.shown} did not accept the manifest for tag '{tag}' ({response.status_code})")
        digest = sha256_digest(body)
        announced = response.headers.get("docker-content-digest")
        if announced and announced != digest:
            raise RegistryError(f"{self.shown} stored the manifest as {_short(announced)}, not {_short(digest)}")
        return digest
