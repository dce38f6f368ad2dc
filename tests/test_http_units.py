"""The HTTP edge, pinned exactly through ``handle`` on Werkzeug's in-process client: status and ``code`` of
each refusal, which size guard answered, the headers every answer carries, the CORS variants, and the
three ways to send an image. Fast (no server process), so the mutation runs use it first."""

from __future__ import annotations

import base64
import io
import json
import logging
import types
from collections.abc import Callable

import flask
import numpy as np
import pytest
from PIL import Image

from emotion.config import Settings
from emotion.errors import (
    CorruptImageError,
    EmotionError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageError,
    ModelError,
)
from emotion.http_api import BadRequestError, UnsupportedMediaTypeError, handle
from emotion.pipeline import Analyzer
from emotion.result import Result

LIMIT = 50_000
#: Documented limits, as numbers (a test reading the constant it checks would follow a changed constant).
MAX_JSON_VALUES = 1000
MULTIPART_OVERHEAD = 64 * 1024  # what a multipart body may hold besides the image


class _Raising(Analyzer):
    """A real analyzer whose analysis raises ``error`` once the image is read (for the error mapping)."""

    error: BaseException

    def analyze(self, data: Callable[[], bytes] | bytes, *, preview: bool = True) -> Result:
        if callable(data):
            data()
        raise self.error


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(Settings(max_image_bytes=LIMIT))


def _client(analyzer: Analyzer):
    app = flask.Flask(__name__)
    app.add_url_rule("/", "analyze", lambda: handle(flask.request, analyzer), methods=["GET", "HEAD", "POST",
                     "OPTIONS", "PUT", "DELETE"])  # fmt: skip
    return app.test_client()


@pytest.fixture(scope="module")
def client(analyzer: Analyzer):
    return _client(analyzer)


@pytest.fixture(scope="module")
def png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 90, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _error(response, status: int, code: str, message: str = "") -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert message in body["error"]["message"], body


def _plain_headers(response) -> None:
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type, Authorization"
    assert response.headers["Access-Control-Max-Age"] == "3600"
    assert "Vary" not in response.headers


def test_a_raw_image_is_analyzed_with_the_json_headers(client, png: bytes) -> None:
    response = client.post("/", data=png, content_type="image/png")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert [face["detection"] for face in response.get_json()["faces"]] == ["whole_image"]
    assert "preview" in response.get_json()
    _plain_headers(response)


@pytest.mark.parametrize(("value", "preview"), [("false", False), (" OFF ", False), ("0", False), ("no", False),
                                                ("", True), ("Yes", True), ("1", True), ("on", True)])  # fmt: skip
def test_the_preview_flag(client, png: bytes, value: str, preview: bool) -> None:
    response = client.post(f"/?preview={value}", data=png, content_type="image/png")
    assert response.status_code == 200
    assert ("preview" in response.get_json()) is preview


def test_a_bad_preview_flag_is_a_bad_request(client, png: bytes) -> None:
    response = client.post("/?preview=maybe", data=png, content_type="image/png")
    _error(response, 400, "bad_request", "query parameter 'preview' must be true or false, not 'maybe'")
    _plain_headers(response)


def test_multipart_upload_and_its_missing_field(client, png: bytes) -> None:
    ok = client.post("/", data={"image": (io.BytesIO(png), "a.png")}, content_type="multipart/form-data")
    assert ok.status_code == 200
    missing = client.post("/", data={"photo": (io.BytesIO(png), "a.png")}, content_type="multipart/form-data")
    _error(missing, 400, "bad_request", "no file field 'image'")


def test_json_base64_plain_data_url_and_wrapped(client, png: bytes) -> None:
    encoded = base64.b64encode(png).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + "\r\n"
    for value in (encoded, "data:image/png;base64," + encoded, wrapped, "data:image/png;base64,\t" + wrapped):
        response = client.post("/", json={"image_base64": value})
        assert response.status_code == 200, (value[:40], response.get_data(as_text=True))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"image_base64": "iVBORw0KGgo*"}', "not valid base64"),
        (b'{"image_base64": "iVBORw0KGgo"}', "not valid base64"),  # bad padding
        ('{"image_base64": "\u00e9t\u00e9"}'.encode(), "not valid base64"),
        (b'{"image_base64": "data:image/png;base64,!!!!"}', "not valid base64"),
        (b'{"image_base64": "x,iVBORw0KGgo="}', "not valid base64"),  # a comma, but no data URL
        (b'{"image_base64": "data:iVBORw0KGgo="}', "not valid base64"),  # data:, but no comma
        (b'{"image_base64": 12}', 'needs a string field "image_base64"'),
        (b'{"image": "iVBORw0KGgo="}', 'needs a string field "image_base64"'),
        (b'["image_base64"]', 'needs a string field "image_base64"'),
        (b'{"image_base64": ', "not valid UTF-8 JSON: JSONDecodeError"),
        (b'{"image_base64": "\xff"}', "not valid UTF-8 JSON: UnicodeDecodeError"),
        (b'{"image_base64": ""}', "holds no image data"),
    ],
)
def test_bad_json_bodies_are_bad_requests(client, body: bytes, message: str) -> None:
    _error(client.post("/", data=body, content_type="application/json"), 400, "bad_request", message)


