"""Request-size limits of the REST API, enforced before a body is read (a pure ASGI middleware).

A declared `Content-Length` over the route's limit is answered 413 at once, without reading a
byte of the body; a body without one (chunked) is counted as it streams and cut off with 413
when it passes the limit. So no request can make the xApp buffer more than the limit
(RFC 9110 §15.5.14, 413 Content Too Large).
"""
from __future__ import annotations

import json
from typing import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOO_LARGE = 413


class BodyLimit:
    """ASGI middleware: `limit_for(method, path)` gives the largest body (bytes) a route takes."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int]):
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _reply(send, 400, "Content-Length is not a non-negative integer")
                return
            if int(declared) > limit:
                await _reply(send, TOO_LARGE, f"request body of {int(declared)} bytes exceeds the "
                                              f"limit of {limit} bytes for this route")
                return
        received = 0

        async def counted_receive() -> Message:
            """The app's exception handling turns the HTTPException into the 413 response."""
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(TOO_LARGE, f"request body exceeds the limit of {limit} bytes "
                                                   "for this route")
            return message

        await self.app(scope, counted_receive, send)


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
