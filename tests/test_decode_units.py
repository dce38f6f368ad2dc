"""Decoding, pinned exactly through ``decode_image``: EXIF orientations and the size reported after them,
reduced-scale JPEG decoding, banded PNG decoding, 8-bit scaling of deep gray, transparency, which guard
fires. Small images built here, so the file runs in a few seconds (the mutation runs use it first)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from emotion.decode import decode_image
from emotion.errors import CorruptImageError, ImageTooLargeError, ImageTooSmallError, InvalidImageError

LIMITS = {"max_bytes": 20_000_000, "max_pixels": 40_000_000}
_STORED = {  # what a camera stores for each orientation: the inverse of the transpose that shows it upright
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def _upright(width: int = 48, height: int = 32) -> np.ndarray:
    """A picture whose every transpose differs: a white block top-left, a red one top-right, dark elsewhere."""
    rgb = np.full((height, width, 3), 20, dtype=np.uint8)
    rgb[: height // 4, : width // 4] = 255
    rgb[: height // 4, -width // 4 :] = (255, 0, 0)
    return rgb


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _stored(upright: np.ndarray, orientation: int) -> Image.Image:
    method = _STORED[orientation]
    image = Image.fromarray(upright)
    return image if method is None else image.transpose(method)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied_to_a_png_exactly(orientation: int) -> None:
    upright = _upright()
    data = _save(_stored(upright, orientation), "PNG", exif=_exif(orientation))
    decoded = decode_image(data, **LIMITS)
    assert (decoded.width, decoded.height) == (48, 32)
    np.testing.assert_array_equal(decoded.rgb, upright)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied_to_a_jpeg_with_its_size(orientation: int) -> None:
    upright = _upright(64, 32)
    data = _save(_stored(upright, orientation), "JPEG", exif=_exif(orientation), quality=95)
    decoded = decode_image(data, **LIMITS)
    assert (decoded.width, decoded.height) == (64, 32)
    assert decoded.rgb.shape == (32, 64, 3)
    assert np.abs(decoded.rgb.astype(int) - upright).mean() < 8


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_a_rotated_16_bit_png_reports_its_upright_size(orientation: int) -> None:
    upright = np.tile(np.arange(48, dtype=np.uint16) * 1000, (32, 1))
    upright[:8, :12] = 65535
    stored = _stored(upright, orientation)
    decoded = decode_image(_save(stored, "PNG", exif=_exif(orientation)), **LIMITS)
    assert (decoded.width, decoded.height) == (48, 32)
    assert decoded.rgb.shape == (32, 48, 3)
    assert decoded.rgb[:8, :12].min() == 255 and decoded.rgb[8:, 12:].max() < 255


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_a_rotated_reduced_png_reports_its_full_upright_size(orientation: int) -> None:
    upright = _upright(400, 200)
    data = _save(_stored(upright, orientation), "PNG", exif=_exif(orientation))
    decoded = decode_image(data, **LIMITS, long_side=100)
    assert (decoded.width, decoded.height) == (400, 200)
    assert decoded.rgb.shape == (50, 100, 3)
    assert decoded.scale == 0.25


def test_a_large_jpeg_is_decoded_at_reduced_dct_scale() -> None:
    upright = np.zeros((800, 1600, 3), dtype=np.uint8)
    data = _save(Image.fromarray(upright), "JPEG")
    decoded = decode_image(data, **LIMITS, long_side=200)
    # libjpeg's 1/8 scale gives 200x100 directly; a full decode reduced by 8 would too, so the budget
    # tells them apart: the full 1600x800 frame does not fit in 4 MB, the 1/8 one does
    assert decoded.rgb.shape == (100, 200, 3)
    assert (decoded.width, decoded.height) == (1600, 800)
    budget = decode_image(data, **LIMITS, long_side=200, max_decode_bytes=7_000_000)
    assert budget.rgb.shape == (100, 200, 3)
    with pytest.raises(ImageTooLargeError, match="needs about"):
        decode_image(data, **LIMITS, max_decode_bytes=7_000_000)


def test_a_jpeg_is_reduced_to_no_less_than_the_long_side() -> None:
    data = _save(Image.fromarray(np.zeros((500, 1000, 3), dtype=np.uint8)), "JPEG")
    # 300 / 1000 needs more than 1/4 scale (250 px): Pillow asks libjpeg for 1/2 (500 px)
    assert decode_image(data, **LIMITS, long_side=300).rgb.shape == (250, 500, 3)
    assert decode_image(data, **LIMITS, long_side=1000).rgb.shape == (500, 1000, 3)
    assert decode_image(data, **LIMITS).rgb.shape == (500, 1000, 3)


def _noise(width: int, height: int, channels: int = 3, seed: int = 1) -> np.ndarray:
    """Smooth gradients with noise: PNG's encoder then uses every row filter."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(height), np.arange(width)) % 256
    noise = rng.integers(0, 8, (height, width, channels))
    return ((ramp[..., None] + noise) % 256).astype(np.uint8).squeeze()


