"""Image → faces: OpenCV Haar cascades at a bounded working resolution, boxes in input pixels."""

from __future__ import annotations

import queue
from dataclasses import dataclass

import cv2
import numpy as np

FRONTAL_CASCADE = "haarcascade_frontalface_default.xml"
WINDOW = 24  # the cascade's own window: the smallest face it can see at the working size

# A function instance serves concurrent requests on threads of one process on about one vCPU:
# OpenCV's own worker threads would only oversubscribe it.
cv2.setNumThreads(1)


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

    def as_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


class FaceDetector:
    """Finds frontal faces. ``CascadeClassifier`` is not thread-safe, so each call borrows one from a
    pool that grows only to the number of calls running at once (the analyzer bounds that)."""

    def __init__(self, max_side: int = 640, scale_factor: float = 1.3, min_neighbors: int = 3) -> None:
        """Haar cost grows with the pixels searched, so the working image is at most ``max_side`` long."""
        self.max_side = max_side
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self._path = cv2.data.haarcascades + FRONTAL_CASCADE
        self._idle: queue.SimpleQueue[cv2.CascadeClassifier] = queue.SimpleQueue()
        self._idle.put(self._load())  # load now, so a broken OpenCV install fails at cold start

    def _load(self) -> cv2.CascadeClassifier:
        cascade = cv2.CascadeClassifier(self._path)
        if cascade.empty():
            raise RuntimeError(f"cannot load the face cascade {self._path}")
        return cascade

    def _borrow(self) -> cv2.CascadeClassifier:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self._load()

    def detect(self, gray: np.ndarray, min_face: float = 48.0) -> list[Box]:
        """Faces of at least ``min_face`` px in a uint8 grayscale image, largest first.

        The image is shrunk until such a face just fills the cascade's 24 px window: smaller faces would
        be too small to classify anyway, and every halving of the size quarters the work.
        """
        height, width = gray.shape
        scale = min(1.0, self.max_side / max(height, width), WINDOW / max(min_face, WINDOW))
        small = (
            gray
            if scale == 1.0
            else cv2.resize(
                gray, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
            )
        )
        cascade = self._borrow()
        try:
            found = cascade.detectMultiScale(
                small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(WINDOW, WINDOW)
            )
        finally:
            self._idle.put(cascade)
        boxes = [
            _clip(Box(*(round(v / scale) for v in rect)), width, height) for rect in np.asarray(found).reshape(-1, 4)
        ]
        return sorted(boxes, key=lambda b: b.area, reverse=True)


def _clip(box: Box, width: int, height: int) -> Box:
    x, y = max(0, box.x), max(0, box.y)
    return Box(x, y, min(box.width, width - x), min(box.height, height - y))


def to_full_size(box: Box, scale: float, width: int, height: int) -> Box:
    """``box`` found on pixels decoded at ``scale``, in the coordinates of the ``width`` x ``height`` image."""
    if scale == 1.0:
        return box
    return _clip(Box(*(round(v / scale) for v in (box.x, box.y, box.width, box.height))), width, height)


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
