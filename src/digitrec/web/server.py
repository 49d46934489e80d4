"""Run the app on uvicorn: one process, or several sharing one listening socket."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from digitrec.errors import DigitrecError
from digitrec.runtime import Recognizer
from digitrec.web.app import create_app
from digitrec.web.guard import LOCAL_HOSTS
from digitrec.web.limits import Limits
from digitrec.web.protocol import ConnectionLimits, TimedH11Protocol

# File descriptors kept for what is not a connection: the model files, logs, the event loop, pipes.
SPARE_FDS = 64


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a busy port is a plain error message."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Say TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only for a socket whose
    # protocol is TCP, and without it each answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DigitrecError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)  # worker processes inherit it
    return sock


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (children inherit it): each
    connection is a file descriptor, and the usual soft limit (1,024) is what a flood of idle
    connections exhausted. -> the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):  # some sandboxes refuse; the connection cap then fits the old one
            pass
    return (1 << 20) if soft == resource.RLIM_INFINITY else soft


def fit_connections(connections: ConnectionLimits) -> ConnectionLimits:
    """`connections` with its cap lowered, when needed, to leave SPARE_FDS of the open-file limit."""
    fits = max(16, raise_open_file_limit() - SPARE_FDS)
    return dataclasses.replace(connections, max_connections=min(connections.max_connections, fits))


def run_server(recognizer: Recognizer, sock: socket.socket, workers: int = 1, log_level: str = "info",
               limits: Limits = Limits(), connections: ConnectionLimits = ConnectionLimits(),
               allowed_hosts: tuple[str, ...] | None = LOCAL_HOSTS) -> None:
    options = dict(log_level=log_level, access_log=log_level in ("info", "debug"), http=TimedH11Protocol)
    connections = fit_connections(connections)
    if workers == 1:
        config = uvicorn.Config(create_app(recognizer, limits=limits, allowed_hosts=allowed_hosts), **options)
        config.connection_limits = connections  # read by TimedH11Protocol
        uvicorn.Server(config).run(sockets=[sock])
        return
    # Several processes need an importable factory; each loads its own copy of the model.
    os.environ["DIGITREC_SERVE_MODEL"] = str(recognizer.path)
    os.environ["DIGITREC_SERVE_SETTINGS"] = json.dumps(
        {"limits": dataclasses.asdict(limits), "allowed_hosts": allowed_hosts})
    config = uvicorn.Config("digitrec.web.app:create_app_from_env", factory=True, workers=workers, **options)
    config.connection_limits = connections  # pickled with the Config into each worker
    Multiprocess(config, sockets=[sock]).run()
