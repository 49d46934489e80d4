"""uvicorn's h11 protocol with the timeouts and the connection cap it lacks.

uvicorn 0.55 times a connection out only while it idles between two requests (`timeout_keep_alive`,
armed when an answer is complete). A connection that sends nothing, half a request line, or a body one
byte a minute is held forever, and each holds a file descriptor: 1,100 idle connections exhausted a
1,024 limit (accept failed with EMFILE, `/healthz` timed out). Here each connection must finish its
request head (request line and headers) within `header_seconds` of opening or of its first byte after
a keep-alive pause, and its body within `body_seconds` of the head; and past `max_connections` a new
connection pushes out the connection that has waited longest without a request running on it (idle
ones first), so a flood of idle sockets cannot lock real clients out.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("digitrec.web")

REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class ConnectionLimits:
    header_seconds: float = 10.0  # to send the request line and headers
    body_seconds: float = 60.0  # to send the body once the head is in (20 MiB at >= 350 KB/s)
    max_connections: int = 1000  # open at once per process; the server lowers it to fit the fd limit


class TimedH11Protocol(H11Protocol):
    """The protocol uvicorn runs per connection, given as `uvicorn.Config(http=TimedH11Protocol)`; its
    limits come from `config.connection_limits` (an attribute set on the Config, so that worker
    processes, which receive the Config pickled, get them too)."""

    def __init__(self, config, server_state, app_state, _loop=None):
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ConnectionLimits = getattr(config, "connection_limits", None) or ConnectionLimits()
        # Connections with no request running, oldest first (a dict keeps insertion order): the ones
        # pushed out when the cap is reached. Shared by all the connections of one server.
        if not hasattr(server_state, "digitrec_waiting"):
            server_state.digitrec_waiting = {}
        self.waiting: dict[TimedH11Protocol, None] = server_state.digitrec_waiting
        self.timer: asyncio.TimerHandle | None = None
        self.timing: str | None = None  # "head" or "body": what the timer waits for
        self.bytes_in = 0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.waiting[self] = None
        if len(self.connections) > self.limits.max_connections:
            oldest = next((c for c in self.waiting if c is not self), self)
            log.debug("over %d connections: closing the longest waiting one", self.limits.max_connections)
            oldest.drop()
            if oldest is self:
                return
        self._time("head")

    def connection_lost(self, exc) -> None:
        self._time(None)
        self.waiting.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE:  # the head is not complete yet
            if self.timing != "head":
                self._time("head")
        elif state is h11.SEND_BODY:
            self.waiting.pop(self, None)
            if self.timing != "body":
                self._time("body")
        else:  # the request is in (DONE), or the connection is ending
            self.waiting.pop(self, None)
            self._time(None)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self.waiting[self] = None  # idle again; uvicorn's keep-alive timer now runs

    def _time(self, what: str | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.timing = None, what
        if what is not None:
            seconds = self.limits.header_seconds if what == "head" else self.limits.body_seconds
            self.timer = self.loop.call_later(seconds, self._timed_out)

    def _timed_out(self) -> None:
        log.debug("%s: request %s not received in time; closing", self.client, self.timing)
        # A client that began a request is told why; one that sent nothing just sees the close.
        self.drop(answer=self.timing == "head" and self.bytes_in > 0)

    def drop(self, answer: bool = False) -> None:
        self._time(None)
        self.waiting.pop(self, None)
        if not self.transport.is_closing():
            if answer:
                self.transport.write(REQUEST_TIMEOUT)
            self.transport.close()
