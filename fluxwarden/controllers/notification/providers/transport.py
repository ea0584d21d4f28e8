"""Sending a :class:`Request` for a :class:`Target`: one pooled ``httpx.AsyncClient`` per origin, TLS
material and proxy (per event loop), TLS 1.2+, Flux's retries (4, exponential backoff from 2 s to 30 s, on
connection errors, 429 and 5xx but 501, ``Retry-After`` honoured), the whole bounded by the Provider's
timeout. Redirects are followed by hand: credentials go to their own origin only.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.parse
import weakref
from dataclasses import dataclass

import httpx

from fluxwarden.controllers.notification.providers import tls
from fluxwarden.controllers.notification.providers.request import Request
from fluxwarden.controllers.notification.providers.target import DeliveryError, Target

RETRY_MAX = 4  # go-retryablehttp's RetryMax in Flux's notifiers
WAIT_MIN, WAIT_MAX = 2.0, 30.0
MAX_REDIRECTS = 5
MAX_ANSWER = 1 << 20  # bytes of an answer read (a GitHub status listing); the rest is dropped
POOL_LIMIT = 256  # clients alive at once (one per Provider and origin); idle ones beyond are closed
# Connections per client: httpcore's pool scans every connection for every request, so a small pool
# is twice as fast (measured: 8 vs 64 at 32 in flight). One client per Provider (and origin) keeps a
# hanging endpoint from taking the connections of another team's Provider on the same host; the
# dispatcher sends at most 4 at once per Provider, so its own client never runs short.
PER_ORIGIN = 8
REDIRECTS = {301, 302, 303, 307, 308}
USER_AGENT = "fluxwarden-notification-controller"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    retry_after: float | None = None  # seconds, from Retry-After on a 429 or 503


class _Failure(Exception):
    def __init__(self, cause: str, fix: str, *, retry: bool, wait: float | None = None) -> None:
        super().__init__(cause)
        self.cause, self.fix, self.retry, self.wait = cause, fix, retry, wait


@dataclass
class _Pooled:
    client: httpx.AsyncClient
    busy: int = 0
    used: float = 0.0


_Pool = dict[tuple[str, ...], _Pooled]
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()


async def send(target: Target, request: Request, *, wait_min: float = WAIT_MIN) -> Answer:
    """The 2xx answer to ``request``, or :class:`DeliveryError` once retries and the timeout are spent."""
    deadline = time.monotonic() + target.timeout
    pooled = await _client(target, _origin(request.url))
    pooled.busy += 1
    attempt = 0
    try:
        while True:
            attempt += 1
            try:
                return await _attempt(pooled.client, target, request, deadline)
            except _Failure as failure:
                wait = failure.wait if failure.wait is not None else min(WAIT_MAX, wait_min * 2 ** (attempt - 1))
                left = deadline - time.monotonic()
                if not failure.retry or attempt > RETRY_MAX or wait >= left:
                    raise _error(target, request, failure, attempt) from None
                await asyncio.sleep(wait)
    finally:
        pooled.busy -= 1
        pooled.used = time.monotonic()


async def close() -> None:
    """Close every pooled client of the running loop (and forget the pools of loops that are gone)."""
    loop = asyncio.get_running_loop()
    pool = _POOLS.pop(loop, {})
    for pooled in pool.values():
        await pooled.client.aclose()


def _pool_key(target: Target, origin: str) -> tuple[str, ...]:
    """One client per Provider, origin, TLS material and proxy; a context without a digest is its own."""
    material = target.tls_key or (f"context-{id(target.ssl)}" if target.ssl is not None else "system")
    return target.namespace, target.name, material, target.proxy, origin


async def _client(target: Target, origin: str) -> _Pooled:
    pool = _POOLS.setdefault(asyncio.get_running_loop(), {})
    key = _pool_key(target, origin)
    if (found := pool.get(key)) is not None:
        return found
    if len(pool) >= POOL_LIMIT:  # close the least recently used idle clients to make room
        for stale, idle in sorted(pool.items(), key=lambda item: item[1].used):
            if idle.busy == 0 and len(pool) >= POOL_LIMIT:
                del pool[stale]
                await idle.client.aclose()
    context: ssl.SSLContext = target.ssl or tls.system()
    client = httpx.AsyncClient(
        verify=context,
        proxy=target.proxy or None,
        trust_env=False,  # no .netrc credentials, no proxy from the environment: the Provider says
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=PER_ORIGIN, max_keepalive_connections=PER_ORIGIN),
    )
    pooled = pool.setdefault(key, _Pooled(client))
    if pooled.client is not client:  # another task made one meanwhile
        await client.aclose()
    return pooled


async def _attempt(client: httpx.AsyncClient, target: Target, request: Request, deadline: float) -> Answer:
    method, url, headers, body = request.method, request.url, dict(request.headers), request.body
    origin = _origin(request.url)
    for _ in range(MAX_REDIRECTS + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Failure(f"no answer within spec.timeout {target.timeout:g}s", _TIMEOUT_FIX, retry=False)
        try:
            built = client.build_request(method, url, headers=headers, content=body or None, timeout=left)
            response = await client.send(built, stream=True)
            try:
                answer = Answer(response.status_code, await _read(response), _retry_after(response))
                location = response.headers.get("location")
            finally:
                await response.aclose()
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise _Failure(f"the URL cannot be sent to ({_describe(exc)})", "fix the address", retry=False) from None
        except httpx.TimeoutException:
            raise _Failure(f"no answer within spec.timeout {target.timeout:g}s", _TIMEOUT_FIX, retry=True) from None
        except (httpx.ConnectError, httpx.ProxyError) as exc:
            raise _connect_failure(exc) from None
        except httpx.TransportError as exc:  # the connection broke mid-request: Go's client retries too
            if (tls_failure := _tls_failure(exc)) is not None:  # TLS 1.3 reports a refused client cert here
                raise tls_failure from None
            raise _Failure(f"the connection failed ({_describe(exc)})", _UP_FIX, retry=True) from None
        except ssl.SSLError as exc:  # anyio lets a TLS alert after the handshake through unwrapped
            failure = _tls_failure(exc)
            raise (failure or _Failure(f"the connection failed ({_describe(exc)})", _UP_FIX, retry=True)) from None
        except OSError as exc:
            raise _Failure(f"the connection failed ({_describe(exc)})", _UP_FIX, retry=True) from None
        if answer.status in REDIRECTS and location:
            url = urllib.parse.urljoin(url, location)
            if _origin(url) != origin:  # Go's client drops credentials across hosts: so do we, and more
                headers = {k: v for k, v in headers.items() if k not in request.credentials and k != "Authorization"}
                url = _without_userinfo(url)
            if answer.status in (301, 302, 303) and method not in ("GET", "HEAD"):
                method, body = "GET", b""
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            continue
        return _judge(answer, request)
    raise _Failure(f"more than {MAX_REDIRECTS} redirects", "point the address at the final URL", retry=False)


def _judge(answer: Answer, request: Request) -> Answer:
    """The answer when it is a success; else the :class:`_Failure` it means, retryable or not."""
    status = answer.status
    if 200 <= status < 300:
        if request.check and (reason := request.check(answer.body)):
            raise _Failure(reason, "check the token, the channel and the app's scopes", retry=False)
        return answer
    detail = _one_line(answer.body.decode(errors="replace"))[:200]
    cause = f"HTTP {status}" + (f": {detail}" if detail else "")
    if status == 429 or (status >= 500 and status != 501):
        raise _Failure(cause, "the endpoint is failing; check it", retry=True, wait=answer.retry_after)
    raise _Failure(cause, _STATUS_FIX.get(status, "check what the endpoint expects"), retry=False)


_STATUS_FIX = {
    401: "check the token or credentials in the Secret named by spec.secretRef",
    403: "check the token's permissions (scopes) in the Secret named by spec.secretRef",
    404: "check the address (and, for a commit status, the repository and the token's access to it)",
}


def _retry_after(response: httpx.Response) -> float | None:
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


async def _read(response: httpx.Response) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_ANSWER:
            break
    return b"".join(chunks)[:MAX_ANSWER]


_TLS_TRANSIENT = (
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
    ssl.SSLWantReadError,
    ssl.SSLWantWriteError,
    ssl.SSLSyscallError,
)


def _tls_failure(exc: Exception) -> _Failure | None:
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, _TLS_TRANSIENT):
        return None  # the connection ended mid-TLS: a connection failure, retried as one
    if isinstance(cause, ssl.SSLCertVerificationError):
        reason = cause.verify_message or "certificate verify failed"
        return _Failure(f"TLS: the endpoint's certificate is not trusted ({reason})", _CA_FIX, retry=False)
    if isinstance(cause, ssl.SSLError):
        return _Failure(f"TLS handshake failed ({_describe(cause.reason or cause)})", _TLS_FIX, retry=False)
    return None


def _connect_failure(exc: Exception) -> _Failure:
    return _tls_failure(exc) or _Failure(f"cannot connect ({_describe(exc)})", _UP_FIX, retry=True)


def _describe(value: object) -> str:
    return _one_line(value) or type(value).__name__


def _error(target: Target, request: Request, failure: _Failure, attempts: int) -> DeliveryError:
    where = "the address from its Secret" if target.address_from_secret else _origin(request.url)
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    text = f"{target.ref} ({target.type}): {request.method} to {where} failed{tries}: {failure.cause}; {failure.fix}"
    return DeliveryError(_one_line(target.redactor()(text)))


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    host = parts.hostname or ""
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def _without_userinfo(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


_UP_FIX = "check that the endpoint is up and the Provider's address is right"
_TIMEOUT_FIX = "raise spec.timeout or check why the endpoint is slow"
_TLS_FIX = "check the endpoint's TLS (1.2+) and, for mTLS, tls.crt/tls.key in the Secret named by spec.certSecretRef"
_CA_FIX = "add the CA that signed the endpoint's certificate as ca.crt to the Secret named by spec.certSecretRef"
