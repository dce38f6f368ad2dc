"""Chunked request bodies (no Content-Length) against the real server: held to the same limits as the others.

Werkzeug refuses a declared length over the cap before reading, but a chunked body declares none, and its
capped stream then just ends at the cap: before the fix such a body was cut short and analyzed (a cut
image answered as a corrupt one, 422; a cut JSON body as bad JSON, 400) instead of refused with 413.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import requests

from emotion.config import Settings

LIMIT = Settings().max_image_bytes  # the session server runs at the defaults
MULTIPART_OVERHEAD = 64 * 1024


def _chunks(data: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    """A generator body: ``requests`` sends it with ``Transfer-Encoding: chunked``."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _post(url: str, data: bytes, content_type: str) -> requests.Response:
    return requests.post(url, data=_chunks(data), headers={"Content-Type": content_type}, timeout=120)


def test_a_chunked_body_over_the_limit_is_refused_not_cut(http_server: str, validate_error) -> None:
    response = _post(http_server, b"x" * (LIMIT + 1), "image/png")
    assert response.status_code == 413, response.text[:300]
    body = validate_error(response.json(), "image_too_large")
    assert body["error"]["message"] == f"the request body is over the limit ({LIMIT} bytes)"


def test_a_chunked_body_at_the_limit_is_read_whole(http_server: str, astronaut_jpeg: bytes, validate_error) -> None:
    padded = astronaut_jpeg + b"\x00" * (LIMIT - len(astronaut_jpeg))  # bytes after the JPEG's end are ignored
    response = _post(http_server, padded, "image/jpeg")
    assert response.status_code == 200, response.text[:300]
    assert response.json()["faces"]


def test_chunked_json_and_multipart_over_their_caps_are_refused(http_server: str, validate_error) -> None:
    cap = LIMIT * 4 // 3 + 4 + MULTIPART_OVERHEAD
    response = _post(http_server, b" " * (cap + 1), "application/json")
    assert response.status_code == 413, response.text[:300]
    validate_error(response.json(), "image_too_large")
    small = json.dumps({"image_base64": base64.b64encode(b"x" * 100).decode()}).encode()
    assert _post(http_server, small, "application/json").status_code == 415
    form = requests.Request("POST", http_server, files={"image": ("a.jpg", b"x" * (LIMIT + MULTIPART_OVERHEAD))})
    prepared = form.prepare()
    body, content_type = prepared.body, prepared.headers["Content-Type"]
    assert isinstance(body, bytes) and isinstance(content_type, str)  # what requests encodes a form as
    response = _post(http_server, body, content_type)
    assert response.status_code == 413, response.text[:300]
    validate_error(response.json(), "image_too_large")


def test_a_chunked_json_body_of_exactly_its_cap_is_read_to_its_last_byte(http_server: str, validate_error) -> None:
    """The closing brace is the body's last byte: a body cut by even one byte is not JSON (400)."""
    cap = LIMIT * 4 // 3 + 4 + MULTIPART_OVERHEAD
    head = json.dumps({"image_base64": base64.b64encode(b"x" * 100).decode()})[:-1].encode()
    body = head + b" " * (cap - len(head) - 1) + b"}"
    assert len(body) == cap
    response = _post(http_server, body, "application/json")
    assert response.status_code == 415, response.text[:300]  # read whole: the bytes are not an image
    validate_error(response.json(), "unsupported_image")