def test_a_json_body_with_too_many_values_is_refused_before_parsing(client) -> None:
    at_limit = b"[" + b"0," * (MAX_JSON_VALUES - 1) + b"0]"
    _error(client.post("/", data=at_limit, content_type="application/json"), 400, "bad_request", "string field")
    over = b"[" + b"0," * MAX_JSON_VALUES + b"0]"
    _error(
        client.post("/", data=over, content_type="application/json"),
        400,
        "bad_request",
        f"the JSON body has about {MAX_JSON_VALUES + 1} values",
    )


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", None])
def test_other_content_types_are_unsupported(client, png: bytes, content_type: str | None) -> None:
    response = client.post("/", data=png, content_type=content_type)
    _error(response, 415, "unsupported_media_type", f"content type {content_type or '(none)'} is not accepted")


def test_an_empty_image_body_is_a_bad_request(client) -> None:
    _error(client.post("/", data=b"", content_type="image/jpeg"), 400, "bad_request", "holds no image data")


def test_the_byte_limit_is_inclusive_for_each_way_in(client) -> None:
    """A body of exactly the limit reaches the decoder (not an image: 415); one byte more is refused, by
    the guard of that way in."""
    exact, over = b"x" * LIMIT, b"x" * (LIMIT + 1)
    _error(client.post("/", data=exact, content_type="image/png"), 415, "unsupported_image")
    _error(client.post("/", data=over, content_type="image/png"), 413, "image_too_large",
           f"the request body is over the limit ({LIMIT} bytes)")  # fmt: skip
    form = {"image": (io.BytesIO(exact), "x.png")}
    _error(client.post("/", data=form, content_type="multipart/form-data"), 415, "unsupported_image")
    form = {"image": (io.BytesIO(over), "x.png")}
    _error(client.post("/", data=form, content_type="multipart/form-data"), 413, "image_too_large",
           f"the image is over the limit ({LIMIT} bytes)")  # fmt: skip
    for data, status in ((exact, 415), (over, 413)):
        response = client.post("/", json={"image_base64": base64.b64encode(data).decode()})
        assert response.status_code == status
    _error(client.post("/", json={"image_base64": base64.b64encode(over).decode()}), 413, "image_too_large",
           f"the image is over the limit ({LIMIT} bytes)")  # fmt: skip


def test_bodies_over_each_ways_cap_are_refused_unread(client) -> None:
    big = b"x" * (LIMIT + MULTIPART_OVERHEAD + 1024)
    form = {"image": (io.BytesIO(big), "x.png")}
    _error(client.post("/", data=form, content_type="multipart/form-data"), 413, "image_too_large",
           "the request body is over the limit")  # fmt: skip
    cap = LIMIT * 4 // 3 + 4 + MULTIPART_OVERHEAD
    _error(client.post("/", data=b" " * (cap + 1), content_type="application/json"), 413, "image_too_large",
           "the request body is over the limit")  # fmt: skip
    _error(client.post("/", data=b" " * cap, content_type="application/json"), 400, "bad_request")


def test_a_form_of_too_many_parts_says_so() -> None:
    client = _client(Analyzer(Settings(max_image_bytes=200_000)))  # 1001 parts take about 122 kB
    form = {f"f{i}": "x" for i in range(1001)}
    _error(client.post("/", data=form, content_type="multipart/form-data"), 413, "image_too_large",
           "the multipart form has more than 1000 parts")  # fmt: skip


