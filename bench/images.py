"""The benchmark photos, built from images that scikit-image ships (no data files are committed)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def _jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def astronaut_512x512() -> bytes:
    """scikit-image's astronaut photo as it ships: 512x512, one face of about 100 px."""
    from skimage import data

    return _jpeg(data.astronaut())


def one_face_640x480() -> bytes:
    """The astronaut photo scaled to 640 wide and cut to 640x480: one face, about 125 px."""
    from skimage import data

    big = np.asarray(Image.fromarray(data.astronaut()).resize((640, 640), Image.Resampling.LANCZOS))
    return _jpeg(big[:480])


def five_faces_1920x1080() -> bytes:
    """Five astronaut faces (about 120-160 px), some mirrored, on the coffee photo stretched to 1920x1080."""
    from skimage import data

    canvas = np.asarray(Image.fromarray(data.coffee()).resize((1920, 1080), Image.Resampling.BILINEAR)).copy()
    head = Image.fromarray(data.astronaut()[10:230, 115:335])
    spots = [(60, 330, 300), (440, 150, 260), (780, 480, 340), (1200, 180, 280), (1540, 560, 360)]
    for i, (x, y, side) in enumerate(spots):
        tile = head.resize((side, side), Image.Resampling.LANCZOS)
        if i % 2:
            tile = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        canvas[y : y + side, x : x + side] = np.asarray(tile)
    return _jpeg(canvas)


def tight_crop_350() -> bytes:
    """A 350x350 tight face crop, like the facial_expressions photos."""
    from skimage import data

    face = Image.fromarray(data.astronaut()[35:195, 145:305]).resize((350, 350), Image.Resampling.LANCZOS)
    return _jpeg(np.asarray(face))


PHOTOS = {
    "astronaut_512x512": astronaut_512x512,
    "one_face_640x480": one_face_640x480,
    "five_faces_1920x1080": five_faces_1920x1080,
    "tight_crop_350x350": tight_crop_350,
}
