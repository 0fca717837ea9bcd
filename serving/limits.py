"""Request body size limit: a body larger than ``max_body_bytes`` is refused with 413 unread.

A plain ASGI middleware (Starlette's BaseHTTPMiddleware would buffer). A declared
Content-Length over the limit is answered at once, before routing, authentication or one byte
of the body is read; a body without Content-Length (chunked) is counted as the app reads it and
refused the moment the count passes the limit. Starlette 1.x has a RequestBodyLimitMiddleware,
but it refuses a too-long Content-Length only once the app reads or answers, and in plain text;
this one answers at once with the API's JSON error body, naming the limit.

The default limit is sized for the largest legal request: ``max_batch_accounts`` accounts of
explicit feature values sent column-wise (the compact form). A column-wise row of every feature
of the default catalogue (83 features) at their widest legal JSON values - 79 numbers at full
double precision like ``-1.7976931348623157e+308`` (24 characters and ", "), four 64-character
categories, a 200-character account id and every product held - takes about 2.6 KB;
BYTES_PER_ACCOUNT allows 4 KiB (room for a larger catalogue), plus BODY_OVERHEAD_BYTES for the
`columns` list and the other fields. With 10,000 accounts that is 41,025,536 bytes (39 MiB).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BYTES_PER_ACCOUNT = 4096
BODY_OVERHEAD_BYTES = 64 * 1024
SETTING = "max_body_bytes"
HOW_TO_FIT = "send big batches column-wise (columns + data) or split them"


def body_limit(max_body_bytes: int | None, max_batch_accounts: int) -> int:
    """The largest request body accepted: the setting, or the size of the largest legal batch."""
    if max_body_bytes is not None:
        return max_body_bytes
    return max_batch_accounts * BYTES_PER_ACCOUNT + BODY_OVERHEAD_BYTES


def too_large_detail(limit: int, size: int | None = None) -> dict[str, str]:
    said = f"request body is {size:,} bytes" if size is not None else "request body is larger"
    return {"error": "body_too_large",
            "message": f"{said}; at most {limit:,} bytes ({SETTING}): {HOW_TO_FIT}"}


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit. An HTTPException, so
    FastAPI's body reading lets it through and the app answers it as a 413 like any other."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_detail(limit))


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` (413) without reading them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _answer_413(send, too_large_detail(self.max_bytes, declared))
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge as exc:  # read outside FastAPI's routes (which answer it themselves)
            if started:
                raise
            await _answer_413(send, exc.detail)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _answer_413(send: Send, detail: Any) -> None:
    body = orjson.dumps({"detail": detail})
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
