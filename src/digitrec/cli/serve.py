"""`digitrec serve`: the HTTP API and the drawing page on uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; 0.0.0.0 makes the page reachable from a phone on your network.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port.")
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path),
              help="ONNX model to serve [default: the model shipped with digitrec].")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes, each with its own copy of the model.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              help="How much uvicorn logs; 'warning' drops the line per request.")
def serve(host: str, port: int, model_path: Path | None, workers: int, log_level: str):
    """Serve the HTTP API and the drawing page.

    Open http://HOST:PORT/ to draw a digit and watch it being read; the API is described at
    /docs. Example:

        digitrec serve --port 8000
        curl -F file=@seven.png http://127.0.0.1:8000/v1/predict
    """
    import uvicorn

    from digitrec.runtime import Recognizer
    from digitrec.web.app import create_app

    # Load the model here first, so a missing or broken model is an error message, not a server
    # that fails to start.
    recognizer = Recognizer(model_path)
    access_log = log_level in ("info", "debug")
    click.echo(f"digitrec: serving {recognizer.card.get('name', recognizer.path.name)} "
               f"on http://{host}:{port}/  (API docs at /docs; Ctrl+C stops)", err=True)
    if workers == 1:
        uvicorn.run(create_app(recognizer), host=host, port=port, log_level=log_level,
                    access_log=access_log)
    else:
        # Several processes need an importable factory; each loads its own copy of the model.
        os.environ["DIGITREC_SERVE_MODEL"] = str(recognizer.path)
        uvicorn.run("digitrec.web.app:create_app_from_env", factory=True, workers=workers,
                    host=host, port=port, log_level=log_level, access_log=access_log)
