"""``analyze_http`` over real HTTP (functions-framework server) and, for quick cases, its test client."""

from __future__ import annotations

import base64
import http.client
import io
import json
import urllib.parse
from typing import Any

import numpy as np
import pytest
import requests

from .conftest import encode, overlaps_astronaut_face

CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers")


def _ok(response: requests.Response, validate_result) -> dict:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    return validate_result(response.json())


def _error(response: requests.Response, status: int, code: str, validate_error) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    return validate_error(response.json(), code)


def test_multipart_upload(http_server: str, astronaut_jpeg: bytes, validate_result) -> None:
    files = {"image": ("astronaut.jpg", astronaut_jpeg, "image/jpeg")}
    result = _ok(requests.post(http_server, files=files, timeout=30), validate_result)
    assert len(result["faces"]) == 1
    assert overlaps_astronaut_face(result["faces"][0]["box"])
    assert result["dominant_emotion"] == "happy"
    assert "preview" in result


def test_raw_image_body(http_server: str, astronaut_jpeg: bytes, validate_result) -> None:
    response = requests.post(http_server, data=astronaut_jpeg, headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert _ok(response, validate_result)["dominant_emotion"] == "happy"


def test_json_base64_body_and_data_urls(http_server: str, astronaut: np.ndarray, validate_result) -> None:
    png = base64.b64encode(encode(astronaut, "PNG")).decode()
    for value in (png, "data:image/png;base64," + png):
        result = _ok(requests.post(http_server, json={"image_base64": value}, timeout=30), validate_result)
        assert result["image"]["format"] == "png" and result["dominant_emotion"] == "happy"


@pytest.mark.parametrize("value", ["false", "0", "no"])
def test_preview_false_drops_the_preview(http_server: str, astronaut_jpeg: bytes, value: str, validate_result) -> None:
    response = requests.post(
        http_server, params={"preview": value}, data=astronaut_jpeg, headers={"Content-Type": "image/jpeg"}, timeout=30
    )
    assert "preview" not in _ok(response, validate_result)


def test_options_preflight(http_server: str) -> None:
    response = requests.options(
        http_server,
        headers={
            "Origin": "https://example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=10,
    )
    assert response.status_code == 204
    for header in CORS_HEADERS:
        assert header in response.headers
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()


def test_get_serves_the_page_with_a_strict_policy(http_server: str) -> None:
    response = requests.get(http_server, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "<html" in response.text.lower()


def test_head_answers_as_get_without_a_body(http_server: str) -> None:
    """HTTP allows HEAD wherever GET is allowed: the page's status and headers, no body (README: errors)."""
    response = requests.head(http_server, timeout=10)
    assert response.status_code == 200 and response.content == b""
    assert response.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/octet-stream", "image/jpeg", "application/json", "multipart/form-data"],
)
@pytest.mark.parametrize("length", ["Content-Length: 0", "no Content-Length", "chunked"])
def test_an_empty_body_is_400_whatever_its_content_type(
    http_server: str, content_type: str | None, length: str, validate_error
) -> None:
    """As the README's error table says; a body with a type we do not read is 415 (test_not_an_image_is_415)."""
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(http_server).netloc, timeout=10)
    connection.putrequest("POST", "/")
    if content_type is not None:
        connection.putheader("Content-Type", content_type)
    if length == "Content-Length: 0":
        connection.putheader("Content-Length", "0")
    elif length == "chunked":
        connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders(b"0\r\n\r\n" if length == "chunked" else None)
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 400, body
    validate_error(body, "bad_request")
    # without a length, JSON and multipart bodies are parsed (and found empty) rather than measured
    expected = {"application/json": "the body is not valid UTF-8 JSON: JSONDecodeError"}
    expected["multipart/form-data"] = "the multipart form has no file field 'image'"
    measured = length == "Content-Length: 0"
    no_data = "the request holds no image data"
    assert body["error"]["message"] == (no_data if measured else expected.get(content_type or "", no_data))


def test_a_body_of_a_type_we_do_not_read_is_415_with_or_without_a_length(http_server: str, validate_error) -> None:
    # no type with a length; a type with a length; a type with a chunked body (requests chunks an iterator)
    for headers, body in (({}, b"x"), ({"Content-Type": "text/plain"}, b"x"), ({"Content-Type": "text/plain"}, [b"x"])):
        response = requests.post(
            http_server, data=iter(body) if isinstance(body, list) else body, headers=headers, timeout=10
        )
        _error(response, 415, "unsupported_media_type", validate_error)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_wrong_methods_are_405(http_server: str, method: str, validate_error) -> None:
    response = requests.request(method, http_server, data=b"x", timeout=10)
    _error(response, 405, "method_not_allowed", validate_error)
    assert response.headers["Allow"] == "GET, HEAD, POST, OPTIONS"


def test_malformed_requests_are_400(http_server: str, astronaut_jpeg: bytes, validate_error) -> None:
    cases: list[dict[str, Any]] = [  # keyword arguments of requests.post
        {"files": {"picture": ("a.jpg", astronaut_jpeg, "image/jpeg")}},
        {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
        {"data": b'{"image_base64": "\xff\xfe"}', "headers": {"Content-Type": "application/json"}},
        {"json": {"image": "abc"}},
        {"json": ["image_base64"]},
        {"json": {"image_base64": 42}},
        {"json": {"image_base64": "!!!! not base64 ****"}},
        {"json": {"image_base64": ""}},
        {"data": b"", "headers": {"Content-Type": "image/jpeg"}},
    ]
    for case in cases:
        _error(requests.post(http_server, timeout=10, **case), 400, "bad_request", validate_error)
    response = requests.post(
        http_server,
        params={"preview": "maybe"},
        data=astronaut_jpeg,
        headers={"Content-Type": "image/jpeg"},
        timeout=10,
    )
    _error(response, 400, "bad_request", validate_error)


def test_too_large_is_413(http_server: str, validate_error) -> None:
    body = b"\xff\xd8\xff" + bytes(20_000_001)
    for headers in ({"Content-Type": "image/jpeg"},):
        _error(
            requests.post(http_server, data=body, headers=headers, timeout=60), 413, "image_too_large", validate_error
        )
    files = {"image": ("big.jpg", body, "image/jpeg")}
    _error(requests.post(http_server, files=files, timeout=60), 413, "image_too_large", validate_error)
    encoded = {"image_base64": base64.b64encode(body).decode()}
    _error(requests.post(http_server, json=encoded, timeout=60), 413, "image_too_large", validate_error)


def test_pixel_bomb_is_413(http_server: str, validate_error) -> None:
    from .test_decode import _png_header_only

    response = requests.post(
        http_server, data=_png_header_only(30_000, 30_000), headers={"Content-Type": "image/png"}, timeout=10
    )
    _error(response, 413, "image_too_large", validate_error)


def test_not_an_image_is_415(http_server: str, validate_error) -> None:
    _error(
        requests.post(http_server, data=b"hello", headers={"Content-Type": "text/plain"}, timeout=10),
        415,
        "unsupported_media_type",
        validate_error,
    )
    _error(
        requests.post(http_server, data=b"hello", headers={"Content-Type": "image/png"}, timeout=10),
        415,
        "unsupported_image",
        validate_error,
    )
    files = {"image": ("notes.txt", b"just some text", "text/plain")}
    _error(requests.post(http_server, files=files, timeout=10), 415, "unsupported_image", validate_error)


def test_undecodable_images_are_422(http_server: str, astronaut_jpeg: bytes, validate_error) -> None:
    truncated = astronaut_jpeg[: len(astronaut_jpeg) // 3]
    _error(
        requests.post(http_server, data=truncated, headers={"Content-Type": "image/jpeg"}, timeout=10),
        422,
        "corrupt_image",
        validate_error,
    )
    tiny = encode(np.zeros((10, 10, 3), np.uint8), "PNG")
    _error(
        requests.post(http_server, data=tiny, headers={"Content-Type": "image/png"}, timeout=10),
        422,
        "image_too_small",
        validate_error,
    )


def test_server_still_answers_after_bad_input(http_server: str, astronaut_jpeg: bytes, validate_result) -> None:
    for body in (b"", b"\x00" * 1000, astronaut_jpeg[:100], b"GIF89a" + bytes(50)):
        assert (
            requests.post(http_server, data=body, headers={"Content-Type": "image/gif"}, timeout=10).status_code < 500
        )
    test_raw_image_body(http_server, astronaut_jpeg, validate_result)


def test_test_client_matches_the_server(astronaut_jpeg: bytes, validate_result, validate_error) -> None:
    """The framework's in-process client: quick checks of the same contract without a socket."""
    import functions_framework

    from .conftest import ROOT

    client = functions_framework.create_app(target="analyze_http", source=str(ROOT / "main.py")).test_client()
    ok = client.post(
        "/?preview=0", data={"image": (io.BytesIO(astronaut_jpeg), "a.jpg")}, content_type="multipart/form-data"
    )
    assert ok.status_code == 200
    assert "preview" not in validate_result(json.loads(ok.data))
    bad = client.post("/", data=b"text", content_type="text/plain")
    assert bad.status_code == 415
    validate_error(json.loads(bad.data), "unsupported_media_type")
