"""Run the app on uvicorn: one process, or several sharing one listening socket."""

from __future__ import annotations

import os
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from digitrec.runtime import Recognizer
from digitrec.web.app import create_app


class _TcpConfig(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        # uvicorn opens this socket with protocol 0, so asyncio does not set TCP_NODELAY on the
        # connections it accepts, and each response then waits ~40 ms for a delayed ACK (Nagle).
        return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())


def run_server(recognizer: Recognizer, host: str, port: int, workers: int = 1, log_level: str = "info") -> None:
    access_log = log_level in ("info", "debug")
    if workers == 1:
        uvicorn.run(create_app(recognizer), host=host, port=port, log_level=log_level, access_log=access_log)
        return
    # Several processes need an importable factory; each loads its own copy of the model.
    os.environ["DIGITREC_SERVE_MODEL"] = str(recognizer.path)
    config = _TcpConfig("digitrec.web.app:create_app_from_env", factory=True, workers=workers, host=host,
                        port=port, log_level=log_level, access_log=access_log)
    Multiprocess(config, sockets=[config.bind_socket()]).run()
