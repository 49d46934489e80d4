"""Two routes that change what the server knows, added by `create_app`:

/v1/corrections  (only with `serve --collect DIR`): the page's "Wrong? It's a _" saves the drawing
                 and its right label in DIR (`web.collect`), for `digitrec finetune DIR`.
/v1/reload       (from this machine only): load another model file (or the same file again, after
                 `digitrec finetune` wrote over it) without a restart; requests keep being answered
                 by the old model until the new one, and its slow-work processes, are ready.
"""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field, ValidationError

from digitrec.errors import DataError, DigitrecError, ImageError
from digitrec.runtime import Recognizer
from digitrec.web.collect import Collector, TooLarge
from digitrec.web.limits import Limits
from digitrec.web.read_options import _form_fields
from digitrec.web.schemas import ErrorOut
from digitrec.web.uploads import _decode_base64, _parsed, images_from_request


class CorrectionFields(BaseModel):
    """A correction less its image: the form fields beside a multipart upload's 'file'."""

    label: str = Field(..., description="What it shows: one digit (kind digit) or the number's digits.")
    kind: str = Field("digit", description="'digit' (a predict answer corrected) or 'number' (a reading).")
    predicted: str | None = Field(None, description="What the model had answered, kept beside the label.")


class CorrectionIn(CorrectionFields):
    image: str = Field(..., description="The image as base64 (a `data:image/png;base64,` prefix is allowed).")


class CorrectionOut(BaseModel):
    path: str = Field(..., description="Where the image was saved, relative to the collect folder.")
    label: str
    kind: str


class CollectingOut(BaseModel):
    digits: int = Field(..., description="Corrected digits saved so far (rows of manifest.csv).")
    numbers: int = Field(..., description="Corrected numbers saved so far (rows of numbers.csv).")


class ReloadIn(BaseModel):
    model: str | None = Field(
        None,
        description="The model file to load (absolute, or relative to where the server started); "
        "none: the file in use, read again.",
    )


class ReloadOut(BaseModel):
    model: str = Field(..., description="The name on the model card now in use.")
    previous: str = Field(..., description="The name of the model it replaced.")


def _errors(codes: dict[int, str]) -> dict:
    return {code: {"model": ErrorOut, "description": text} for code, text in codes.items()}


def add_collect_routes(app: FastAPI, collector: Collector, limits: Limits) -> None:
    @app.get("/v1/corrections", response_model=CollectingOut, summary="How many corrections are saved")
    def collecting():
        return collector.counts()

    @app.post(
        "/v1/corrections",
        status_code=201,
        response_model=CorrectionOut,
        responses=_errors(
            {
                413: "The image (or the body) is over the size limit.",
                415: "The body is neither JSON nor multipart/form-data.",
                422: "A label that is not a digit (or a number's digits), or an image that cannot be read or has no ink.",
                507: "The correction could not be written (the disk is nearly full, or refuses).",
            }
        ),
        summary="Save a drawing with its right label (serve --collect)",
    )
    async def correct(request: Request):
        from digitrec.web.app import in_thread  # the app's deadline-aware thread hop (app imports this module)

        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":  # an uploaded file, as it was sent to be read
            image, fields = await _from_multipart(request, limits)
        elif content_type == "application/json":
            image, fields = await _from_json(request)
        else:
            raise HTTPException(
                415,
                'send the correction as application/json {"image": base64, "label": "7"}, or as '
                "multipart/form-data (the image in field 'file', and a field 'label')",
            )
        try:
            async with asyncio.timeout(limits.request_seconds):
                saved = await in_thread(collector.add, image, fields.label, fields.kind, fields.predicted)
        except TimeoutError:
            raise HTTPException(
                422, f"the image took longer than the {limits.request_seconds:g} s limit to check"
            ) from None
        except TooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except (DataError, ImageError) as exc:
            raise HTTPException(422, str(exc)) from None
        except DigitrecError as exc:  # the disk: full, read-only, removed
            raise HTTPException(507, f"the correction could not be saved: {exc}") from None
        return saved.to_dict()


