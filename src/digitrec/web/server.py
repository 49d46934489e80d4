"""Run the app on uvicorn: one process, or several sharing one listening socket."""

from __future__ import annotations

import os
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from digitrec.errors import DigitrecError
from digitrec.runtime import Recognizer
from digitrec.web.app import create_app


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


def run_server(recognizer: Recognizer, sock: socket.socket, workers: int = 1, log_level: str = "info") -> None:
    options = dict(log_level=log_level, access_log=log_level in ("info", "debug"))
    if workers == 1:
        uvicorn.Server(uvicorn.Config(create_app(recognizer), **options)).run(sockets=[sock])
        return
    # Several processes need an importable factory; each loads its own copy of the model.
    os.environ["DIGITREC_SERVE_MODEL"] = str(recognizer.path)
    config = uvicorn.Config("digitrec.web.app:create_app_from_env", factory=True, workers=workers, **options)
    Multiprocess(config, sockets=[sock]).run()
