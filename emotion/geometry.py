"""Boxes in image pixels: clipping, scaling to full size, the whole-image box and the crop square.

Pure arithmetic on integers: the detector makes boxes, the pipeline scales and crops with them, the
preview draws them, and none of that needs the detector's runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Box:
    """A rectangle in the pixel coordinates of the (orientation-corrected) input image."""

    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height

    def to_json(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


def clip(box: Box, width: int, height: int) -> Box:
    """``box`` cut to the ``width`` x ``height`` image (a box wholly outside gets a side of 0 or less)."""
    x, y = max(0, box.x), max(0, box.y)
    return Box(x, y, min(box.width + box.x - x, width - x), min(box.height + box.y - y, height - y))


def to_full_size(box: Box, scale: float, width: int, height: int) -> Box:
    """``box`` found on pixels decoded at ``scale``, in the coordinates of the ``width`` x ``height`` image."""
    if scale == 1.0:
        return box
    return clip(Box(*(round(v / scale) for v in (box.x, box.y, box.width, box.height))), width, height)


def whole_image(width: int, height: int) -> Box:
    """The box used when no face is found and the whole image is classified as one face."""
    return Box(0, 0, width, height)


def crop_region(box: Box, margin: float, width: int, height: int) -> Box:
    """``box`` grown by ``margin`` of its size on every side and squared, kept inside the image."""
    side = round(max(box.width, box.height) * (1 + 2 * margin))
    side = min(side, width, height)
    cx, cy = box.x + box.width / 2, box.y + box.height / 2
    x = int(min(max(round(cx - side / 2), 0), width - side))
    y = int(min(max(round(cy - side / 2), 0), height - side))
    return Box(x, y, side, side)
