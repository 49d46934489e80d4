"""Run the app on uvicorn: one process, or several sharing one listening socket."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import socket
from pathlib import Path

import uvicorn
from uvicorn.supervisors import Multiprocess

from digitrec.errors import DigitrecError
from digitrec.runtime import Recognizer
from digitrec.web.app import create_app
from digitrec.web.guard import LOCAL_HOSTS
from digitrec.web.limits import Limits
from digitrec.web.protocol import ConnectionLimits, TimedH11Protocol

# File descriptors kept for what is not a connection, beyond those open at start: the event loop,
# worker pipes, files the app opens.
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


def open_files() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # no /proc: assume a modest start
        return 64


def fit_connections(connections: ConnectionLimits) -> tuple[ConnectionLimits, int]:
    """`connections` with its cap lowered to fit the open-file limit, and the listen backlog.

    asyncio accepts up to `backlog` connections in one go, before any of them reaches the protocol
    (which closes the longest-waiting one past the cap), and a closed socket's descriptor is freed a
    loop turn later: so up to about two batches are open beyond the cap, and the backlog is kept to
    a quarter of the free descriptors (2048, uvicorn's default, where they are plenty)."""
    free = raise_open_file_limit() - open_files() - SPARE_FDS
    backlog = min(2048, max(8, free // 4))
    fits = max(8, free - 2 * backlog)
    return dataclasses.replace(connections, max_connections=min(connections.max_connections, fits)), backlog


def run_server(
    recognizer: Recognizer,
    sock: socket.socket,
    workers: int = 1,
    log_level: str = "info",
    limits: Limits = Limits(),
    connections: ConnectionLimits = ConnectionLimits(),
    allowed_hosts: tuple[str, ...] | None = LOCAL_HOSTS,
    collect: Path | None = None,
) -> None:
    connections, backlog = fit_connections(connections)
    options = dict(
        log_level=log_level, access_log=log_level in ("info", "debug"), http=TimedH11Protocol, backlog=backlog
    )
    if workers == 1:
        config = uvicorn.Config(
            create_app(recognizer, limits=limits, allowed_hosts=allowed_hosts, slow_processes=True, collect=collect),
            **options,
        )
        config.connection_limits = connections  # read by TimedH11Protocol
        uvicorn.Server(config).run(sockets=[sock])
        return
    # Several processes need an importable factory; each loads its own copy of the model.
    os.environ["DIGITREC_SERVE_MODEL"] = str(recognizer.path)
    os.environ["DIGITREC_SERVE_SETTINGS"] = json.dumps(
        {
            "limits": dataclasses.asdict(limits),
            "allowed_hosts": allowed_hosts,
            "min_confidence": recognizer.min_confidence,
            "collect": None if collect is None else str(collect),
            "processes": workers,
        }
    )
    config = uvicorn.Config("digitrec.web.app:create_app_from_env", factory=True, workers=workers, **options)
    config.connection_limits = connections  # pickled with the Config into each worker
    Multiprocess(config, sockets=[sock]).run()
