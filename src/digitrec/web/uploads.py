"""A request body -> the images in it, as (name, bytes): multipart `file` fields, or the JSON
`{"images": [base64, ...]}` that the drawing page sends."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from fastapi import HTTPException, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
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
            items = await _parsed(_from_multipart, await request.body(), request.headers["content-type"], limits)
        elif content_type == "application/json" or content_type.endswith("+json"):
            items = await _parsed(_from_json, await request.body())
        else:
            raise HTTPException(
                415,
                "send the images as multipart/form-data (field 'file') or as "
                'application/json {"images": [base64, ...]}, '
                f"not {content_type or 'a body without a Content-Type'}",
            )
    except ClientDisconnect:  # the client left, or was cut off for sending its body too slowly
        raise HTTPException(400, "the request body did not arrive") from None
    if not items:
        raise HTTPException(422, "no images in the request: send at least one")
    if len(items) > limits.max_images:
        raise HTTPException(422, f"too many images ({len(items)}; at most {limits.max_images} per request)")
    return items


# Bodies up to this size are parsed on the event loop: a drawing or a small scan parses in tens of
# microseconds, less than a trip to a thread costs (at 16 clients flat out, that trip cost ~10% of
# the throughput). Parsing (and base64) cost CPU in proportion to the body, so larger ones are
# parsed in the thread pool, off the loop.
INLINE_PARSE_BYTES = 64 * 1024


async def _parsed(parse: Callable[..., list[Upload]], body: bytes, *args: object) -> list[Upload]:
    if len(body) <= INLINE_PARSE_BYTES:
        return parse(body, *args)
    return await run_in_threadpool(parse, body, *args)


def _from_multipart(body: bytes, content_type: str, limits: Limits) -> list[Upload]:
    """The `file` parts of a multipart/form-data body, in order. Parsed here (in a thread, for a large
    body) from the whole body (at most `max_body_bytes`): Starlette's own form parser runs on the event loop and
    spills parts over 1 MB to temporary files a chunk at a time, so a 17 MB upload stalled every
    other request for tens of milliseconds."""
    from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise HTTPException(400, "malformed multipart body: no boundary in its Content-Type")
    max_parts = 4 * limits.max_images  # files and other fields; more is a flood, not a request
    parts: list[tuple[dict[bytes, bytes], list[bytes]]] = []
    field, value = bytearray(), bytearray()

    def begin() -> None:
        if len(parts) >= max_parts:
            raise HTTPException(
                400,
                f"too many parts in the multipart body (at most {max_parts}; a request takes at most "
                f"{limits.max_images} images: send the others in more requests)",
            )
        parts.append(({}, []))

    def header_end() -> None:
        parts[-1][0][bytes(field).lower()] = bytes(value)
        field.clear()
        value.clear()

    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": begin,
            "on_header_field": lambda data, start, end: field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: value.extend(data[start:end]),
            "on_header_end": header_end,
            "on_part_data": lambda data, start, end: parts[-1][1].append(data[start:end]),
            "on_end": lambda: ended.append(True),  # the closing boundary: only there
        },
    )
    ended: list[bool] = []
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise HTTPException(400, f"malformed multipart body ({exc})") from None
    if not ended:  # its last part may be a truncated image that still decodes, to a wrong answer
        raise HTTPException(400, "malformed multipart body: it breaks off before its closing boundary")
    items: list[Upload] = []
    others = []
    for headers, chunks in parts:
        options = parse_options_header(headers.get(b"content-disposition", b""))[1]
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name != "file":
            others.append(name)
            continue
        filename = options.get(b"filename")
        if filename is None:
            raise HTTPException(422, "the 'file' field must be a file upload, not text")
        items.append((filename.decode("utf-8", "replace") or f"file {len(items) + 1}", b"".join(chunks)))
    if not items and others:
        raise HTTPException(422, f"upload the images in a form field named 'file' (got: {', '.join(others)})")
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