def test_a_form_of_too_many_parts_at_exactly_the_cap_says_so() -> None:
    """A body of exactly the cap is within it: too many parts is what is wrong with it."""
    limit = 200_000
    boundary = "b0undary"
    parts = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n' for i in range(1001))
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="pad"\r\n\r\n'
    end = f"\r\n{parts}--{boundary}--\r\n"
    pad = limit + MULTIPART_OVERHEAD - len(head) - len(end)
    body = (head + "p" * pad + end).encode()
    assert len(body) == limit + MULTIPART_OVERHEAD
    client = _client(Analyzer(Settings(max_image_bytes=limit)))
    response = client.post("/", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    _error(response, 413, "image_too_large", "the multipart form has more than 1000 parts")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (BadRequestError("x"), 400, "bad_request"),
        (ImageTooLargeError("x"), 413, "image_too_large"),
        (InvalidImageError("x"), 415, "unsupported_image"),
        (UnsupportedMediaTypeError("x"), 415, "unsupported_media_type"),
        (CorruptImageError("x"), 422, "corrupt_image"),
        (ImageTooSmallError("x"), 422, "image_too_small"),
        (ModelError("x"), 500, "model_error"),
        (EmotionError("x"), 500, "internal"),
        (type("Sub", (CorruptImageError,), {"code": "sub"})("x"), 422, "sub"),
    ],
)
def test_typed_errors_map_to_their_status(error: EmotionError, status: int, code: str, png: bytes) -> None:
    analyzer = _Raising(Settings(max_image_bytes=LIMIT))
    analyzer.error = error
    response = _client(analyzer).post("/", data=png, content_type="image/png")
    _error(response, status, code, "x")
    _plain_headers(response)


def test_a_bug_is_a_logged_500_and_serving_goes_on(png: bytes, caplog: pytest.LogCaptureFixture) -> None:
    analyzer = _Raising(Settings(max_image_bytes=LIMIT))
    analyzer.error = ValueError("boom")
    client = _client(analyzer)
    with caplog.at_level(logging.INFO, logger="emotion.http"):
        response = client.post("/", data=png, content_type="image/png")
    _error(response, 500, "internal", "internal error")
    assert "boom" not in response.get_data(as_text=True)
    failed = [r for r in caplog.records if r.getMessage() == "request failed"]
    assert len(failed) == 1 and failed[0].exc_info and vars(failed[0])["path"] == "/"
    done = [vars(r) for r in caplog.records if r.getMessage() == "request"]  # the fields given with extra=
    assert done[-1]["status"] == 500 and done[-1]["method"] == "POST" and done[-1]["ms"] >= 0


def test_other_methods_are_405_with_allow(client) -> None:
    for method in ("PUT", "DELETE"):
        response = client.open("/", method=method)
        _error(response, 405, "method_not_allowed", f"{method} is not allowed")
        assert response.headers["Allow"] == "GET, HEAD, POST, OPTIONS"
        _plain_headers(response)


def test_preflight_and_page(client) -> None:
    preflight = client.options("/")
    assert preflight.status_code == 204 and preflight.get_data() == b""
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert preflight.headers["Access-Control-Max-Age"] == "3600"
    for method in ("GET", "HEAD"):
        page = client.open("/", method=method)
        assert page.status_code == 200 and page.mimetype == "text/html"
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        assert page.headers["Access-Control-Allow-Origin"] == "*"
    assert b"<html" in client.get("/").get_data().lower()


def test_a_named_origin_varies_the_answer_by_origin(png: bytes) -> None:
    client = _client(Analyzer(Settings(max_image_bytes=LIMIT, cors_allow_origin="https://app.example")))
    for response in (client.post("/", data=png, content_type="image/png"), client.options("/"), client.get("/")):
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert response.headers["Vary"] == "Origin"


def test_the_analysis_answer_is_the_analyzers(client, analyzer: Analyzer, png: bytes) -> None:
    body = client.post("/?preview=false", data=png, content_type="image/png").get_json()
    expected = analyzer.analyze(png, preview=False).to_json()
    for key in ("timing_ms",):
        body.pop(key, None), expected.pop(key, None)
    assert json.dumps(body, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_each_request_is_logged_with_its_method_status_and_milliseconds(
    client, png: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="emotion.http"):
        client.post("/", data=png, content_type="image/png")
        client.options("/")
    lines = [vars(r) for r in caplog.records if r.getMessage() == "request"]  # the fields given with extra=
    assert [(r["method"], r["status"]) for r in lines] == [("POST", 200), ("OPTIONS", 204)]
    assert lines[0]["ms"] >= 1.0  # an analysis takes milliseconds, not microseconds
    assert lines[0]["ms"] == round(lines[0]["ms"], 1)


def test_the_logged_time_is_in_milliseconds(client, caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    """Timed from the request's start to its end, in milliseconds to a tenth: 62.5 ms on a clock read as
    10 s and then 10.0625 s (both exact in binary)."""
    readings = iter([10.0, 10.0625])
    monkeypatch.setattr("emotion.http_api.time", types.SimpleNamespace(perf_counter=lambda: next(readings)))
    with caplog.at_level(logging.INFO, logger="emotion.http"):
        client.options("/")
    (line,) = [vars(r) for r in caplog.records if r.getMessage() == "request"]
    assert line["ms"] == 62.5
