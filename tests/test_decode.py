"""Decoding: every format and mode, EXIF orientation, and refusal of what is not a usable photo."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from emotion.decode import decode_image
from emotion.errors import CorruptImageError, EmotionError, ImageTooLargeError, ImageTooSmallError, InvalidImageError

from .conftest import encode

LIMITS = {"max_bytes": 20_000_000, "max_pixels": 40_000_000}


def _image(mode: str, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A gradient in ``mode``, so decoded values can be compared with what was stored."""
    width, height = size
    ramp = np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))
    rgb = np.dstack([ramp, ramp[:, ::-1], np.full_like(ramp, 128)])
    base = Image.fromarray(rgb)
    if mode == "I;16":
        return Image.fromarray(ramp.astype(np.uint16) * 257)
    if mode in ("L", "LA"):
        return Image.fromarray(ramp).convert(mode)
    return base.convert(mode)


@pytest.mark.parametrize(
    ("fmt", "mode", "name"),
    [
        ("JPEG", "RGB", "jpeg"),
        ("JPEG", "L", "jpeg"),
        ("JPEG", "CMYK", "jpeg"),
        ("PNG", "RGB", "png"),
        ("PNG", "RGBA", "png"),
        ("PNG", "LA", "png"),
        ("PNG", "P", "png"),
        ("PNG", "I;16", "png"),
        ("PNG", "1", "png"),
        ("WEBP", "RGB", "webp"),
        ("WEBP", "RGBA", "webp"),
        ("BMP", "RGB", "bmp"),
        ("BMP", "L", "bmp"),
        ("TIFF", "RGB", "tiff"),
        ("TIFF", "CMYK", "tiff"),
        ("TIFF", "I;16", "tiff"),
        ("GIF", "P", "gif"),
    ],
)
def test_formats_and_modes_decode_to_8_bit_rgb(fmt: str, mode: str, name: str) -> None:
    source = _image(mode)
    buffer = io.BytesIO()
    source.save(buffer, format=fmt)
    decoded = decode_image(buffer.getvalue(), **LIMITS)
    assert decoded.format == name
    assert decoded.rgb.shape == (48, 64, 3) and decoded.rgb.dtype == np.uint8
    if mode in ("I;16", "L", "LA"):
        # 16-bit values are scaled to 8 bits, not clipped: the ramp still spans the whole range
        gray = decoded.rgb[..., 0].astype(int)
        assert gray[:, 0].mean() < 20 and gray[:, -1].mean() > 235


def test_transparent_pixels_become_white_not_black() -> None:
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)  # fully transparent black
    decoded = decode_image(encode(rgba, "PNG"), **LIMITS)
    assert decoded.rgb.min() == 255


def test_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    decoded = decode_image(buffer.getvalue(), **LIMITS)
    assert decoded.rgb[..., 0].mean() > 200 and decoded.rgb[..., 2].mean() < 50


@pytest.mark.parametrize(
    ("orientation", "stored"),
    [(3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)],
)
def test_exif_orientation_is_applied(orientation: int, stored: Image.Transpose) -> None:
    upright = np.zeros((40, 60, 3), dtype=np.uint8)
    upright[:10, :20] = 255  # a white mark in the top-left corner when viewed upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(upright).transpose(stored).save(buffer, format="JPEG", exif=exif, quality=95)
    decoded = decode_image(buffer.getvalue(), **LIMITS)
    assert decoded.rgb.shape == (40, 60, 3)
    assert decoded.rgb[:10, :20].mean() > 200 and decoded.rgb[30:, 40:].mean() < 50


def test_empty_input_is_refused() -> None:
    with pytest.raises(InvalidImageError):
        decode_image(b"", **LIMITS)


@pytest.mark.parametrize(
    "data", [b"hello world", b"%PDF-1.7\n" + bytes(200), b"<svg xmlns='http://www.w3.org/2000/svg'/>"]
)
def test_non_images_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidImageError):
        decode_image(data, **LIMITS)


def test_unsupported_formats_are_refused() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, format="PPM")
    with pytest.raises(InvalidImageError, match="not supported"):
        decode_image(buffer.getvalue(), **LIMITS)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_truncated_files_are_corrupt(fmt: str, astronaut: np.ndarray) -> None:
    data = encode(astronaut if fmt != "GIF" else astronaut[..., 0], fmt)
    with pytest.raises((CorruptImageError, InvalidImageError)):
        decode_image(data[: len(data) // 2], **LIMITS)


def test_too_small_images_are_refused() -> None:
    with pytest.raises(ImageTooSmallError):
        decode_image(encode(np.zeros((15, 100, 3), np.uint8), "PNG"), **LIMITS)
    assert decode_image(encode(np.zeros((16, 16, 3), np.uint8), "PNG"), **LIMITS).width == 16


def test_files_over_the_byte_limit_are_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError):
        decode_image(b"\x89PNG" + bytes(2000), max_bytes=1000, max_pixels=10**6)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` but holds one tiny compressed row: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(width + 1)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("width", "height"), [(50_000, 50_000), (10_000, 5_000), (2**31 - 1, 2)])
def test_decompression_bombs_are_refused_before_decoding(width: int, height: int) -> None:
    with pytest.raises(ImageTooLargeError):
        decode_image(_png_header_only(width, height), **LIMITS)


def test_the_pixel_limit_is_configurable() -> None:
    data = encode(np.zeros((100, 100, 3), np.uint8), "PNG")
    with pytest.raises(ImageTooLargeError):
        decode_image(data, max_bytes=10**6, max_pixels=9_999)
    assert decode_image(data, max_bytes=10**6, max_pixels=10_000).height == 100


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_only_raise_typed_errors(data: bytes) -> None:
    try:
        decoded = decode_image(data, **LIMITS)
    except EmotionError:
        return
    assert decoded.rgb.ndim == 3


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_damaged_real_images_only_raise_typed_errors(data: st.DataObject) -> None:
    """Flip bytes and cut tails of valid files of each format: the decoder must fail cleanly or succeed."""
    fmt = data.draw(st.sampled_from(["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"]))
    blob = bytearray(_SAMPLES[fmt])
    for _ in range(data.draw(st.integers(0, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    blob = blob[: data.draw(st.integers(1, len(blob)))]
    try:
        decoded = decode_image(bytes(blob), **LIMITS)
    except EmotionError:
        return
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.ndim == 3


_SAMPLES = {
    fmt: encode(np.asarray(_image("RGB", (40, 32))), fmt) for fmt in ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"]
}
