"""Bytes → image: decode a photo safely (size limits before pixels, EXIF orientation, any mode → RGB)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

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

# Our own pixel limit is checked before decoding; Pillow's global guard stays as a second line of defence.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class DecodedImage:
    """An orientation-corrected 8-bit RGB image and the format it came in."""

    rgb: np.ndarray
    format: str

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> DecodedImage:
    """Decode ``data``; raises a typed ``EmotionError`` for anything that is not a usable photo."""
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"the file is {len(data)} bytes; the limit is {max_bytes}")
    if not data:
        raise InvalidImageError("the image is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise InvalidImageError("the data is not an image in a supported format") from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
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
        rgb = _pixels(image)
    return DecodedImage(rgb=rgb, format=name)


def _pixels(image: Image.Image) -> np.ndarray:
    """Load the first frame, apply EXIF orientation and convert any mode to 8-bit RGB."""
    try:
        image.seek(0)
        image.load()
        oriented = ImageOps.exif_transpose(image) or image
        return _to_rgb(oriented)
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
