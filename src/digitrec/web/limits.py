"""Limits that keep one bad or greedy request from hurting the server or the other clients."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException
from fastapi.responses import JSONResponse


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 20 * 1024 * 1024  # a whole request; larger -> 413 before it is read
    max_images: int = 64  # per request
    # Pixels: the runtime's loader refuses images over its limit from the header, before decoding.


class BodySizeLimit:
    """ASGI middleware: answer 413 for a body over `max_bytes`, trusting Content-Length when it is
    given and counting the bytes as they arrive when it is not (chunked uploads)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> HTTPException:
        return HTTPException(413, f"request body too large (limit {self.max_bytes} bytes)")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse({"detail": self._too_large().detail}, status_code=413,
                                    headers={"Connection": "close"})
            return await response(scope, receive, send)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException from inside the app reaches FastAPI's handler: a 413 answer.
                    raise self._too_large()
            return message

        await self.app(scope, counting_receive, send)
