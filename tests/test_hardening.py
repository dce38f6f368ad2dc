"""Abuse: a corpus of hostile inputs, each answered with its 4xx JSON error, and a bounded load test."""

from __future__ import annotations

import base64
import io
import json
import random
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from PIL import Image

from .conftest import encode
from .test_decode import _png_header_only


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF0) now declares ``width`` x ``height``."""
    at = jpeg.index(b"\xff\xc0")
    return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]


def _gif_with_size(width: int, height: int) -> bytes:
    return (
        b"GIF89a"
        + struct.pack("<HH", width, height)
        + b"\x00\x00\x00"
        + b",\x00\x00\x00\x00"
        + struct.pack("<HH", width, height)
        + b"\x00\x02\x02\x44\x01\x00;"
    )


def _bmp_with_size(width: int, height: int) -> bytes:
    header = struct.pack("<2sIHHI", b"BM", 54 + 16, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 16, 2835, 2835, 0, 0)
    return header + info + bytes(16)


def _tiff_with_size(width: int, height: int) -> bytes:
    entries = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8),
        (277, 3, 1, 1),
        (278, 4, 1, height),
        (279, 4, 1, 1),
    ]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\x00" * 4
    return b"II*\x00" + struct.pack("<I", 16) + bytes(8) + ifd


def _hostile_corpus(jpeg: bytes) -> list[tuple[str, dict, int]]:
    """(name, request kwargs, expected status) for every hostile input the service must refuse cleanly."""
    png = encode(np.full((40, 40, 3), 99, np.uint8), "PNG")
    raw = {"Content-Type": "image/jpeg"}
    cases: list[tuple[str, dict, int]] = []
    for fmt in ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"):
        sample = encode(np.full((64, 64, 3), 120, np.uint8) if fmt != "GIF" else np.full((64, 64), 7, np.uint8), fmt)
        cases.append((f"truncated {fmt}", {"data": sample[: len(sample) // 2], "headers": raw}, 0))
        if fmt in ("JPEG", "PNG", "WEBP", "GIF"):  # damaged compressed data cannot decode
            corrupt = bytearray(sample)
            for i in range(len(corrupt) // 3, len(corrupt), 7):
                corrupt[i] ^= 0x5A
            cases.append((f"corrupt {fmt}", {"data": bytes(corrupt), "headers": raw}, 0))
    bmp = bytearray(encode(np.full((64, 64, 3), 120, np.uint8), "BMP"))
    bmp[28] = 7  # 7 bits per pixel does not exist
    tiff = bytearray(encode(np.full((64, 64, 3), 120, np.uint8), "TIFF"))
    tiff[4:8] = struct.pack("<I", 10**8)  # the first directory lies past the end of the file
    cases += [
        ("corrupt BMP", {"data": bytes(bmp), "headers": raw}, 0),
        ("corrupt TIFF", {"data": bytes(tiff), "headers": raw}, 0),
    ]
    cases += [
        ("huge PNG", {"data": _png_header_only(100_000, 100_000), "headers": raw}, 413),
        ("huge JPEG", {"data": _jpeg_with_size(jpeg, 65_000, 65_000), "headers": raw}, 413),
        ("huge GIF", {"data": _gif_with_size(65_535, 65_535), "headers": raw}, 413),
        ("huge BMP", {"data": _bmp_with_size(100_000, 100_000), "headers": raw}, 413),
        ("huge TIFF", {"data": _tiff_with_size(200_000, 200_000), "headers": raw}, 413),
        ("zero-size PNG", {"data": _png_header_only(0, 0), "headers": raw}, 0),
        ("zero-size GIF", {"data": _gif_with_size(0, 0), "headers": raw}, 0),
        ("1x1 PNG", {"data": encode(np.zeros((1, 1, 3), np.uint8), "PNG"), "headers": raw}, 422),
        ("html as image", {"data": b"<html><script>alert(1)</script></html>", "headers": raw}, 415),
        ("PNG as text/html", {"data": png, "headers": {"Content-Type": "text/html"}}, 415),
        ("no content type", {"data": png, "headers": {"Content-Type": ""}}, 415),
        ("form-urlencoded", {"data": {"image": "abc"}}, 415),
        ("GIF/JS polyglot", {"data": b"GIF89a/*\x00\x00*/=1;alert(1);//" + bytes(40), "headers": raw}, 0),
        ("PDF/JPEG polyglot", {"data": b"%PDF-1.4\n" + jpeg[2:400], "headers": raw}, 415),
        ("ZIP", {"data": b"PK\x03\x04" + bytes(100), "headers": raw}, 415),
        (
            "SVG",
            {
                "data": b"<svg xmlns='http://www.w3.org/2000/svg' width='9e9' height='9e9'/>",
                "headers": {"Content-Type": "image/svg+xml"},
            },
            415,
        ),
        (
            "non-UTF-8 JSON",
            {"data": b'{"image_base64": "\xc3\x28"}', "headers": {"Content-Type": "application/json"}},
            400,
        ),
        (
            "UTF-16 JSON",
            {
                "data": json.dumps({"image_base64": "AAAA"}).encode("utf-16"),
                "headers": {"Content-Type": "application/json"},
            },
            400,
        ),
        ("JSON null", {"data": b"null", "headers": {"Content-Type": "application/json"}}, 400),
        ("deep JSON", {"data": b"[" * 100_000 + b"]" * 100_000, "headers": {"Content-Type": "application/json"}}, 400),
        ("base64 garbage", {"json": {"image_base64": "%%%%====" * 50}}, 400),
        ("base64 of text", {"json": {"image_base64": base64.b64encode(b"hello there").decode()}}, 415),
        ("base64 of truncated JPEG", {"json": {"image_base64": base64.b64encode(jpeg[:300]).decode()}}, 422),
        ("base64 over the limit", {"json": {"image_base64": "A" * 27_000_000}}, 413),
        ("multipart without image", {"files": {"photo": ("a.jpg", jpeg, "image/jpeg")}}, 400),
        ("multipart, empty image", {"files": {"image": ("a.jpg", b"", "image/jpeg")}}, 400),
        ("multipart, many parts", {"files": [(f"f{i}", ("x", b"x", "text/plain")) for i in range(2000)]}, 413),
        ("multipart, oversized", {"files": {"image": ("big.jpg", b"\xff\xd8" + bytes(21_000_000), "image/jpeg")}}, 413),
        ("multipart, no boundary", {"data": b"--x\r\n\r\n", "headers": {"Content-Type": "multipart/form-data"}}, 400),
        (
            "nested multipart",
            {"data": _nested_multipart(jpeg), "headers": {"Content-Type": "multipart/form-data; boundary=outer"}},
            400,
        ),
        ("raw over the limit", {"data": b"\xff\xd8" + bytes(20_000_001), "headers": raw}, 413),
    ]
    return cases


def _nested_multipart(jpeg: bytes) -> bytes:
    inner = (
        b'--inner\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n--inner--\r\n"
    )
    return (
        b'--outer\r\nContent-Disposition: form-data; name="wrapper"\r\n'
        b"Content-Type: multipart/mixed; boundary=inner\r\n\r\n" + inner + b"\r\n--outer--\r\n"
    )


def test_hostile_inputs_get_their_4xx_json_error(http_server: str, astronaut_jpeg: bytes, validate_error) -> None:
    failures = []
    for name, kwargs, expected in _hostile_corpus(astronaut_jpeg):
        response = requests.post(http_server, timeout=60, **kwargs)
        ok_status = 400 <= response.status_code < 500 if expected == 0 else response.status_code == expected
        try:
            validate_error(response.json())
            is_json = True
        except (ValueError, Exception):
            is_json = False
        if not (ok_status and is_json):
            failures.append(f"{name}: {response.status_code} {response.text[:120]!r}")
    assert not failures, "\n".join(failures)
    good = requests.post(http_server, data=astronaut_jpeg, headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert good.status_code == 200 and good.json()["dominant_emotion"] == "happy"


def test_bounded_load_of_good_and_bad_requests(http_server: str, astronaut: np.ndarray) -> None:
    """8 concurrent clients, 1,000 mixed requests on loopback: no 5xx, every good answer exactly right."""
    goods = {
        "astronaut": encode(astronaut, "JPEG"),
        "mirrored": encode(astronaut[:, ::-1].copy(), "PNG"),
        "small": encode(np.asarray(Image.fromarray(astronaut).resize((200, 200))), "WEBP"),
        "blank": encode(np.full((100, 140, 3), 180, np.uint8), "BMP"),
    }
    session = requests.Session()

    def post(body: bytes) -> requests.Response:
        return session.post(
            http_server, data=body, params={"preview": "false"}, headers={"Content-Type": "image/jpeg"}, timeout=60
        )

    expected = {name: post(body).json()["faces"] for name, body in goods.items()}
    bads = [b"", b"junk" * 10, goods["astronaut"][:1000], _png_header_only(90_000, 90_000), b"GIF89a" + bytes(30)]
    rng = random.Random(11)
    plan: list[str | int] = [  # the name of a good photo, or the index of a bad body
        rng.choice(list(goods)) if rng.random() < 0.5 else rng.randrange(len(bads)) for _ in range(1000)
    ]

    def run(key: str | int) -> str | None:
        kind = "good" if isinstance(key, str) else "bad"
        with requests.Session() as own:
            response = own.post(
                http_server,
                data=goods[key] if isinstance(key, str) else bads[key],
                params={"preview": "false"},
                headers={"Content-Type": "image/jpeg"},
                timeout=60,
            )
        if response.status_code >= 500:
            return f"{kind} {key}: {response.status_code}"
        if isinstance(key, str):
            if response.status_code != 200 or response.json()["faces"] != expected[key]:
                return f"good {key}: wrong answer {response.status_code}"
        elif not 400 <= response.status_code < 500:
            return f"bad {key}: {response.status_code}"
        return None

    with ThreadPoolExecutor(8) as pool:
        problems = [p for p in pool.map(run, plan) if p]
    assert not problems, problems[:10]


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "image/anything"])
def test_the_declared_image_type_does_not_matter_only_the_bytes(http_server, astronaut, content_type) -> None:
    body = encode(astronaut, "PNG")
    response = requests.post(http_server, data=body, headers={"Content-Type": content_type}, timeout=30)
    assert response.status_code == 200 and response.json()["image"]["format"] == "png"
    assert io.BytesIO(body).getbuffer().nbytes == len(body)
