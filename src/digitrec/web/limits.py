"""Limits that keep one bad or greedy request from hurting the server or the other clients."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException
from fastapi.responses import JSONResponse

from digitrec.errors import ImageError
from digitrec.preprocess.load import probe


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 20 * 1024 * 1024  # a whole request; larger -> 413 before it is read
    max_images: int = 64  # per request
    # Images over the runtime's pixel limit (40 MP) are refused from their header by its loader.
    # A request with more pixels than this in all is heavy: a 36 MP photo takes ~1.3 s of CPU and
    # ~0.5 GB of memory to find its ink, so heavy requests take turns (`heavy_at_once` per process)
    # while drawings and small images go straight through.
    heavy_pixels: int = 4_000_000
    heavy_at_once: int = 1
    # Threads for slow work (reading; heavy requests), run at a lower OS priority than the rest.
    slow_threads: int = 2
    # Threads answering the usual requests (drawings, photos) per process: about one per core, so
    # that requests beyond them queue in order instead of sharing the cores (and the interpreter
    # lock) many ways at once, which stretches every one of them and the tail most (p99).
    fast_threads: int = 2
    # The wait for one request's decoding and inference, its turn included: past it the request is
    # answered (422 or 503); 12 s so that every answer comes within the review's 15 s.
    request_seconds: float = 12.0
    # POSTs at work (body received) per process; the bodies held in memory, arriving or at work,
    # at most max_in_flight x max_body_bytes. Past either -> 503 (`guard.InFlightLimit`).
    max_in_flight: int = 32


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
            response = JSONResponse(
                {"detail": self._too_large().detail}, status_code=413, headers={"Connection": "close"}
            )
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


def image_pixels(data: bytes) -> int:
    """Width x height from the image's headers, by the loader's own probe: no pixel decoded, the
    work bounded whatever the file holds, only the formats the loader opens. 0 for a file the
    loader refuses before decoding (it then says why, as quickly)."""
    try:
        width, height = probe(data)
    except ImageError:
        return 0
    return width * height