def test_an_image_smaller_than_the_long_side_keeps_its_size() -> None:
    decoded = decode_image(_save(Image.fromarray(_noise(64, 48)), "PNG"), **LIMITS, long_side=1280)
    assert np.array_equal(decoded.rgb, _noise(64, 48))


@pytest.mark.parametrize("fmt", ["PNG", "BMP"])  # in bands, and whole
def test_an_image_twice_the_long_side_is_halved(fmt: str) -> None:
    image = Image.fromarray(_noise(200, 120))
    decoded = decode_image(_save(image, fmt), **LIMITS, long_side=100)
    np.testing.assert_array_equal(decoded.rgb, np.asarray(image.reduce(2)))


@pytest.mark.parametrize("depth", [8, 16])  # decoded in bands, and whole by Pillow
def test_a_png_exif_chunk_that_cannot_be_parsed_is_ignored(depth: int) -> None:
    from emotion import formats

    pixels = _noise(48, 32, 1).astype(np.uint16) * 257 if depth == 16 else _noise(48, 32)
    plain = _save(Image.fromarray(pixels), "PNG")
    decoded = decode_image(plain[:33] + formats.png_chunk(b"eXIf", b"not a TIFF structure") + plain[33:], **LIMITS)
    assert (decoded.width, decoded.height) == (48, 32)


def test_an_image_wider_than_a_band_is_decoded_a_row_at_a_time() -> None:
    """2^19 + 1 pixels a row: a band cannot hold one row, so each band is one row."""
    width = (1 << 19) + 1
    pixels = np.zeros((16, width, 3), dtype=np.uint8)
    pixels[:, ::7] = (9, 99, 199)
    decoded = decode_image(_save(Image.fromarray(pixels), "PNG"), **LIMITS)
    np.testing.assert_array_equal(decoded.rgb, pixels)


def test_a_png_exif_chunk_with_the_exif_header_is_read_too() -> None:
    """PNG's eXIf chunk holds the TIFF structure; some writers put JPEG's "Exif\\0\\0" header before it."""
    from emotion import formats

    upright = _upright()
    plain = _save(_stored(upright, 6), "PNG")
    chunk = formats.png_chunk(b"eXIf", _exif(6).tobytes())
    assert _exif(6).tobytes().startswith(b"Exif\x00\x00")
    decoded = decode_image(plain[:33] + chunk + plain[33:], **LIMITS)
    assert (decoded.width, decoded.height) == (48, 32)
    np.testing.assert_array_equal(decoded.rgb, upright)


@pytest.mark.parametrize(("mode", "long_side"), [("RGB", None), ("RGB", 300), ("RGBA", 256), ("L", None)])
def test_a_png_of_several_bands_decodes_exactly(mode: str, long_side: int | None) -> None:
    pixels = _noise(1024, 1100, {"RGB": 3, "RGBA": 4, "L": 1}[mode])
    pixels_image = Image.fromarray(pixels, mode)
    data = _save(pixels_image, "PNG")
    decoded = decode_image(data, **LIMITS, long_side=long_side)
    factor = 1 if long_side is None else 1100 // long_side
    expected = pixels_image.reduce(factor) if factor > 1 else pixels_image
    if mode == "RGBA":
        white = Image.new("RGBA", expected.size, (255, 255, 255, 255))
        expected = Image.alpha_composite(white, expected)
    np.testing.assert_array_equal(decoded.rgb, np.asarray(expected.convert("RGB")))
    assert (decoded.width, decoded.height) == (1024, 1100)


@pytest.mark.parametrize("height", [1100, 1000])  # three bands of 512 rows, and two
@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_a_whole_image_of_several_bands_is_reduced_exactly(fmt: str, height: int) -> None:
    image = Image.fromarray(_noise(1024, height))
    decoded = decode_image(_save(image, fmt), **LIMITS, long_side=250)
    np.testing.assert_array_equal(decoded.rgb, np.asarray(image.reduce(4)))
    full = decode_image(_save(image, fmt), **LIMITS)
    np.testing.assert_array_equal(full.rgb, np.asarray(image))


