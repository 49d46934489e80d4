"""POST /v1/read's options, `digits`, `pattern` and `keep_punctuation` (as `digitrec read
--digits/--pattern/--keep-punctuation`): form fields beside the `file` parts of a multipart body,
fields beside `images` in a JSON body, or query parameters."""

from __future__ import annotations

import json

from fastapi import HTTPException, Request

from digitrec.read.pattern import PatternError, constraint
from digitrec.web.uploads import _parsed

FIELDS = ("digits", "pattern", "keep_punctuation")
# A bare `?keep_punctuation` (or an empty field) asks for it, as a flag does.
YES, NO = ("true", "t", "1", "yes", "y", "on", ""), ("false", "f", "0", "no", "n", "off")
MAX_FIELD_BYTES = 1000  # a pattern longer than this is not a number's shape


async def read_options(request: Request) -> dict:
    """-> {"digits": int, "pattern": str, "keep_punctuation": True} (only those given), checked:
    422 with the reason when `digits` is not a whole number, the pattern cannot be used, or
    `keep_punctuation` is not true or false."""
    found = dict(_query_fields(request))
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        body = await request.body()  # already read (and size-checked) for the images: cached
        if any(b'name="%s"' % name.encode() in body for name in FIELDS):  # parsed again only then
            found.update(_form_fields(body, content_type))
    elif kind == "application/json" or kind.endswith("+json"):  # as `uploads` takes JSON
        body = await request.body()  # already read, and parsed for the images: valid JSON
        if any(b'"%s"' % name.encode() in body for name in FIELDS):  # base64 holds no quotes
            found.update(await _parsed(_json_fields, body))  # a large body off the event loop
    options: dict = {}
    if found.get("digits") not in (None, ""):
        try:
            options["digits"] = int(found["digits"])
        except ValueError:
            raise HTTPException(422, f"digits: a whole number of digits, not {found['digits']!r}") from None
    if found.get("pattern") not in (None, ""):
        options["pattern"] = found["pattern"]
    try:
        constraint(**options)
    except PatternError as exc:
        raise HTTPException(422, str(exc)) from None
    keep = found.get("keep_punctuation")
    if keep is not None:
        if keep.strip().lower() not in YES + NO:
            raise HTTPException(422, f"keep_punctuation: true or false, not {keep!r}")
        options["keep_punctuation"] = keep.strip().lower() in YES
    return options


def _json_fields(body: bytes) -> dict[str, str]:
    """The options beside `images` in a JSON body, as text (a number 5 -> "5", true -> "true")."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return {}  # the images' own parse has already said what is wrong with the body
    if not isinstance(payload, dict):
        return {}
    return {name: _text(payload[name]) for name in FIELDS if payload.get(name) is not None}


def _text(value) -> str:
    """A JSON value as a form field would give it: 5 -> "5", true -> "true"."""
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _query_fields(request: Request):
    for name in FIELDS:
        if name in request.query_params:
            yield name, request.query_params[name]


def _form_fields(body: bytes, content_type: str, fields: tuple[str, ...] = FIELDS) -> dict[str, str]:
    """The text parts named in `fields` of a multipart body (the file parts skipped, unread)."""
    from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        return {}
    parts: list[list] = []  # [name, bytes so far]
    header = bytearray()

    def header_value(data: bytes, start: int, end: int) -> None:
        header.extend(data[start:end])

    def header_end() -> None:
        options = parse_options_header(bytes(header))[1]
        name = options.get(b"name")
        if name is not None and b"filename" not in options and not parts[-1][0]:
            parts[-1][0] = name.decode("utf-8", "replace")
        header.clear()

    def data(chunk: bytes, start: int, end: int) -> None:
        if parts[-1][0] in fields:
            parts[-1][1].extend(chunk[start:end])
            if len(parts[-1][1]) > MAX_FIELD_BYTES:
                raise HTTPException(422, f"{parts[-1][0]}: longer than {MAX_FIELD_BYTES} bytes")

    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": lambda: parts.append(["", bytearray()]),
            "on_header_field": lambda data, start, end: header.clear(),
            "on_header_value": header_value,
            "on_header_end": header_end,
            "on_part_data": data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError:
        return {}  # the images' own parse has already said what is wrong with the body
    return {name: bytes(value).decode("utf-8", "replace").strip() for name, value in parts if name in fields}
