"""`digitrec serve`: the HTTP API and the drawing page on uvicorn."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; 0.0.0.0 makes the page reachable from a phone on your network.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port.")
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path),
              help="ONNX (.onnx) or Keras (.keras) model to serve [default: the model shipped with digitrec].")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes, each with its own copy of the model.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              help="How much uvicorn logs; 'warning' drops the line per request.")
def serve(host: str, port: int, model_path: Path | None, workers: int, log_level: str):
    """Serve the HTTP API and the drawing page.

    Open http://HOST:PORT/ to draw a digit and watch it being read; the API is described at
    /docs.

    \b
    Example:
      digitrec serve --port 8000
      curl -F file=@seven.png http://127.0.0.1:8000/v1/predict
    """
    from digitrec.extras import require

    require("serve", "fastapi", "uvicorn", "fastapi_offline")
    from digitrec.runtime import Recognizer
    from digitrec.web.server import listen, run_server

    # Load the model here first, so a missing or broken model is an error message, not a server
    # that fails to start. One onnxruntime thread per request: requests run side by side in the
    # thread pool, and for one small image a second thread costs more than it saves (2x measured).
    recognizer = Recognizer(model_path, threads=1)
    sock = listen(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(f"digitrec: serving {recognizer.card.get('name', recognizer.path.name)} on "
               f"http://{shown_host}:{sock.getsockname()[1]}/  (API docs at /docs; Ctrl+C stops)", err=True)
    run_server(recognizer, sock, workers=workers, log_level=log_level)
