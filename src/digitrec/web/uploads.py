"""A request body -> the images in it, as (name, bytes): multipart `file` fields, or the JSON
`{"images": [base64, ...]}` that the drawing page sends."""

from __future__ import annotations

import base64
import binascii

from fastapi import HTTPException, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from digitrec.errors import ImageError
from digitrec.web.limits import Limits
from digitrec.web.schemas import ImagesIn

# An image is its bytes, or the error that stopped us getting them (bad base64): that error is
# answered for that image alone while the others are still read.
Upload = tuple[str, "bytes | ImageError"]


async def images_from_request(request: Request, limits: Limits) -> list[Upload]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "multipart/form-data":
            items = await _from_multipart(request, limits)
        elif content_type == "application/json" or content_type.endswith("+json"):
            # Parsing and base64 cost CPU in proportion to the body: in the thread pool, off the loop.
            items = await run_in_threadpool(_from_json, await request.body())
        else:
            raise HTTPException(415, "send the images as multipart/form-data (field 'file') or as "
                                     "application/json {\"images\": [base64, ...]}, "
                                     f"not {content_type or 'a body without a Content-Type'}")
    except ClientDisconnect:  # the client left, or was cut off for sending its body too slowly
        raise HTTPException(400, "the request body did not arrive") from None
    if not items:
        raise HTTPException(422, "no images in the request: send at least one")
    if len(items) > limits.max_images:
        raise HTTPException(422, f"too many images ({len(items)}; at most {limits.max_images} per request)")
    return items


async def _from_multipart(request: Request, limits: Limits) -> list[Upload]:
    # Starlette bounds the parts (too many -> 400) so a flood of tiny parts cannot eat memory.
    form = await request.form(max_files=2 * limits.max_images, max_fields=2 * limits.max_images)
    items = []
    for i, value in enumerate(form.getlist("file"), 1):
        if not isinstance(value, UploadFile):
            raise HTTPException(422, "the 'file' field must be a file upload, not text")
        items.append((value.filename or f"file {i}", await value.read()))
    if not items and form:
        raise HTTPException(422, f"upload the images in a form field named 'file' (got: {', '.join(form)})")
    return items


def _from_json(body: bytes) -> list[Upload]:
    # pydantic's own parser, not json.loads: it stops at 200 levels of nesting with a clear error,
    # where json.loads raised RecursionError (a 500) on 2 KB of brackets.
    try:
        payload = ImagesIn.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            reason = first["msg"].removeprefix("Invalid JSON: ")
            raise HTTPException(422, f"the body is not valid JSON ({reason})") from None
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise HTTPException(422, f"{where}: {first['msg']}") from None
    return [(f"image {i}", _decode_base64(text)) for i, text in enumerate(payload.images, 1)]


def _decode_base64(text: str) -> bytes | ImageError:
    if text.startswith("data:") and "," in text:  # a data URL, as canvas.toDataURL() makes
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return ImageError("not valid base64")
