"""`create_app(recognizer)`: the HTTP API and the drawing page around one loaded Recognizer.

The model loads once, in the lifespan, and lives on `app.state.recognizer`. Request bodies are read
on the event loop (they are I/O); everything that parses or decodes them (JSON, base64, image
headers, pixels) and inference run in threads (onnxruntime releases the GIL): the usual requests
in a pool of about one thread per core (`Limits.fast_threads`), where the rest queue in order, so a
slow or hostile image never blocks the other requests or `/healthz`, and requests with many pixels take
turns (see `Limits`). Each request has a deadline for that work. Bad input always gets a 4xx with a
message: 413 too large, 415 unsupported body type, 422 not a usable image; 503 busy or too slow.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import cv2
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from digitrec import __version__
from digitrec.doubt import DEFAULT_MIN_CONFIDENCE
from digitrec.errors import DigitrecError, ImageError, without_frames
from digitrec.runtime import Recognizer
from digitrec.web.collect import Collector
from digitrec.web.corrections import add_collect_routes, add_reload_route
from digitrec.web.guard import LOCAL_HOSTS, InFlightLimit, RequestGuard
from digitrec.web.limits import BodySizeLimit, Limits, image_pixels
from digitrec.web.read_options import read_options
from digitrec.web.schemas import ErrorOut, Health, ImagesIn, PredictOut, ReadOut
from digitrec.web.uploads import Upload, images_from_request
from digitrec.web.workers import SlowWorkers, lower_priority

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("digitrec.web")

# One endpoint takes either body type, so the OpenAPI schema spells both out by hand.
IMAGES_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One image file per `file` field, repeated for several.",
                        }
                    },
                }
            },
            "application/json": {"schema": ImagesIn.model_json_schema()},
        },
    }
}
ERRORS = {
    code: {"model": ErrorOut, "description": text}
    for code, text in {
        413: "Request body over the size limit.",
        415: "Body neither multipart/form-data nor JSON.",
        400: "Malformed multipart body, or a Host header this server does not answer to.",
        403: "A browser POST from another site's page.",
        422: "No usable image (not an image, undecodable, too many pixels, no ink or no digits: every "
        "image failed), too much work for the deadline, or a malformed JSON body or query.",
        503: "Busy: too many requests in progress, or no turn for large images before the deadline.",
    }.items()
}

# What /v1/model shows: what a client needs to use the model, not how or where it was made (the
# git commit, library versions and training config help an attacker more than a client).
PUBLIC_CARD = (
    "name",
    "version",
    "architecture",
    "parameters",
    "input",
    "output",
    "labels",
    "accuracy",
    "test_accuracy",
    "test_images",
)


def create_app(
    recognizer: Recognizer | None = None,
    *,
    model: str | Path | None = None,
    limits: Limits = Limits(),
    allowed_hosts: Iterable[str] | None = LOCAL_HOSTS,
    slow_processes: bool = False,
    collect: str | Path | None = None,
    processes: int = 1,
) -> FastAPI:
    """The app for `recognizer`, or for the model at `model` (the shipped one by default), loaded
    at start-up. It answers to the Host names in `allowed_hosts` (None: any). `slow_processes`:
    reading and heavy requests run in `limits.slow_threads` worker processes of their own, each
    with its own copy of the model (what `digitrec serve` does); otherwise in threads. `collect`:
    the folder where the page's corrections are saved (`web.collect`); None: no corrections.
    `processes`: how many server processes share the port (a reload is refused when several)."""
    # A bad folder fails the start. Any image small enough to be read can be kept.
    collector = Collector(collect, limits.max_body_bytes) if collect is not None else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.recognizer = recognizer if recognizer is not None else Recognizer(model)
        # The reader's models, loaded now: a missing file fails the start, not a request.
        _ = app.state.recognizer.reader
        app.state.heavy_lane = asyncio.Semaphore(limits.heavy_at_once)  # made on the serving loop
        # Slow work runs in the slow pool's threads, each of which hands it to a worker process
        # (`web.workers`) where there are some, or does it itself at a lower OS priority.
        app.state.slow_workers = None
        if slow_processes:
            rec = app.state.recognizer
            # Started from the event loop's thread, which outlives the workers (a few seconds, once).
            app.state.slow_workers = SlowWorkers(rec.path, rec.min_confidence, limits.slow_threads)
        app.state.fast_pool = ThreadPoolExecutor(limits.fast_threads, "digitrec-fast")
        app.state.slow_pool = ThreadPoolExecutor(
            limits.slow_threads, "digitrec-slow", None if slow_processes else lower_priority
        )
        yield
        app.state.slow_pool.shutdown(wait=False, cancel_futures=True)
        app.state.fast_pool.shutdown(wait=False, cancel_futures=True)
        if app.state.slow_workers is not None:
            app.state.slow_workers.close(wait=True)  # no request is left by now: they exit at once

    async def in_threads(
        request: Request, uploads: list[Upload], task: str, image28: bool = False, options: dict | None = None
    ) -> list[dict]:
        """Answer `task` ("predict" or "read") for the uploads in a thread, within the request's
        deadline. Slow work (reading, or more than `heavy_pixels` in all) goes through the slow pool
        to the worker processes (`web.workers`; in-process, threads the OS schedules after the
        others), so drawings and small images keep their latency beside it; heavy requests also take
        turns in the heavy lane (waiting on the event loop, holding no thread).

        Past the deadline the client is answered at once: 503 when the time went in waiting for a
        turn (the server is busy), 422 when it went in this request's own work (its images cost too
        much). A thread cannot be killed: a started one runs on, keeping its turn in the lane, until
        the budgets in decoding and reading stop it; one not started yet never starts. The deadline
        bounds the wait; those budgets bound the work."""
        state = request.app.state
        started: list[bool] = []  # set by the thread as the work starts

        def probe_then_answer() -> tuple[int, list[dict] | None]:
            # One trip to a thread for the usual request (a drawing, a photo): its headers are
            # probed and, when it is neither reading nor heavy, it is answered in the same trip.
            pixels = _header_pixels(uploads)
            if task == "read" or pixels > limits.heavy_pixels:
                return pixels, None
            started.append(True)
            return pixels, answer_task(state.recognizer, task, uploads, image28, options)

        def answer_slowly() -> list[dict]:
            started.append(True)
            if state.slow_workers is not None:
                return state.slow_workers.answer(task, uploads, image28, options)
            return answer_task(state.recognizer, task, uploads, image28, options)

        probing = True
        try:
            async with asyncio.timeout(limits.request_seconds):
                pixels, answers = await in_thread(probe_then_answer, pool=state.fast_pool)
                probing = False
                if answers is not None:
                    return answers
                if pixels <= limits.heavy_pixels:
                    return await in_thread(answer_slowly, pool=state.slow_pool)
                await state.heavy_lane.acquire()
                return await in_thread(answer_slowly, pool=state.slow_pool, done=state.heavy_lane.release)
        except TimeoutError:
            if not (probing or started):
                raise HTTPException(
                    503,
                    f"the server is busy with large images or reading: no turn came "
                    f"within the {limits.request_seconds:g} s limit; retry later",
                ) from None
            raise HTTPException(
                422, f"too much work: these images took longer than the {limits.request_seconds:g} s limit to process"
            ) from None

    # FastAPIOffline: FastAPI whose /docs and /redoc pages load their JS and CSS from this server.
    app = FastAPIOffline(
        title="digitrec",
        version=__version__,
        lifespan=lifespan,
        description="Recognise handwritten digits. Draw one at `/`, or POST images to `/v1/predict`.",
    )
    # The last added runs first: the guard, then the caps on POSTs at work and bytes held, then the body size.
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)
    app.add_middleware(InFlightLimit, max_in_flight=limits.max_in_flight, max_body_bytes=limits.max_body_bytes)
    app.add_middleware(RequestGuard, allowed_hosts=allowed_hosts)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        # One shape for every error, {"detail": "<message>"}, instead of FastAPI's list.
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return JSONResponse({"detail": f"{where}: {first['msg']}"}, status_code=422)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz", response_model=Health)
    def healthz(request: Request):
        return {"status": "ok", "model": request.app.state.recognizer.card.get("name", "unnamed")}

    @app.get("/v1/model", response_model=dict, summary="The model card: name, accuracy, input, labels")
    def model_card(request: Request):
        rec = request.app.state.recognizer
        # min_confidence: the server's threshold, which the page marks a number's digits against.
        return {**{key: rec.card[key] for key in PUBLIC_CARD if key in rec.card}, "min_confidence": rec.min_confidence}

    @app.post(
        "/v1/predict",
        response_model=PredictOut,
        response_model_exclude_unset=True,
        responses=ERRORS,
        openapi_extra=IMAGES_BODY,
        summary="The digit in each image",
    )
    async def predict(
        request: Request,
        image28: bool = Query(False, description="Also answer the 28x28 image the model saw, as base64 PNG."),
    ):
        uploads = await images_from_request(request, limits)
        return {"predictions": await in_threads(request, uploads, "predict", image28)}

    @app.post(
        "/v1/read",
        response_model=ReadOut,
        response_model_exclude_unset=True,
        responses=ERRORS,
        openapi_extra=IMAGES_BODY,
        summary="The whole number written in each image",
        description="Optional constraints, as form fields beside the files, fields beside `images` in a JSON "
        "body, or query parameters: `digits` "
        "(each number has exactly that many) and `pattern` (a regular expression over the digits that the "
        "whole number matches, e.g. `(19|20)\\d\\d`); the reader searches only readings that keep to them. "
        "`keep_punctuation` (true or false, the same three ways) keeps decimal points, separators and minus "
        "signs in the text (`7.50`).",
    )
    async def read(request: Request):
        uploads = await images_from_request(request, limits)
        options = await read_options(request)
        return {"readings": await in_threads(request, uploads, "read", options=options)}

    if collector is not None:
        add_collect_routes(app, collector, limits)
    add_reload_route(app, limits, processes=processes)
    return app


async def in_thread(function, *args, pool: Executor | None = None, done: Callable[[], None] | None = None):
    """`function(*args)` in `pool`, or in the shared thread pool. Unlike `run_in_threadpool` alone,
    cancelling the wait (the request's deadline) returns at once: a thread already running runs on,
    one not started in `pool` never starts; `done` is called when it has ended either way."""
    if pool is None:
        task = asyncio.ensure_future(run_in_threadpool(function, *args))
    else:
        future = pool.submit(function, *args)
        task = asyncio.wrap_future(future)

    def finished(task: asyncio.Future) -> None:
        if done is not None:
            done()
        if not task.cancelled():
            task.exception()  # retrieved, so an abandoned task's error is not logged as lost

    task.add_done_callback(finished)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if pool is not None:
            future.cancel()  # only takes when it has not started
        raise


def answer_task(
    recognizer: Recognizer, task: str, uploads: list[Upload], image28: bool = False, options: dict | None = None
) -> list[dict]:
    """The JSON answers to `task` ("predict" or "read") for the uploads (see `answer_each`): in a
    thread of the server, or in a slow-work process (`web.workers`). `options`: the reader's
    constraints (`web.read_options`)."""
    if task == "read":
        return answer_each(
            uploads, lambda images: _read_each(recognizer, images, options or {}), lambda reading: reading.to_dict()
        )
    return answer_each(
        uploads,
        lambda images: _predict_batch(recognizer, images),
        lambda prediction: _prediction_json(prediction, image28),
    )


def _header_pixels(uploads: list[Upload]) -> int:
    """All the pixels the uploads' headers declare (a header probe is decoding: never on the loop)."""
    return sum(image_pixels(data) for _, data in uploads if isinstance(data, bytes))


def answer_each(
    uploads: list[Upload], run: Callable[[list[bytes]], list], to_json: Callable[[object], dict]
) -> list[dict]:
    """Run `run` on the uploads -> one JSON-ready answer per upload, in order (an error answers
    for its image alone); 422 when no upload could be used."""
    answers: list = [data if isinstance(data, ImageError) else None for _, data in uploads]
    batch = [i for i, answer in enumerate(answers) if answer is None]  # the uploads worth decoding
    if batch:
        for i, answer in zip(batch, run([uploads[i][1] for i in batch])):
            answers[i] = answer
    if all(isinstance(a, DigitrecError) for a in answers):
        raise HTTPException(422, _describe_failures(uploads, answers))
    return [_error_json(a) if isinstance(a, DigitrecError) else to_json(a) for a in answers]


def _error_json(error: DigitrecError) -> dict:
    """An image's error, with its doubt reason when it has one ("no ink" for a blank image)."""
    reason = error.doubt_reason
    return {"error": str(error)} if reason is None else {"error": str(error), "reason": reason}


def _predict_batch(recognizer: Recognizer, images: list[bytes]) -> list:
    try:
        return recognizer.predict_many(images)
    except Exception:  # a runtime bug met by odd input: log it, never a 500; find the culprit
        log.exception("predict_many failed on a batch of %d; retrying one by one", len(images))
        return [_guarded(lambda image=image: recognizer.predict_many([image])[0]) for image in images]


def _read_each(recognizer: Recognizer, images: list[bytes], options: dict) -> list:
    return [_guarded(lambda image=image: recognizer.read(image, **options)) for image in images]


def _guarded(compute: Callable[[], object]):
    """The answer, or the DigitrecError that explains why not; any other exception is a bug met
    by odd input: logged, and answered as this image's error rather than a 500."""
    try:
        return compute()
    except DigitrecError as exc:
        return without_frames(exc)  # kept until the whole request is answered
    except Exception:
        log.exception("processing one image failed")
        return ImageError("this image could not be processed")


def _prediction_json(prediction, with_image28: bool) -> dict:
    answer = prediction.to_dict()
    answer["probabilities"] = [round(float(p), 6) for p in prediction.probabilities]
    if with_image28 and prediction.image28 is not None:
        answer["image28"] = png_base64(prediction.image28)
    return answer


def png_base64(image) -> str:
    ok, png = cv2.imencode(".png", image)
    return base64.b64encode(png.tobytes()).decode("ascii")


def _describe_failures(uploads: list[Upload], errors: list) -> str:
    if len(uploads) == 1:
        return str(errors[0])
    shown = "; ".join(f"{name}: {error}" for (name, _), error in zip(uploads[:3], errors[:3]))
    return shown + ("; ..." if len(uploads) > 3 else "")


def create_app_from_env() -> FastAPI:
    """App factory for `digitrec serve --workers N`: each worker process loads its own copy of the
    model named in DIGITREC_SERVE_MODEL (set by the command), one onnxruntime thread per request."""
    import json

    settings = json.loads(os.environ.get("DIGITREC_SERVE_SETTINGS") or "{}")
    return create_app(
        Recognizer(
            os.environ.get("DIGITREC_SERVE_MODEL") or None,
            threads=1,
            min_confidence=settings.get("min_confidence", DEFAULT_MIN_CONFIDENCE),
        ),
        limits=Limits(**settings.get("limits", {})),
        allowed_hosts=settings.get("allowed_hosts", LOCAL_HOSTS),
        slow_processes=True,
        collect=settings.get("collect"),
        processes=settings.get("processes", 2),
    )
