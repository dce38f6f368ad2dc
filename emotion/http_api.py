"""The HTTP edge: read the image from a request, map typed errors to status codes, add CORS."""

from __future__ import annotations

import binascii
import functools
import io
import json
import logging
import time
from pathlib import Path
from typing import Any, cast

import flask
from werkzeug.exceptions import RequestEntityTooLarge

from emotion.config import parse_flag
from emotion.errors import (
    CorruptImageError,
    EmotionError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageError,
)
from emotion.labels import EMOTIONS
from emotion.pipeline import Analyzer
from emotion.result import Failure

log = logging.getLogger("emotion.http")

PAGE = Path(__file__).resolve().parent / "web" / "index.html"
#: The page is self-contained; nothing may load from elsewhere and it may only talk to its own origin.
PAGE_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
MULTIPART_OVERHEAD = 64 * 1024
#: Objects, arrays, members and elements a JSON body may hold (``{"image_base64": "data:...,..."}`` has 4).
MAX_JSON_VALUES = 1000
NO_IMAGE_DATA = "the request holds no image data"


class BadRequestError(EmotionError):
    """The request itself is malformed (missing field, bad JSON or base64, bad query value)."""

    code = "bad_request"


class UnsupportedMediaTypeError(EmotionError):
    """The request's content type is not one this endpoint reads."""

    code = "unsupported_media_type"


STATUS: dict[type[EmotionError], int] = {
    BadRequestError: 400,
    ImageTooLargeError: 413,
    InvalidImageError: 415,
    UnsupportedMediaTypeError: 415,
    CorruptImageError: 422,
    ImageTooSmallError: 422,
}


