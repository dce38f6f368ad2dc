"""Bytes → image: decode a photo in bounded memory, at the resolution the pipeline needs.

The strategy, for every accepted format:

- the signature picks exactly one Pillow decoder (``Image.open(formats=...)``: ICO, EPS, PPM and the rest
  never parse), and ``emotion.formats`` walks the file's structure first, refusing what would cost far
  more than its size (scans, fill bytes, strip counts, chunk counts);
- what the decoder will allocate (its full-size frame, libjpeg's coefficient buffer, a TIFF strip, the
  WebP canvas) is estimated from the header and refused with ``ImageTooLargeError`` when over the budget;
- JPEGs decode at a reduced DCT scale; non-interlaced 8-bit PNGs decode in bands of rows (each band a
  small PNG Pillow decodes), so a 40 MP PNG never exists at full size;
- the decoded frame is converted to RGB and reduced band by band (no full-size copy), and the EXIF
  orientation is applied to the small result.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np
from PIL import Image, UnidentifiedImageError

from emotion import formats
from emotion.errors import CorruptImageError, ImageTooLargeError, ImageTooSmallError, InvalidImageError

#: Pillow format names we accept, and the name the result reports for each.
FORMATS: dict[str, str] = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "BMP": "bmp",
    "TIFF": "tiff",
    "GIF": "gif",
}
MIN_SIDE = 16
ORIENTATION_TAG = 0x0112
#: Pixels converted at once (a band of rows): a few MB whatever the image's size.
BAND_PIXELS = 1 << 19
#: Bytes per pixel of a Pillow frame by mode (RGB, RGBA, CMYK, I and F take 4).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
#: What the decoders allocate besides the frame, per pixel (measured with Pillow 13 on 6 MP images): libwebp
#: keeps its own RGBA canvas and hands Pillow a copy (15.2 bytes a pixel in all); Pillow's PNG decoder
#: keeps row buffers (16-bit gray: 3.4); Pillow's BMP RLE decoder builds the frame in a bytearray first.
_EXTRA_BYTES_PER_PIXEL = {"WEBP": 12, "PNG": 1, "BMP_RLE": 1}
#: The band conversion's own buffers (a band in RGBA and its converted copies), whatever the image's size.
BAND_BYTES = BAND_PIXELS * 4 * 3
#: Pillow's BMP RLE decoder is Python, about 1 µs a run on this machine when shared: a file of run-length
#: coded BMP is held to this size (a scanned page is far smaller; runs of one pixel make the worst case).
MAX_RLE_BYTES = 1_000_000
#: Transient copies in a PNG band: inflated rows, the band PNG, its compressed data, the decoded band.
_PNG_BAND_COPIES = 5
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_PNG_RAWMODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}


@dataclass(frozen=True)
class DecodedImage:
    """Orientation-corrected 8-bit RGB pixels, the format, and the full (oriented) size of the file.

    ``rgb`` is smaller than ``width`` x ``height`` when a large image was decoded at reduced scale.
    """

    rgb: np.ndarray
    format: str
    width: int
    height: int

    @property
    def scale(self) -> float:
        """Pixels of ``rgb`` per pixel of the full image (1.0 when decoded at full size)."""
        return float(self.rgb.shape[1] / self.width)


def decode_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    long_side: int | None = None,
    max_decode_bytes: int | None = None,
) -> DecodedImage:
    """Decode ``data``; raises a typed ``EmotionError`` for anything that is not a usable photo.

    ``long_side`` is the resolution the caller needs: larger images are reduced (JPEG by DCT scaling,
    others by an integer factor while decoding) to no less than that. ``max_decode_bytes`` bounds what
    the decoder may allocate; an image that needs more is refused before its pixels exist.
    """
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"the file is {len(data)} bytes; the limit is {max_bytes}")
    if not data:
        raise InvalidImageError("the image is empty")
    kind = formats.sniff(data)
    budget = max_decode_bytes or math.inf
    extra, exif_ok, orientation = 0.0, kind != "PNG", None
    if kind == "PNG":
        png = formats.read_png(data)
        _check_size(png.width, png.height, max_pixels)
        if not png.interlaced and png.depth == 8:
            return _decode_png_bands(png, long_side, budget)
        data = png.sanitized()  # Pillow decodes it whole: only the critical chunks, no ancillary ones
        orientation = _png_orientation(png.exif)  # (Pillow's own PNG getexif() would decode the pixels)
    if kind == "JPEG":
        jpeg = formats.check_jpeg(data)
        if jpeg.whole_image_buffer and jpeg.coefficient_bytes > budget:
            raise _over_budget(f"a progressive {jpeg.width}x{jpeg.height} JPEG", jpeg.coefficient_bytes, budget)
    elif kind == "TIFF":
        extra = formats.check_tiff(data).strip_bytes + len(data)
    elif kind == "WEBP":
        exif_ok = formats.check_webp(data).exif_bytes <= formats.MAX_EXIF_BYTES
    try:
        image = Image.open(io.BytesIO(data), formats=[kind])
    except UnidentifiedImageError as exc:
        raise CorruptImageError(f"the {kind} image header cannot be read") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"the image declares too many pixels; the limit is {max_pixels}") from exc
    except Exception as exc:  # Pillow's header parsers raise many types on damaged headers.
        raise CorruptImageError(f"the image header cannot be read: {exc}") from exc
    with image:
        width, height = image.size
        _check_size(width, height, max_pixels)
        if exif_ok:
            orientation = _exif_orientation(image)
        rgb = _load_reduced(image, kind, long_side, budget, extra, len(data))
    oriented = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return DecodedImage(
        rgb=_orient(rgb, orientation), format=FORMATS[image.format or kind], width=oriented[0], height=oriented[1]
    )


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(f"the image declares {width}x{height} pixels; the limit is {max_pixels}")
    if min(width, height) < MIN_SIDE:
        raise ImageTooSmallError(f"the image is {width}x{height}; a face needs at least {MIN_SIDE} px a side")


def _over_budget(what: str, needed: float, budget: float) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"decoding {what} needs about {needed / 1e6:.0f} MB; the limit per image is {budget / 1e6:.0f} MB "
        "(send it smaller, or as a baseline JPEG)"
    )


def _factor(width: int, height: int, long_side: int | None) -> int:
    """The integer reduction that keeps the long side at least ``long_side``."""
    return max(1, max(width, height) // long_side) if long_side else 1


def _band_rows(width: int, factor: int) -> int:
    """Rows converted at once: a multiple of the reduction factor, about ``BAND_PIXELS`` pixels."""
    return factor * max(1, BAND_PIXELS // (width * factor))


def _load_reduced(
    image: Image.Image, kind: str, long_side: int | None, budget: float, extra: float, file_bytes: int
) -> np.ndarray:
    """Decode the first frame (JPEG at reduced scale) within ``budget``, then convert and reduce by bands."""
    width, height = image.size
    try:
        if kind == "JPEG" and long_side and max(width, height) > long_side:
            ratio = long_side / max(width, height)
            image.draft(image.mode, (math.ceil(width * ratio), math.ceil(height * ratio)))
        tile = getattr(image, "tile", None)  # the decoder Pillow chose (not in its type stubs)
        if kind == "BMP" and tile and tile[0][0] == "bmp_rle":
            if file_bytes > MAX_RLE_BYTES:
                raise ImageTooLargeError(f"run-length coded BMPs are read up to {MAX_RLE_BYTES} bytes")
            extra += width * height * _EXTRA_BYTES_PER_PIXEL["BMP_RLE"]
        pixels = image.size[0] * image.size[1]
        needed = pixels * (_MODE_BYTES.get(image.mode, 4) + _EXTRA_BYTES_PER_PIXEL.get(kind, 0)) + extra + BAND_BYTES
        if needed > budget:
            raise _over_budget(f"this {width}x{height} {image.mode} {kind}", needed, budget)
        image.seek(0)
        image.load()
        return _reduce(image, _factor(*image.size, long_side))
    except ImageTooLargeError:
        raise
    except Exception as exc:  # truncated data, bad compression streams, ...
        raise CorruptImageError(f"the image cannot be decoded: {exc}") from exc


def _reduce(image: Image.Image, factor: int) -> np.ndarray:
    """8-bit RGB of the whole frame reduced by ``factor``, converted a band of rows at a time."""
    width, height = image.size
    scale = _gray_scale(image)
    step = _band_rows(width, factor)
    boxes: list[tuple[int, int, int, int] | None] = [None] if step >= height else list(_row_bands(width, height, step))
    bands = [_band_rgb(image, factor, scale, box) for box in boxes]
    return _stack(bands)


def _row_bands(width: int, height: int, step: int) -> list[tuple[int, int, int, int]]:
    """The boxes of consecutive bands of ``step`` rows (the last one may be shorter)."""
    return [(0, top, width, min(height, top + step)) for top in range(0, height, step)]


def _stack(bands: list[np.ndarray]) -> np.ndarray:
    rgb = np.concatenate(bands) if len(bands) > 1 else bands[0]
    if rgb.size == 0:
        raise CorruptImageError("the image has no pixels")
    return np.ascontiguousarray(rgb)


def _gray_scale(image: Image.Image) -> float:
    """For 16-bit, 32-bit and float gray: the factor to 8 bits (scaled, not clipped)."""
    mode = image.mode
    if not (mode.startswith("I") or mode == "F"):
        return 1.0
    if mode == "I;16B":  # Pillow has no extrema for big-endian 16-bit: the peak band by band
        boxes = _row_bands(*image.size, _band_rows(image.width, 1))
        peak = max(float(np.asarray(image.crop(box)).max()) for box in boxes)
    else:
        peak = cast(tuple[float, float], image.getextrema())[1]  # single-band modes: one (low, high) pair
    if mode == "F" and peak <= 1.0:
        return 255.0
    return 255.0 / 65535.0 if peak > 255 else 1.0


def _band_rgb(
    image: Image.Image, factor: int, scale: float = 1.0, box: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """Rows ``box`` (default: all) of ``image`` to 8-bit RGB, reduced by ``factor``: 16-bit and float gray
    are scaled, and alpha goes onto white (after the reduction, on the small image)."""
    mode = image.mode
    band = image.crop(box) if box else image
    if mode.startswith("I") or mode == "F":
        values = np.asarray(band, dtype=np.float32)
        band = Image.fromarray(np.clip(values * scale + 0.5, 0, 255).astype(np.uint8))
    elif mode == "PA" or "transparency" in image.info:  # a palette index or (L, RGB) a colour keyed transparent
        band = band.convert("RGBA")
    elif mode not in ("L", "RGB", "RGBA", "LA"):
        band = band.convert("RGB")
    small = band.reduce(factor) if factor > 1 else band
    if small.mode in ("RGBA", "LA"):
        rgba = small.convert("RGBA")
        small = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(small if small.mode == "RGB" else small.convert("RGB"), dtype=np.uint8)


def _orient(rgb: np.ndarray, orientation: int | None) -> np.ndarray:
    """Apply the EXIF orientation to the (small) decoded pixels."""
    method = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    return rgb if method is None else np.ascontiguousarray(np.asarray(Image.fromarray(rgb).transpose(method)))


def _decode_png_bands(png: formats.PngFile, long_side: int | None, budget: float) -> DecodedImage:
    """A non-interlaced 8-bit PNG, a band of rows at a time: inflate the rows, let Pillow unfilter them.

    Each band becomes a small PNG of its own whose first row is the previous band's last row, stored
    unfiltered, so the filters that refer to the row above see the right values.
    """
    factor = _factor(png.width, png.height, long_side)
    step = _band_rows(png.width, factor)
    row_bytes = 1 + png.width * png.channels
    needed = (step + 1) * row_bytes * _PNG_BAND_COPIES + (step + 1) * png.width * 4
    if needed > budget:
        raise _over_budget(f"a {png.width}x{png.height} PNG (a band of {step} rows)", needed, budget)
    read = _inflate(png.idat)
    bands, previous = [], b""
    try:
        for top in range(0, png.height, step):
            count = min(step, png.height - top)
            raw = bytearray(b"\x00" + previous if previous else b"")
            read(raw, count * row_bytes)
            data = zlib.compress(raw, 0)
            del raw
            # Pillow does not check the CRC of image data, so the band's is left zero (not computed).
            band_png = b"".join(
                (png.header(height=count + bool(previous), interlaced=False), struct.pack(">I", len(data)), b"IDAT",
                 data, bytes(4), formats.png_chunk(b"IEND", b""))
            )  # fmt: skip
            del data
            band = Image.open(io.BytesIO(band_png), formats=["PNG"])
            band.load()
            del band_png
            box = (0, 1, png.width, band.height) if previous else None
            previous = band.crop((0, band.height - 1, png.width, band.height)).tobytes("raw", _PNG_RAWMODES[png.colour])
            bands.append(_band_rgb(band, factor, box=box))
    except CorruptImageError:
        raise
    except Exception as exc:  # a bad zlib stream or filter byte
        raise CorruptImageError(f"the image cannot be decoded: {exc}") from exc
    orientation = _png_orientation(png.exif)
    rgb = _orient(_stack(bands), orientation)
    size = (png.height, png.width) if orientation in (5, 6, 7, 8) else (png.width, png.height)
    return DecodedImage(rgb=rgb, format="png", width=size[0], height=size[1])


def _inflate(chunks: list[memoryview]) -> Callable[[bytearray, int], None]:
    """A reader that appends the next ``count`` inflated bytes of the image data to a buffer."""
    inflater = zlib.decompressobj()
    source: Iterator[memoryview] = iter(chunks)

    def read(out: bytearray, count: int) -> None:
        goal = len(out) + count
        while len(out) < goal:
            pending = inflater.unconsumed_tail or next(source, None)
            if pending is None or inflater.eof:
                raise CorruptImageError("the PNG's image data ends early (truncated)")
            out += inflater.decompress(pending, goal - len(out))

    return read


def _exif_orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(ORIENTATION_TAG)
    except Exception:  # a broken EXIF block: the orientation is unknown, the pixels may still be fine
        return None


def _png_orientation(exif: bytes) -> int | None:
    if not exif:
        return None
    try:
        parsed = Image.Exif()
        parsed.load(exif if exif.startswith(b"Exif") else b"Exif\x00\x00" + exif)
        return parsed.get(ORIENTATION_TAG)
    except Exception:
        return None