@pytest.mark.parametrize(
    ("value", "expected"),
    # 65407 / 257 is 254.502: rounded up only when the range is divided by 65535 exactly
    # 65406 / 257 is 254.498 (rounded down), 65000 * 255 / 65535 is 252.93
    [
        (65535, 255),
        (65407, 255),
        (65406, 254),
        (65000, 253),
        (30000, 117),
        (257 * 100, 100),
        (256, 1),
        (255, 255),
        (200, 200),
    ],
)
def test_16_bit_gray_is_scaled_to_8_bits_when_it_uses_the_range(value: int, expected: int) -> None:
    """The brightest pixel decides: above 255 the whole 16-bit range maps to 0..255 (rounded), at or below
    it the values are already 8-bit ones."""
    pixels = np.full((20, 20), value, dtype=np.uint16)
    pixels[0, 0] = 0
    for fmt, data in (("PNG", pixels), ("TIFF", pixels), ("TIFF", pixels.astype(">u2"))):  # big-endian: I;16B
        decoded = decode_image(_save(Image.fromarray(data), fmt), **LIMITS)
        assert decoded.rgb[5, 5].tolist() == [expected] * 3, fmt
        assert decoded.rgb[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.0, 255), (0.998, 254), (0.5, 128), (0.2, 51), (100.0, 100), (2.0, 2), (32768.0, 128), (70000.0, 255)],
)
def test_float_gray_in_0_to_1_is_scaled_and_above_is_taken_as_8_bit(value: float, expected: int) -> None:
    pixels = np.full((20, 20), value, dtype=np.float32)
    pixels[0, 0] = 0.0
    decoded = decode_image(_save(Image.fromarray(pixels, "F"), "TIFF"), **LIMITS)
    assert decoded.rgb[5, 5].tolist() == [expected] * 3


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_a_transparent_palette_index_is_composited_onto_white(fmt: str) -> None:
    pixels = np.zeros((20, 20), dtype=np.uint8)
    pixels[:, 10:] = 1
    image = Image.fromarray(pixels, "P")
    image.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    decoded = decode_image(_save(image, fmt, transparency=0), **LIMITS)
    assert decoded.rgb[:, :10].tolist() == [[[255, 255, 255]] * 10] * 20
    assert decoded.rgb[:, 10:].tolist() == [[[200, 0, 0]] * 10] * 20
    opaque = decode_image(_save(image, fmt), **LIMITS)
    assert opaque.rgb[:, :10].max() == 0


def test_a_palette_image_with_alpha_is_composited_onto_white() -> None:
    """A PA TIFF (palette indices and an alpha channel): index 0 fully transparent on the left half."""
    indices = np.zeros((20, 20), dtype=np.uint8)
    indices[:, 10:] = 1
    palette = Image.fromarray(indices, "P")
    palette.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    image = palette.convert("PA")
    image.putalpha(Image.fromarray((indices * 255).astype(np.uint8), "L"))
    decoded = decode_image(_save(image, "TIFF"), **LIMITS)
    assert decoded.rgb[:, :10].tolist() == [[[255, 255, 255]] * 10] * 20
    assert decoded.rgb[:, 10:].tolist() == [[[200, 0, 0]] * 10] * 20


@pytest.mark.parametrize(("mode", "key", "colour"), [("RGB", (0, 0, 0), (200, 0, 0)), ("L", 0, 200)])
def test_a_transparent_colour_key_is_composited_onto_white(mode: str, key, colour) -> None:
    """A PNG without alpha whose tRNS chunk names one colour transparent: that colour becomes white."""
    pixels = np.zeros((20, 20, 3) if mode == "RGB" else (20, 20), dtype=np.uint8)
    pixels[:, 10:] = colour
    decoded = decode_image(_save(Image.fromarray(pixels, mode), "PNG", transparency=key), **LIMITS)
    assert decoded.rgb[:, :10].tolist() == [[[255, 255, 255]] * 10] * 20
    assert decoded.rgb[:, 10:].tolist() == [[list(np.broadcast_to(colour, 3))] * 10] * 20
    opaque = decode_image(_save(Image.fromarray(pixels, mode), "PNG"), **LIMITS)
    assert opaque.rgb[:, :10].max() == 0