def status_of(error: EmotionError) -> int:
    """The status code for a typed error (its nearest mapped base class); unmapped ones are our fault."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def handle(request: flask.Request, analyzer: Analyzer) -> flask.Response:
    """Answer one request to ``analyze_http``; never raises."""
    started = time.perf_counter()
    try:
        response = _route(request, analyzer)
    except EmotionError as exc:
        response = failure_response(status_of(exc), Failure.of(exc))
    except RequestEntityTooLarge:
        limit = analyzer.settings.max_image_bytes
        message = f"the request body is over the limit ({limit} bytes)"
        if (request.content_length or 0) <= (request.max_content_length or 0):
            message = f"the multipart form has more than {request.max_form_parts} parts"
        response = failure_response(413, Failure(ImageTooLargeError.code, message))
    except Exception:  # a bug of ours: log it with its stack, answer with a JSON 500, keep serving
        log.exception("request failed", extra={"path": request.path})
        response = failure_response(500, Failure("internal", "internal error"))
    finally:
        # functions-framework reads the body again after the handler, to drain it. Werkzeug's capped stream
        # raises when read after it ended exactly at its cap (a body of exactly the limit: an HTML 500),
        # and an uncapped one would read a refused body into memory: let that read find nothing instead
        # (gunicorn discards what a client sent beyond what we read, in small chunks).
        request.max_content_length = None
        request.stream = io.BytesIO()
    _cors(response, analyzer.settings.cors_allow_origin)
    log.info(
        "request",
        extra={
            "method": request.method,
            "status": response.status_code,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return response


def _route(request: flask.Request, analyzer: Analyzer) -> flask.Response:
    if request.method == "OPTIONS":
        return flask.Response(status=204)
    if request.method in ("GET", "HEAD"):
        page = flask.Response(_page(analyzer.settings.max_image_bytes), 200, mimetype="text/html")
        page.headers["Content-Security-Policy"] = PAGE_CSP
        return page
    if request.method != "POST":
        response = failure_response(
            405, Failure("method_not_allowed", f"{request.method} is not allowed; POST an image")
        )
        response.headers["Allow"] = "GET, HEAD, POST, OPTIONS"
        return response
    preview = _flag(request.args.get("preview", "true"), "preview")
    max_bytes = analyzer.settings.max_image_bytes
    # The body is read once this request's analysis slot is free: waiting requests hold no bodies.
    return json_response(200, analyzer.analyze(lambda: read_image(request, max_bytes), preview=preview).to_json())


@functools.cache
def _page(max_bytes: int) -> bytes:
    """The web page, made once on the first GET (the POST-only path never pays for it), with this
    instance's file limit and the model's classes filled in, so the page never holds copies of them."""
    text = PAGE.read_text(encoding="utf-8")
    text = text.replace("{{max_image_bytes}}", str(max_bytes)).replace("{{emotions}}", json.dumps(list(EMOTIONS)))
    return text.encode("utf-8")


def read_image(request: flask.Request, max_bytes: int) -> bytes:
    """The image bytes from a multipart field ``image``, a raw ``image/*`` body or JSON ``image_base64``.

    An empty body is a bad request whatever its content type (there is nothing to be of a wrong type).
    """
    mimetype = request.mimetype
    if request.content_length == 0:
        raise BadRequestError(NO_IMAGE_DATA)
    if mimetype == "multipart/form-data":
        _cap_body(request, max_bytes + MULTIPART_OVERHEAD, max_bytes)
        upload = request.files.get("image")
        if upload is None:
            raise BadRequestError("the multipart form has no file field 'image'")
        data = upload.read(max_bytes + 1)
    elif mimetype.startswith("image/"):
        _cap_body(request, max_bytes, max_bytes)
        data = request.get_data(cache=False)
    elif mimetype == "application/json":
        _cap_body(request, max_bytes * 4 // 3 + 4 + MULTIPART_OVERHEAD, max_bytes)
        data = _from_json(request)
    else:
        if request.content_length is None and not request.stream.read(1):  # no length: chunked, or no body
            raise BadRequestError(NO_IMAGE_DATA)
        raise UnsupportedMediaTypeError(
            f"content type {mimetype or '(none)'} is not accepted; "
            "send multipart/form-data, image/* or application/json"
        )
    if not data:
        raise BadRequestError(NO_IMAGE_DATA)
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"the image is over the limit ({max_bytes} bytes)")
    return cast(bytes, data)  # (the multipart upload's read() is untyped; no copy of the image)


def _cap_body(request: flask.Request, cap: int, max_bytes: int) -> None:
    """Hold the body to ``cap`` bytes. Werkzeug refuses a longer declared Content-Length unread; a chunked
    body declares none, and Werkzeug's capped stream then just ends at the cap, cutting the body short (a
    cut image would be analyzed as a corrupt one): such a body is read here to one byte past the cap."""
    if request.content_length is not None:
        request.max_content_length = cap
        return
    request.max_content_length = cap + 1
    body = request.stream.read()
    if len(body) > cap:
        raise ImageTooLargeError(f"the request body is over the limit ({max_bytes} bytes)")
    request.stream = io.BytesIO(body)


def _from_json(request: flask.Request) -> bytes:
    """``image_base64`` of a JSON body, parsed in bounded memory: a body with more than a few hundred
    values is refused before parsing (millions of ``{}`` would take gigabytes as Python objects), and
    each copy of the large string is dropped as soon as the next one exists."""
    body = request.get_data(cache=False)
    values = sum(body.count(mark) for mark in (b"{", b"[", b",", b":"))
    if values > MAX_JSON_VALUES:
        raise BadRequestError(f'the JSON body has about {values} values; send one object with "image_base64"')
    try:
        text = body.decode("utf-8")
        del body
        payload = json.loads(text)
        del text
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadRequestError(f"the body is not valid UTF-8 JSON: {type(exc).__name__}") from exc
    encoded = payload.pop("image_base64", None) if isinstance(payload, dict) else None
    del payload
    if not isinstance(encoded, str):
        raise BadRequestError('the JSON body needs a string field "image_base64"')
    try:
        ascii_text = encoded.encode("ascii")
    except UnicodeEncodeError as exc:
        raise BadRequestError(f'"image_base64" is not valid base64: {exc.reason}') from exc
    del encoded
    start = ascii_text.index(b",") + 1 if ascii_text.startswith(b"data:") and b"," in ascii_text else 0
    if any(space in ascii_text for space in (b" ", b"\n", b"\r", b"\t")):  # wrapped lines, as base64 tools write
        ascii_text = ascii_text[start:].translate(None, b" \n\r\t")
        start = 0
    try:
        return binascii.a2b_base64(memoryview(ascii_text)[start:], strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError(f'"image_base64" is not valid base64: {exc}') from exc


def _flag(value: str, name: str) -> bool:
    """A query flag; present without a value (``?preview``) means true."""
    if not value.strip():
        return True
    try:
        return parse_flag(value)
    except ValueError:
        raise BadRequestError(f"query parameter {name!r} must be true or false, not {value!r}") from None


def json_response(status: int, body: dict[str, Any]) -> flask.Response:
    response = flask.Response(json.dumps(body), status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def failure_response(status: int, failure: Failure) -> flask.Response:
    """The one error shape every endpoint uses: ``{"error": {"code", "message"}}`` (``Failure.to_json``)."""
    return json_response(status, failure.to_json())


def _cors(response: flask.Response, origin: str) -> None:
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
    response.headers["Access-Control-Max-Age"] = "3600"
    if origin != "*":
        response.headers["Vary"] = "Origin"
