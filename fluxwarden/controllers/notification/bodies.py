"""What the event and receiver servers share about requests: a bounded body and one-line answers."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import PlainTextResponse

CLOSE = {"Connection": "close"}  # with a 408: the rest of that body is never read, the connection ends
READ_TIMEOUT = 30.0  # Flux's servers' ReadTimeout: a client that stalls mid-body holds nothing longer


class TooLarge(Exception):
    """The body is over the limit (413)."""


class TooSlow(Exception):
    """The body did not arrive within ``READ_TIMEOUT`` (408)."""


async def read_body(request: Request, limit: int, timeout: float = READ_TIMEOUT) -> bytes:
    """The body, never holding more than ``limit`` bytes whatever Content-Length claims."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise TooLarge
                chunks.append(chunk)
    except TimeoutError:
        raise TooSlow from None
    return b"".join(chunks)


def text(status: int, line: str, headers: dict[str, str] | None = None) -> PlainTextResponse:
    """One line of text (whitespace folded, at most 1000 characters)."""
    return PlainTextResponse(" ".join(line.split())[:1000] + "\n", status_code=status, headers=headers)