def test_a_half_transparent_pixel_is_blended_with_white() -> None:
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[..., 3] = 128
    for fmt in ("PNG", "TIFF", "WEBP"):
        options = {"lossless": True} if fmt == "WEBP" else {}
        decoded = decode_image(_save(Image.fromarray(rgba, "RGBA"), fmt, **options), **LIMITS)
        assert np.abs(decoded.rgb.astype(int) - 127).max() <= 1, fmt


def test_the_byte_limit_is_inclusive_and_reported() -> None:
    data = _save(Image.fromarray(_upright()), "PNG")
    assert decode_image(data, max_bytes=len(data), max_pixels=10_000).width == 48
    with pytest.raises(ImageTooLargeError, match=f"the file is {len(data)} bytes; the limit is {len(data) - 1}"):
        decode_image(data, max_bytes=len(data) - 1, max_pixels=10_000)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"])
def test_the_pixel_limit_is_inclusive_and_reported(fmt: str) -> None:
    data = _save(Image.fromarray(_upright(48, 32)), fmt)
    assert decode_image(data, max_bytes=10**6, max_pixels=48 * 32).height == 32
    with pytest.raises(ImageTooLargeError, match=f"declares 48x32 pixels; the limit is {48 * 32 - 1}"):
        decode_image(data, max_bytes=10**6, max_pixels=48 * 32 - 1)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize(("size", "small"), [((16, 16), False), ((15, 40), True), ((40, 15), True)])
def test_the_smallest_side_is_16_pixels(fmt: str, size: tuple[int, int], small: bool) -> None:
    data = _save(Image.new("RGB", size), fmt)
    if small:
        with pytest.raises(ImageTooSmallError, match=f"the image is {size[0]}x{size[1]}"):
            decode_image(data, **LIMITS)
    else:
        assert decode_image(data, **LIMITS).rgb.shape == (16, 16, 3)


def test_the_format_reported_is_the_one_decoded() -> None:
    image = Image.fromarray(_upright())
    for fmt, name in [("JPEG", "jpeg"), ("PNG", "png"), ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tiff"),
                      ("GIF", "gif")]:  # fmt: skip
        decoded = decode_image(_save(image, fmt), **LIMITS)
        assert decoded.format == name
        assert decoded.rgb.flags.c_contiguous and decoded.rgb.dtype == np.uint8
        assert decoded.scale == 1.0


