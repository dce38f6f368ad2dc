"""Bytes → image: decode a photo safely (size limits before pixels, EXIF orientation, any mode → RGB)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


@dataclass(frozen=True)
class DecodedImage:
    """Orientation-corrected 8-bit RGB pixels, the format, and the full (oriented) size of the file.

    ``rgb`` is smaller than ``width`` x ``height`` when a large JPEG was decoded at reduced scale.
    """

    rgb: np.ndarray
    format: str
    width: int
    height: int

    @property
    def scale(self) -> float:
        """Pixels of ``rgb`` per pixel of the full image (1.0 when decoded at full size)."""
        return self.rgb.shape[1] / self.width


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int, long_side: int | None = None) -> DecodedImage:
    """Decode ``data``; raises a typed ``EmotionError`` for anything that is not a usable photo.

    ``long_side`` is the resolution the caller needs: JPEGs larger than that are decoded at the smallest
    DCT scale (1/2, 1/4, 1/8) that still gives it, which is several times faster for phone photos.
    """
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"the file is {len(data)} bytes; the limit is {max_bytes}")
    if not data:
        raise InvalidImageError("the image is empty")
    try:
        # Our own pixel limit is checked right after the header is read; Pillow's bomb error (far above it)
        # stays as a second guard. No warnings filter here: that is process-wide state, unsafe across threads.
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise InvalidImageError("the data is not an image in a supported format") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"the image declares too many pixels; the limit is {max_pixels}") from exc
    except Exception as exc:  # Pillow's header parsers raise many types on damaged headers.
        raise CorruptImageError(f"the image header cannot be read: {exc}") from exc
    with image:
        name = FORMATS.get(image.format or "")
        if name is None:
            raise InvalidImageError(f"{image.format} images are not supported; send JPEG, PNG, WebP, BMP, TIFF or GIF")
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLargeError(f"the image declares {width}x{height} pixels; the limit is {max_pixels}")
        if min(width, height) < MIN_SIDE:
            raise ImageTooSmallError(f"the image is {width}x{height}; a face needs at least {MIN_SIDE} px a side")
        rgb, oriented = _pixels(image, long_side)
    return DecodedImage(rgb=rgb, format=name, width=oriented[0], height=oriented[1])


def _pixels(image: Image.Image, long_side: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """Load the first frame (reduced if allowed), apply EXIF orientation, convert any mode to 8-bit RGB."""
    width, height = image.size
    try:
        if image.getexif().get(ORIENTATION_TAG) in (5, 6, 7, 8):
            width, height = height, width
        ratio = long_side / max(width, height) if long_side else 1.0
        if image.format in ("JPEG", "MPO") and ratio < 1.0:
            image.draft(image.mode, (math.ceil(image.size[0] * ratio), math.ceil(image.size[1] * ratio)))
        image.seek(0)
        image.load()
        oriented = ImageOps.exif_transpose(image) or image
        return _to_rgb(oriented), (width, height)
    except Exception as exc:  # truncated data, bad compression streams, broken EXIF, ...
        raise CorruptImageError(f"the image cannot be decoded: {exc}") from exc


def _to_rgb(image: Image.Image) -> np.ndarray:
    """8-bit RGB from any Pillow mode: 16-bit and float are scaled (not clipped), alpha goes onto white."""
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        peak = values.max(initial=0)
        scale = 255.0 if mode == "F" and peak <= 1.0 else (255.0 / 65535.0 if peak > 255 else 1.0)
        gray = np.clip(values * scale + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if rgb.size == 0:
        raise CorruptImageError("the image has no pixels")
    return np.ascontiguousarray(rgb)
