"""The worst-case corpus: inputs inside the accepted limits (20 MB, 40 MP) built to exhaust memory or CPU.

Every input is generated here, in memory (nothing large is committed); the tests post each one to a fresh
server and the benchmark (``python -m bench.worst_case``) records its peak memory and time. Each case names
the answer the service gives it: a status and, for errors, the error code.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

MAX_IMAGE_BYTES = 20_000_000


@dataclass(frozen=True)
class Case:
    """One hostile input: how to build its body, its content type, and the answer it must get."""

    name: str
    build: Callable[[], bytes]
    status: int
    code: str | None = None
    content_type: str = "image/jpeg"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _rows_deflated(rows: Iterator[bytes]) -> bytes:
    """zlib stream of the given scanlines, compressed one by one (the raw image never exists here)."""
    packer = zlib.compressobj(1)
    return b"".join(packer.compress(row) for row in rows) + packer.flush()


def _png(width: int, height: int, depth: int, colour: int, *, interlaced: bool = False, extra: bytes = b"") -> bytes:
    """A flat (all zero) PNG of any size; ``extra`` chunks go before the image data."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]

    def row(w: int) -> bytes:
        return bytes(1 + (w * channels * depth + 7) // 8)

    if interlaced:  # Adam7: seven passes of sub-images, each row with its filter byte
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        rows = (
            row((width - x0 + dx - 1) // dx)
            for x0, y0, dx, dy in passes
            if width > x0
            for _ in range((height - y0 + dy - 1) // dy if height > y0 else 0)
        )
    else:
        rows = (row(width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 1 if interlaced else 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + extra
        + _chunk(b"IDAT", _rows_deflated(rows))
        + _chunk(b"IEND", b"")
    )


def png_rgb() -> bytes:
    return _png(8000, 5000, 8, 2)


def png_adam7() -> bytes:
    return _png(8000, 5000, 8, 2, interlaced=True)


def png_rgb16() -> bytes:
    return _png(8000, 5000, 16, 2)


def png_rgba() -> bytes:
    return _png(8000, 5000, 8, 6)


def png_gray16() -> bytes:
    return _png(8000, 5000, 16, 0)


def png_rgb_colour_key() -> bytes:
    """RGB with a tRNS colour key: its bands go through RGBA to put the keyed colour onto white."""
    return _png(8000, 5000, 8, 2, extra=_chunk(b"tRNS", bytes(6)))


def png_icc_chunks() -> bytes:
    """16x16, then thousands of iCCP chunks, each 1 MB of zeros compressed to about 1 KB."""
    profile = b"icc\x00\x00" + zlib.compress(bytes(1_000_000), 9)
    return _png(16, 16, 8, 2, extra=_chunk(b"iCCP", profile) * 3000)


def _tiff(entries: Sequence[tuple[int, int, int, int | bytes]], data: bytes, *, big_endian: bool = False) -> bytes:
    """A TIFF (little-endian unless told): header, ``data`` at offset 8, then one directory (values too big
    go after)."""
    order = ">" if big_endian else "<"
    ifd_at = 8 + len(data)
    ifd_size = 2 + 12 * len(entries) + 4
    tail = b""
    packed = []
    for tag, kind, count, value in sorted(entries):
        if isinstance(value, bytes):
            packed.append(struct.pack(f"{order}HHII", tag, kind, count, ifd_at + ifd_size + len(tail)))
            tail += value
        else:
            fmt = f"{order}HHIHH" if kind == 3 else f"{order}HHII"
            packed.append(
                struct.pack(fmt, tag, kind, count, value, 0) if kind == 3 else struct.pack(fmt, tag, kind, count, value)
            )
    ifd = struct.pack(f"{order}H", len(entries)) + b"".join(packed) + bytes(4)
    return (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(f"{order}I", ifd_at) + data + ifd + tail


def _tiff_deflated(width: int, height: int, bits: int, sample_format: int, *, big_endian: bool = False) -> bytes:
    """One deflate-compressed strip of zeros (float32, int32 or 16-bit gray)."""
    strip = _rows_deflated(bytes(width * bits // 8) for _ in range(height))
    entries = [
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, bits), (259, 3, 1, 8), (262, 3, 1, 1),
        (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, len(strip)), (339, 3, 1, sample_format),
    ]  # fmt: skip
    return _tiff(entries, strip, big_endian=big_endian)


def tiff_float32() -> bytes:
    return _tiff_deflated(8000, 5000, 32, 3)


def tiff_int32() -> bytes:
    return _tiff_deflated(8000, 5000, 32, 2)


def tiff_gray16_big_endian() -> bytes:
    """Pillow opens it as ``I;16B`` (a mode it has no extrema for): its decoding estimate refuses it like 16-bit PNG."""
    return _tiff_deflated(8000, 5000, 16, 1, big_endian=True)


def tiff_strip_offsets() -> bytes:
    """A raw 16x16 TIFF whose directory lists almost 10 million strips (offsets and counts share one array)."""
    count = (MAX_IMAGE_BYTES - 400) // 2
    array_at = 8
    entries = [
        (256, 4, 1, 16), (257, 4, 1, 16), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
        (273, 3, count, array_at), (277, 3, 1, 1), (278, 4, 1, 1), (279, 3, count, array_at),
    ]  # fmt: skip
    return _tiff(entries, bytes(2 * count))


def webp_lossless_rgba() -> bytes:
    """1.6 KB of lossless WebP that declares 16383x2441 RGBA (40 MP)."""
    buffer = io.BytesIO()
    Image.new("RGBA", (16383, 2441)).save(buffer, format="WEBP", lossless=True, quality=0, method=0)
    return buffer.getvalue()


def gif_6000() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (6000, 6000)).save(buffer, format="GIF")
    return buffer.getvalue()


def _bmp(width: int, height: int, bits: int, compression: int, pixels: bytes, colours: int) -> bytes:
    palette = b"".join(struct.pack("<BBBB", v, v, v, 0) for v in np.linspace(0, 255, colours).astype(int))
    offset = 14 + 40 + len(palette)
    header = struct.pack("<2sIHHI", b"BM", offset + len(pixels), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, compression, len(pixels), 2835, 2835, colours, 0)
    return header + info + palette + pixels


def bmp_rle8(width: int = 8000, height: int = 5000) -> bytes:
    """RLE8 of a few bytes: delta codes that each skip 255 rows (the decoder fills them), then end of bitmap."""
    skips = b"\x00\x02\x00\xff" * (height // 255) + b"\x00\x02\x00" + bytes([height % 255])
    return _bmp(width, height, 8, 1, skips + b"\x00\x01", 256)


def bmp_rle8_wide() -> bytes:
    return bmp_rle8(40000, 1000)


def bmp_1bit() -> bytes:
    return _bmp(8000, 5000, 1, 0, bytes(1000 * 5000), 2)


def _jpeg(mode: str, size: tuple[int, int], **options) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def jpeg_progressive_444() -> bytes:
    return _jpeg("RGB", (8000, 5000), progressive=True, subsampling=0, quality=90)


def jpeg_progressive_cmyk() -> bytes:
    return _jpeg("CMYK", (8000, 5000), progressive=True, quality=90)


def jpeg_scans(count: int = 20_000) -> bytes:
    """A progressive 8000x5000 JPEG followed by ``count`` scans that hold no data (only their SOS header)."""
    base = _jpeg("L", (8000, 5000), progressive=True)
    empty_scan = b"\xff\xda\x00\x08\x01\x01\x00\x01\x3f\x00"  # one component, AC 1..63, no entropy data
    return base[:-2] + empty_scan * count + b"\xff\xd9"


def jpeg_scans_2m() -> bytes:
    return jpeg_scans((MAX_IMAGE_BYTES - 300_000) // 10)


def jpeg_fill_bytes() -> bytes:
    """A 64x64 JPEG padded with almost 20 MB of 0xFF fill bytes before its end marker."""
    small = _jpeg("RGB", (64, 64))
    return small[:-2] + b"\xff" * (MAX_IMAGE_BYTES - len(small) - 100) + b"\xff\xd9"


def ico_png() -> bytes:
    """An icon file whose one entry is a 13000x13000 PNG."""
    png = _png(13000, 13000, 8, 2)
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 22)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


def json_objects() -> bytes:
    """A JSON array of 8.9 million empty objects (inside the JSON body limit)."""
    return b"[" + b",".join([b"{}"] * 8_900_000) + b"]"


def exact_limit_jpeg() -> bytes:
    """A real photo-sized JPEG padded after its end marker to exactly ``MAX_IMAGE_BYTES``."""
    rng = np.random.default_rng(1)
    photo = _jpeg_array(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
    return photo + bytes(MAX_IMAGE_BYTES - len(photo))


def _jpeg_array(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG")
    return buffer.getvalue()


JSON = "application/json"

#: Every class of the issue's table, with the answer it gets once the service is bounded.
CASES: list[Case] = [
    Case("png_rgb_8000x5000", png_rgb, 200),
    Case("png_adam7_8000x5000", png_adam7, 413, "image_too_large"),
    Case("png_rgb16_8000x5000", png_rgb16, 413, "image_too_large"),
    Case("png_rgba_8000x5000", png_rgba, 200),
    Case("png_rgb_colour_key_8000x5000", png_rgb_colour_key, 200),
    Case("png_gray16_8000x5000", png_gray16, 413, "image_too_large"),
    Case("tiff_float32_8000x5000", tiff_float32, 413, "image_too_large"),
    Case("tiff_int32_8000x5000", tiff_int32, 413, "image_too_large"),
    Case("tiff_gray16_big_endian_8000x5000", tiff_gray16_big_endian, 413, "image_too_large"),
    Case("webp_lossless_rgba_16383x2441", webp_lossless_rgba, 413, "image_too_large"),
    Case("gif_6000x6000", gif_6000, 200),
    Case("bmp_rle8_8000x5000", bmp_rle8, 413, "image_too_large"),
    Case("bmp_1bit_8000x5000", bmp_1bit, 200),
    Case("jpeg_progressive_444_8000x5000", jpeg_progressive_444, 413, "image_too_large"),
    Case("jpeg_progressive_cmyk_8000x5000", jpeg_progressive_cmyk, 413, "image_too_large"),
    Case("jpeg_20000_empty_scans", jpeg_scans, 422, "corrupt_image"),
    Case("jpeg_2m_empty_scans", jpeg_scans_2m, 422, "corrupt_image"),
    Case("jpeg_20mb_fill_bytes", jpeg_fill_bytes, 422, "corrupt_image"),
    Case("tiff_10m_strip_offsets", tiff_strip_offsets, 422, "corrupt_image"),
    Case("bmp_rle8_40000x1000", bmp_rle8_wide, 413, "image_too_large"),
    Case("png_3000_icc_chunks", png_icc_chunks, 200),
    Case("ico_with_13000x13000_png", ico_png, 415, "unsupported_image"),
    Case("json_8.9m_objects", json_objects, 400, "bad_request", JSON),
    Case("raw_exactly_max_bytes", exact_limit_jpeg, 200),
]


def json_body(data: bytes) -> bytes:
    """``data`` as the JSON body the HTTP function reads (``image_base64``)."""
    import base64

    return json.dumps({"image_base64": base64.b64encode(data).decode("ascii")}).encode()