def test_refusals_have_their_types() -> None:
    with pytest.raises(InvalidImageError, match="empty"):
        decode_image(b"", **LIMITS)
    with pytest.raises(InvalidImageError, match="not a JPEG"):
        decode_image(b"<svg/>", **LIMITS)
    png = _save(Image.fromarray(_noise(64, 64)), "PNG")
    with pytest.raises(CorruptImageError):
        decode_image(png[: len(png) // 2] + png[-12:], **LIMITS)


def _webp_with_exif(orientation: int, size: int) -> bytes:
    """A WebP whose EXIF chunk (orientation ``orientation``) is padded to exactly ``size`` bytes (Pillow
    stores the block without its 6-byte ``Exif\\0\\0`` prefix)."""
    exif = _exif(orientation).tobytes()
    stored = _stored(_upright(), orientation)
    return _save(stored, "WEBP", lossless=True, exif=exif + b"\x00" * (size + 6 - len(exif)))


def test_a_webp_exif_block_is_read_up_to_its_limit() -> None:
    from emotion import formats

    at_limit = _webp_with_exif(6, 65_536)  # EXIF blocks are parsed up to 64 KiB (a JPEG's largest)
    assert formats.check_webp(at_limit).exif_bytes == 65_536
    decoded = decode_image(at_limit, **LIMITS)
    assert (decoded.width, decoded.height) == (48, 32)
    np.testing.assert_array_equal(decoded.rgb, _upright())
    over = decode_image(_webp_with_exif(6, 65_537), **LIMITS)
    assert (over.width, over.height) == (32, 48)  # not parsed: stored as it is


def _rle8_bmp(width: int, height: int) -> bytes:
    """A run-length coded 8-bit BMP, every pixel a run of one (the costliest coding for Pillow's decoder)."""
    import struct

    rows = (b"\x01\x05" * width + b"\x00\x00") * height + b"\x00\x01"
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    header = b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(rows), 2835, 2835, 256, 0)
    return header + info + palette + rows


def test_run_length_coded_bmps_are_read_up_to_their_byte_limit() -> None:
    decoded = decode_image(_rle8_bmp(40, 30), **LIMITS)
    assert decoded.rgb.shape == (30, 40, 3) and decoded.rgb.max() == 5
    width = 1000
    height = 1_000_000 // (2 * width + 2) + 1  # just over 1 MB
    with pytest.raises(ImageTooLargeError, match="run-length coded BMPs are read up to 1000000 bytes"):
        decode_image(_rle8_bmp(width, height), **LIMITS)
    small = _rle8_bmp(40, 30)  # padded after its end-of-bitmap code: the limit counts the file's bytes
    assert decode_image(small + bytes(1_000_000 - len(small)), **LIMITS).rgb.shape == (30, 40, 3)
    with pytest.raises(ImageTooLargeError, match="run-length coded BMPs are read up to 1000000 bytes"):
        decode_image(small + bytes(1_000_001 - len(small)), **LIMITS)


def test_damaged_png_image_data_is_corrupt() -> None:
    import struct
    import zlib

    from emotion import formats

    base = _save(Image.fromarray(_noise(64, 64)), "PNG")
    ihdr = base[8:33]
    rows = b"".join(b"\x09" + bytes(64 * 3) for _ in range(64))  # filter type 9 does not exist
    bad_filter = base[:8] + ihdr + formats.png_chunk(b"IDAT", zlib.compress(rows)) + formats.png_chunk(b"IEND", b"")
    with pytest.raises(CorruptImageError, match="cannot be decoded"):
        decode_image(bad_filter, **LIMITS)
    bad_stream = base[:8] + ihdr + formats.png_chunk(b"IDAT", b"\x78\x9c" + b"\xff" * 200)
    with pytest.raises(CorruptImageError, match="cannot be decoded"):
        decode_image(bad_stream + formats.png_chunk(b"IEND", b""), **LIMITS)
    assert struct.unpack(">I", ihdr[8:12])[0] == 64


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF", "GIF", "WEBP", "BMP"])
def test_truncated_image_data_is_corrupt_not_a_crash(fmt: str) -> None:
    data = _save(Image.fromarray(_noise(64, 64)), fmt)
    with pytest.raises(CorruptImageError, match="cannot be"):
        decode_image(data[: len(data) * 2 // 3], **LIMITS)


#: The band conversion's buffers (decode.BAND_BYTES written out: a band of 2^19 pixels in RGBA, 3 copies).
BAND_BYTES = (1 << 19) * 4 * 3


def _budget_cases() -> list[tuple[str, bytes, int]]:
    """Files and what their decode is estimated to need: the frame (bytes a pixel by mode), what the decoder
    keeps besides (WebP 12 bytes a pixel, PNG 1, a run-length BMP's bytearray 1) and the band buffers."""
    from emotion import formats

    w, h = 40, 30
    gray = Image.fromarray(_noise(w, h, 1))
    tiff = _save(gray.convert("RGB"), "TIFF")
    tiff16 = _save(Image.fromarray((_noise(w, h, 1).astype(np.uint16) * 257).astype(">u2")), "TIFF")  # I;16B
    palette = gray.convert("P")
    return [
        ("BMP L", _save(gray, "BMP"), w * h * 1 + BAND_BYTES),
        ("BMP P", _save(palette, "BMP"), w * h * 1 + BAND_BYTES),
        ("BMP 1", _save(gray.convert("1"), "BMP"), w * h * 1 + BAND_BYTES),
        ("BMP RGB", _save(gray.convert("RGB"), "BMP"), w * h * 4 + BAND_BYTES),
        ("GIF", _save(palette, "GIF"), w * h * 1 + BAND_BYTES),
        ("PNG 16-bit", _save(Image.fromarray(_noise(w, h, 1).astype(np.uint16) * 257), "PNG"), w * h * 3 + BAND_BYTES),
        ("WEBP", _save(gray.convert("RGB"), "WEBP", lossless=True), w * h * 16 + BAND_BYTES),
        ("BMP RLE", _rle8_bmp(w, h), w * h * 2 + BAND_BYTES),
        ("JPEG", _save(gray.convert("RGB"), "JPEG"), w * h * 4 + BAND_BYTES),
        ("JPEG L", _save(gray, "JPEG"), w * h * 1 + BAND_BYTES),
        ("TIFF", tiff, w * h * 4 + formats.check_tiff(tiff).strip_bytes + len(tiff) + BAND_BYTES),
        (
            "TIFF 16-bit big-endian",
            tiff16,
            w * h * 2 + formats.check_tiff(tiff16).strip_bytes + len(tiff16) + BAND_BYTES,
        ),
        # an 8-bit PNG in bands of 13,107 rows (2^19 px / 40) plus the row above: 5 copies of the raw rows
        # (a filter byte and 3 bytes a pixel) and the decoded band (4 bytes a pixel)
        ("PNG bands", _save(gray.convert("RGB"), "PNG"), 13_108 * (1 + w * 3) * 5 + 13_108 * w * 4),
    ]


@pytest.mark.parametrize("case", range(13))
def test_the_decode_budget_refuses_exactly_above_the_estimate(case: int) -> None:
    name, data, needed = _budget_cases()[case]
    assert decode_image(data, **LIMITS, max_decode_bytes=needed).rgb.shape == (30, 40, 3), name
    with pytest.raises(ImageTooLargeError, match="needs about") as refused:
        decode_image(data, **LIMITS, max_decode_bytes=needed - 1)
    figures = f"needs about {needed / 1e6:.0f} MB; the limit per image is {(needed - 1) / 1e6:.0f} MB"
    assert figures in str(refused.value)


def test_a_progressive_jpeg_is_refused_when_its_coefficients_are_over_the_budget() -> None:
    from emotion import formats

    data = _save(Image.fromarray(_noise(400, 300)), "JPEG", progressive=True)
    coefficients = formats.check_jpeg(data).coefficient_bytes
    with pytest.raises(ImageTooLargeError, match="a progressive 400x300 JPEG"):
        decode_image(data, **LIMITS, long_side=50, max_decode_bytes=coefficients - 1)
    with pytest.raises(ImageTooLargeError) as exactly:  # the coefficients fit: the band buffers do not
        decode_image(data, **LIMITS, long_side=50, max_decode_bytes=coefficients)
    assert "this 400x300 RGB JPEG" in str(exactly.value), exactly.value
    assert decode_image(data, **LIMITS, long_side=50, max_decode_bytes=coefficients + 10_000_000).width == 400


def test_32_bit_gray_beyond_16_bits_is_clipped_not_wrapped() -> None:
    pixels = np.full((20, 20), 100_000, dtype=np.int32)
    pixels[0, 0] = 0
    decoded = decode_image(_save(Image.fromarray(pixels, "I"), "TIFF"), **LIMITS)
    assert decoded.rgb[5, 5].tolist() == [255] * 3 and decoded.rgb[0, 0].tolist() == [0] * 3


@pytest.mark.parametrize(("mode", "dtype"), [("I", np.int32), ("F", np.float32)])
def test_negative_gray_is_clipped_to_black_not_wrapped(mode: str, dtype: type) -> None:
    pixels: np.ndarray = np.full((20, 20), 200, dtype=dtype)
    pixels[0, 0] = -5
    decoded = decode_image(_save(Image.fromarray(pixels, mode), "TIFF"), **LIMITS)
    assert decoded.rgb[0, 0].tolist() == [0] * 3 and decoded.rgb[5, 5].tolist() == [200] * 3


def test_an_orientation_that_is_not_a_number_is_ignored() -> None:
    import struct

    entry = struct.pack(">HHI", 0x0112, 2, 4) + b"abc\x00"  # ASCII "abc" where a SHORT belongs
    exif = b"Exif\x00\x00MM\x00*" + struct.pack(">IH", 8, 1) + entry + bytes(4)
    decoded = decode_image(_save(Image.fromarray(_upright()), "JPEG", exif=exif, quality=95), **LIMITS)
    assert (decoded.width, decoded.height) == (48, 32) and decoded.rgb.shape == (32, 48, 3)


def test_png_image_data_that_ends_early_is_truncated() -> None:
    import zlib

    from emotion import formats

    base = _save(Image.fromarray(_noise(64, 64)), "PNG")
    half = zlib.compress(b"".join(b"\x00" + bytes(64 * 3) for _ in range(32)))  # a whole stream of 32 rows
    data = base[:33] + formats.png_chunk(b"IDAT", half) + formats.png_chunk(b"IEND", b"")
    with pytest.raises(CorruptImageError) as refused:
        decode_image(data, **LIMITS)
    assert str(refused.value) == "the PNG's image data ends early (truncated)"
    rows = zlib.compress(b"".join(b"\x00" + bytes(64 * 3) for _ in range(64)))
    cut = base[:33] + formats.png_chunk(b"IDAT", rows[: len(rows) // 2]) + formats.png_chunk(b"IEND", b"")
    with pytest.raises(CorruptImageError) as refused:  # a stream cut in the middle: no end, no more data
        decode_image(cut, **LIMITS)
    assert str(refused.value) == "the PNG's image data ends early (truncated)"