async def _from_json(request: Request) -> tuple[bytes, CorrectionIn]:
    try:
        body = CorrectionIn.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _invalid(exc) from None
    image = _decode_base64(body.image)
    if isinstance(image, ImageError):
        raise HTTPException(422, f"image: {image}")
    return image, body


async def _from_multipart(request: Request, limits: Limits) -> tuple[bytes, CorrectionFields]:
    """The page sends an uploaded photo this way: base64 in JSON would make a 15 MB photo, which
    the server reads, too large for the request limit."""
    uploads = await images_from_request(request, limits)  # 422 when there is no 'file'
    if len(uploads) != 1:
        raise HTTPException(422, f"a correction is one image, not {len(uploads)}")
    image = uploads[0][1]
    assert isinstance(image, bytes)  # only base64 yields an ImageError here
    names = tuple(CorrectionFields.model_fields)
    found = await _parsed(_form_fields, await request.body(), request.headers["content-type"], names)  # off the loop
    try:
        return image, CorrectionFields.model_validate(found)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> HTTPException:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return HTTPException(422, f"{where}: {first['msg']}")


def from_this_machine(request: Request) -> bool:
    """The client's address is a loopback one (127.0.0.0/8, ::1, or ::ffff:127.x). uvicorn takes it
    from X-Forwarded-For only when the proxy itself is on this machine; a proxy that does not set it
    makes every client look local: see docs/serve.md."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def add_reload_route(app: FastAPI, limits: Limits, *, processes: int = 1) -> None:
    """`processes` > 1: the app is one of `serve --workers N`, where a reload would reach one of
    them only; it is refused (409) rather than leave them serving different models."""
    swapping = asyncio.Lock()  # one reload at a time (bound to the serving loop on first use)

    @app.post(
        "/v1/reload",
        response_model=ReloadOut,
        responses=_errors(
            {
                403: "The request does not come from this machine.",
                409: "The server runs several processes (--workers N).",
                422: "The model file is missing or not a digit model; the old one stays in use.",
            }
        ),
        summary="Load another model without a restart (from this machine only)",
    )
    async def reload(request: Request):
        from digitrec.web.app import in_thread
        from digitrec.web.workers import SlowWorkers

        if not from_this_machine(request):
            raise HTTPException(403, "a reload is only accepted from the machine the server runs on")
        if processes > 1:
            raise HTTPException(
                409,
                f"this server runs {processes} processes (--workers): a reload would reach one of them; "
                "restart it with --model instead",
            )
        body = await request.body()
        try:
            wanted = ReloadIn.model_validate_json(body) if body.strip() else ReloadIn()
        except ValidationError as exc:
            raise HTTPException(422, f"body: {exc.errors()[0]['msg']}") from None
        state = request.app.state
        async with swapping:
            old = state.recognizer
            path = Path(wanted.model).expanduser() if wanted.model else old.path

            def load() -> Recognizer:
                new = Recognizer(path, threads=old.threads, min_confidence=old.min_confidence)
                _ = new.reader  # as at start-up: a broken reader fails here, not later
                return new

            try:
                new = await in_thread(load)
            except DigitrecError as exc:
                raise HTTPException(422, f"{exc} (the model in use is unchanged)") from None
            old_workers, workers = state.slow_workers, None
            if old_workers is not None:
                # Started from a slow-pool thread, which lives as long as the server (as the first ones
                # were from the event loop's): the workers die with the thread that started them.
                try:
                    workers = await in_thread(
                        SlowWorkers, new.path, new.min_confidence, limits.slow_threads, pool=state.slow_pool
                    )
                except (RuntimeError, OSError) as exc:  # no process could start: out of memory, a limit
                    raise HTTPException(
                        503, f"the reading processes could not start ({exc}); the model in use is unchanged"
                    ) from None
            state.recognizer, state.slow_workers = new, workers
            if old_workers is not None:
                # Its work in progress and queued finishes there; a request that still holds it goes to the new ones.
                old_workers.close(successor=workers)
        return {"model": new.card.get("name", new.path.stem), "previous": old.card.get("name", old.path.stem)}
