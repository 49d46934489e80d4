"""`digitrec serve`: the HTTP API and the drawing page on uvicorn."""

from __future__ import annotations

from pathlib import Path

import click

from digitrec.cli.output import FiniteRange, min_confidence_option


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; 0.0.0.0 makes the page reachable from a phone on your network.",
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX (.onnx) or Keras (.keras) model to serve [default: the model shipped with digitrec].",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes, each with its own copy of the model.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="How much uvicorn logs; 'warning' drops the line per request.",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests whose Host header names NAME (repeatable). By default the server "
    "answers to 127.0.0.1, localhost and ::1 (and the --host address); with --host 0.0.0.0 "
    "to any name, unless names are given here.",
)
@click.option(
    "--request-timeout",
    default=12.0,
    show_default=True,
    type=FiniteRange(0, min_open=True),
    help="Seconds one request's decoding and inference may take (waiting its turn included); "
    "past it the client is answered at once: 422 when its own work took the time, 503 "
    "when waiting for a turn did.",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=FiniteRange(0, min_open=True),
    help="Seconds a connection has to send its request line and headers; then it is closed.",
)
@click.option(
    "--body-timeout",
    default=60.0,
    show_default=True,
    type=FiniteRange(0, min_open=True),
    help="Seconds a client has to send the request body once its headers are in.",
)
@click.option(
    "--max-connections",
    default=1000,
    show_default=True,
    type=click.IntRange(16),
    help="Open connections per process (lowered to fit the open-file limit); past it a new "
    "connection closes the one that has waited longest without a request running.",
)
@click.option(
    "--max-in-flight",
    default=32,
    show_default=True,
    type=click.IntRange(1),
    help="POST requests at work (body received) per process; past it a POST is answered 503. A POST "
    "still sending its body does not count.",
)
@min_confidence_option(
    "Below this calibrated probability a digit is answered as uncertain (digit null, reason 'low confidence'; the page says 'Not sure: 4 or 9?'), and the page marks the digits of a number to check."
)
@click.option(
    "--collect",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Let the page's users correct a wrong answer (\"Wrong? It's a _\"): each correction is "
    "saved in DIR (the image and a row of DIR/manifest.csv), on this machine, for "
    "`digitrec finetune DIR`. Corrections stop while DIR's disk has less than 512 MiB free; "
    "the environment variable DIGITREC_COLLECT_RESERVE_MB sets another reserve (in MiB).",
)
def serve(
    host: str,
    port: int,
    model_path: Path | None,
    workers: int,
    log_level: str,
    allowed_hosts: tuple[str, ...],
    request_timeout: float,
    header_timeout: float,
    body_timeout: float,
    max_connections: int,
    max_in_flight: int,
    min_confidence: float,
    collect: Path | None,
):
    """Serve the HTTP API and the drawing page.

    Open http://HOST:PORT/ to draw a digit and watch it being read; the API is described at
    /docs.

    A new model (say, after `digitrec finetune`) is loaded without a restart by
    `POST /v1/reload`, accepted from this machine only.

    \b
    Example:
      digitrec serve --port 8000
      curl -F file=@seven.png http://127.0.0.1:8000/v1/predict
      digitrec serve --collect mine/          # corrections from the page -> mine/manifest.csv
      digitrec finetune mine/ --out mine.onnx
      curl -d '{"model": "mine.onnx"}' -H 'Content-Type: application/json' http://127.0.0.1:8000/v1/reload
    """
    from digitrec.extras import require

    require("serve", "fastapi", "uvicorn", "fastapi_offline")
    from digitrec.runtime import Recognizer
    from digitrec.web.guard import allowed_hosts_for
    from digitrec.web.limits import Limits
    from digitrec.web.protocol import ConnectionLimits
    from digitrec.web.server import listen, run_server

    # Load the model here first, so a missing or broken model is an error message, not a server
    # that fails to start. One onnxruntime thread per request: requests run side by side in the
    # thread pool, and for one small image a second thread costs more than it saves (2x measured).
    recognizer = Recognizer(model_path, threads=1, min_confidence=min_confidence)
    _ = recognizer.reader  # and the files its card names (the reader's digit model, its line reader)
    if collect is not None:
        from digitrec.web.collect import Collector

        collect = Collector(collect).folder.resolve()  # made now: a bad folder is an error before listening
    sock = listen(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(
        f"digitrec: serving {recognizer.card.get('name', recognizer.path.name)} on "
        f"http://{shown_host}:{sock.getsockname()[1]}/  (API docs at /docs; Ctrl+C stops)",
        err=True,
    )
    if collect is not None:
        click.echo(f"digitrec: corrections made on the page are saved in {collect}", err=True)
    run_server(
        recognizer,
        sock,
        workers=workers,
        log_level=log_level,
        limits=Limits(request_seconds=request_timeout, max_in_flight=max_in_flight),
        connections=ConnectionLimits(
            header_seconds=header_timeout, body_seconds=body_timeout, max_connections=max_connections
        ),
        allowed_hosts=allowed_hosts_for(host, allowed_hosts),
        collect=collect,
    )
