"""Who may ask, and how many at once: ASGI middleware that answers before the app runs.

`RequestGuard` refuses a Host header the server does not answer to (DNS rebinding: a page on
evil.example whose name is made to resolve to 127.0.0.1 would otherwise read this server's answers as
same-origin), and a POST that a browser sends from another site's page (a plain cross-origin form or
fetch POST needs no CORS preflight, so without this any page a visitor opens could make their browser
send work to a local `digitrec serve`). Clients that are not browsers (curl, scripts) send neither
`Origin` nor `Sec-Fetch-Site` and are not affected. `InFlightLimit` caps the POSTs at work and the
body bytes held in memory: past either cap a POST is answered 503.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import HTTPException
from fastapi.responses import JSONResponse

# What `digitrec serve` answers to by default: the names of this machine's loopback interface.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
ANY_INTERFACE = {"0.0.0.0", "::", ""}


def allowed_hosts_for(bound_to: str, extra: Iterable[str] = ()) -> tuple[str, ...] | None:
    """The Host names a server bound to `bound_to` answers to; None (any) when it listens on every
    interface, where it is reached under names this machine cannot know (its LAN address, a DNS
    name) unless they are listed with `--allowed-host`."""
    extra = tuple(host.lower().strip("[]") for host in extra)
    if bound_to in ANY_INTERFACE:
        return extra or None
    return tuple(dict.fromkeys((*LOCAL_HOSTS, bound_to.lower().strip("[]"), *extra)))


def host_name(host: str) -> str:
    """'Host' header value -> the name alone: 'localhost:8000' -> 'localhost', '[::1]:80' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _refuse(status: int, detail: str):
    return JSONResponse({"detail": detail}, status_code=status)


class RequestGuard:
    def __init__(self, app, allowed_hosts: Iterable[str] | None):
        self.app = app
        self.allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                return await refusal(scope, receive, send)
        await self.app(scope, receive, send)

    def refusal(self, scope):
        headers = {name: value.decode("latin-1") for name, value in scope["headers"]}
        host = headers.get(b"host", "")
        if self.allowed is not None and host_name(host) not in self.allowed:
            return _refuse(
                400,
                f"this server does not answer to the host name {host_name(host)!r} "
                "(start it with --allowed-host NAME to add one)",
            )
        if scope["method"] in SAFE_METHODS:
            return None
        site = headers.get(b"sec-fetch-site")
        origin = headers.get(b"origin")
        cross_site = site not in (None, "same-origin", "none")
        if origin is not None and not cross_site:
            # Older browsers send Origin without Sec-Fetch-Site: it must be this very server.
            parts = urlsplit(origin)
            cross_site = origin == "null" or parts.netloc.lower() != host.lower()
        if cross_site:
            return _refuse(
                403,
                "cross-site requests are refused: POST from this server's own page, "
                "or from a client that is not a browser",
            )
        return None


class InFlightLimit:
    """Caps the POSTs at work (their body all in: decoding and inference) at `max_in_flight`, and the
    body bytes held by all POSTs at `max_in_flight` x `max_body_bytes`, the memory the cap on work
    alone allowed. A POST whose body is still arriving is not at work: counting it there let 32
    connections that sent a head and then nothing (or a byte a second) refuse every POST until
    `--body-timeout` closed them. It holds only the bytes it has sent."""

    def __init__(self, app, max_in_flight: int, max_body_bytes: int):
        self.app = app
        self.max_in_flight = max_in_flight
        self.max_held_bytes = max_in_flight * max_body_bytes
        self.at_work = 0
        self.held_bytes = 0

    def _busy(self, what: str | None = None) -> HTTPException:
        return HTTPException(
            503,
            f"the server is busy ({what or f'{self.max_in_flight} requests in progress'}); retry shortly",
            headers={"Retry-After": "1", "Connection": "close"},
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            return await self.app(scope, receive, send)
        if self.at_work >= self.max_in_flight:  # answered at once, before the body is read
            busy = self._busy()
            response = JSONResponse({"detail": busy.detail}, status_code=503, headers=busy.headers)
            return await response(scope, receive, send)
        held, at_work = 0, False

        async def counting_receive():
            nonlocal held, at_work
            message = await receive()
            if message["type"] == "http.request" and not at_work:
                size = len(message.get("body", b""))
                held += size
                self.held_bytes += size
                if self.held_bytes > self.max_held_bytes:
                    # An HTTPException from inside the app reaches FastAPI's handler: a 503 answer.
                    raise self._busy(f"{self.max_held_bytes // 2**20} MiB of request bodies held")
                if not message.get("more_body", False):
                    if self.at_work >= self.max_in_flight:
                        raise self._busy()
                    at_work = True
                    self.at_work += 1
            return message

        try:
            await self.app(scope, counting_receive, send)
        finally:
            self.held_bytes -= held
            if at_work:
                self.at_work -= 1
