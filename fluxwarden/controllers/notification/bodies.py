"""What the event and receiver servers share about requests: a bounded body and one-line answers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse


class TooLarge(Exception):
    """The body is over the limit (413)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The body, never holding more than ``limit`` bytes whatever Content-Length claims."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def text(status: int, line: str) -> PlainTextResponse:
    """One line of text (whitespace folded, at most 1000 characters)."""
    return PlainTextResponse(" ".join(line.split())[:1000] + "\n", status_code=status)
