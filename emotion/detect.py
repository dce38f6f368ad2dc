"""Image → faces: MediaPipe's BlazeFace networks run with LiteRT, boxes in input pixels.

Two networks cover all face sizes. The short-range one (128x128 input) sees faces that fill much of the
frame, such as tight crops and selfies; the full-range one (192x192) sees faces down to about 18 px of its
input. It runs on overlapping tiles of a working image scaled so that the smallest wanted face is 18 px,
and on the whole image when the tiles and the short-range network leave a gap between them. Detections of
all passes are merged by weighted non-maximum suppression, as MediaPipe does.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emotion.config import Settings
from emotion.geometry import Box, clip
from emotion.litert import MODELS_DIR, load_interpreter

DETECTOR_DIR = MODELS_DIR / "face_detection"
#: The smallest face, in input pixels, that the full-range network finds reliably (measured: 11 of 12
#: pasted faces at 18 px, 5 of 12 at 16 px).
SMALLEST_FACE = 18
#: The short-range network finds faces down to about this fraction of the image's longer side (measured:
#: 8 of 8 pasted faces at 16%, 6 of 8 at 12.5%); the full-range one covers the sizes between.
SHORT_RANGE_REACH = 0.2
#: Tiles overlap by this many working pixels, so every face up to this size lies whole inside one tile.
TILE_OVERLAP = 64
#: Detections overlapping more than this (intersection over union) are one face.
NMS_IOU = 0.3


@dataclass(frozen=True)
class Detection:
    """A face the detector found: where, and how sure its network is (0..1)."""

    box: Box
    score: float


@dataclass(frozen=True)
class Network:
    """One BlazeFace network: its file, square input size, SSD anchor layout and score threshold.

    ``grids`` lists (cells per side, anchors per cell) as MediaPipe's anchor calculator lays them out.
    ``grow`` and ``lift`` move its boxes onto the framing the emotion model was trained with (the Haar
    cascade's, whose crops were cut for fine-tuning): the side is multiplied by ``grow`` and the centre
    raised by ``lift`` sides; both were measured on the photos where the two detectors agree.
    """

    file: str
    size: int
    grids: tuple[tuple[int, int], ...]
    min_score: float
    grow: float
    lift: float

    @property
    def path(self) -> Path:
        return DETECTOR_DIR / self.file

    def anchors(self) -> np.ndarray:
        """Anchor centres ``(A, 2)`` as fractions of the input, in the order of the network's outputs."""
        layers = []
        for cells, per_cell in self.grids:
            centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
            ys, xs = np.meshgrid(centres, centres, indexing="ij")
            layers.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), per_cell, axis=0))
        return np.concatenate(layers)


SHORT_RANGE = Network("face_detection_short_range.tflite", 128, ((16, 2), (8, 6)), 0.5, 0.94, 0.12)
FULL_RANGE = Network("face_detection_full_range.tflite", 192, ((48, 1),), 0.6, 0.96, 0.06)


class _Runner:
    """Runs one network on square tiles with one interpreter. An interpreter is not thread-safe, and each
    one holds about 10 MB (XNNPACK's packed weights), more than the memory budget allows per thread: calls
    from other threads wait their turn, as they do for the emotion model."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self._anchors = network.anchors()
        self._interpreter = load_interpreter(network.path)  # now, so a broken file fails at cold start
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._outputs = {o["shape"][-1]: o["index"] for o in self._interpreter.get_output_details()}
        self._lock = threading.Lock()

    def run(self, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``(K, 4)`` as x, y, width, height in pixels of ``tile`` (uint8 RGB, at most the input
        size a side, placed top-left and padded), and their scores ``(K,)``, for scores over the threshold."""
        size = self.network.size
        batch = np.zeros((1, size, size, 3), dtype=np.float32)
        batch[0, : tile.shape[0], : tile.shape[1]] = tile.astype(np.float32) / 127.5 - 1.0
        with self._lock:
            self._interpreter.set_tensor(self._input, batch)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._outputs[16])[0]
            logits = self._interpreter.get_tensor(self._outputs[1])[0, :, 0]
        keep = np.flatnonzero(logits > math.log(self.network.min_score / (1.0 - self.network.min_score)))
        scores = 1.0 / (1.0 + np.exp(-logits[keep].astype(np.float64)))
        centres = self._anchors[keep] * size + raw[keep, :2]
        sides = raw[keep, 2:4] * self.network.grow
        centres[:, 1] -= sides[:, 1] * self.network.lift
        return np.concatenate([centres - sides / 2, sides], axis=1), scores


class FaceDetector:
    """Finds faces of at least ``min_face`` px; safe to share between threads."""

    def __init__(self, max_side: int = Settings.detect_max_side) -> None:
        """``max_side`` bounds the working image the tiles cover (cost grows with its area), which puts
        a floor under the smallest face found in large photos: 18 / 480 of their longer side."""
        self.max_side = max_side
        self._short = _Runner(SHORT_RANGE)
        self._full = _Runner(FULL_RANGE)

    def detect(self, rgb: np.ndarray, min_face: float = Settings.detect_min_face) -> list[Detection]:
        """Faces in a uint8 RGB image, largest first, merged over the passes described in the module."""
        height, width = rgb.shape[:2]
        longest = max(height, width)
        scale = min(1.0, SMALLEST_FACE / max(min_face, 1.0), self.max_side / longest)
        found = [self._whole(self._short, rgb)]
        tiled = longest * scale > FULL_RANGE.size  # the whole-image full-range pass misses the smallest faces
        if tiled:
            found.append(self._tiled(rgb, scale))
        if not tiled or TILE_OVERLAP / scale < SHORT_RANGE_REACH * longest:  # a gap between tiles and short range
            found.append(self._whole(self._full, rgb))
        boxes, scores = (np.concatenate(parts) for parts in zip(*found, strict=True))
        return _merge(boxes, scores, width, height)

    @staticmethod
    def _whole(runner: _Runner, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One pass over the whole image shrunk to fit the network's input."""
        height, width = rgb.shape[:2]
        scale = runner.network.size / max(height, width)
        small = _resize(rgb, scale)
        boxes, scores = runner.run(small)
        return boxes / np.array([small.shape[1] / width, small.shape[0] / height] * 2), scores

    def _tiled(self, rgb: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """The full-range network over overlapping tiles of the image at ``scale``. A face belongs to the
        tile whose core (the tile less half the overlap on inner sides) holds its centre, so a face cut
        by one tile's edge is taken from the neighbour that holds it whole."""
        height, width = rgb.shape[:2]
        small = _resize(rgb, scale)
        size, half = FULL_RANGE.size, TILE_OVERLAP // 2
        boxes, scores = [], []
        for top in _starts(small.shape[0], size):
            for left in _starts(small.shape[1], size):
                tile = small[top : top + size, left : left + size]
                found, score = self._full.run(tile)
                centre_x = found[:, 0] + found[:, 2] / 2
                centre_y = found[:, 1] + found[:, 3] / 2
                inside = (
                    ((left == 0) | (centre_x >= half))
                    & ((left + size >= small.shape[1]) | (centre_x < size - half))
                    & ((top == 0) | (centre_y >= half))
                    & ((top + size >= small.shape[0]) | (centre_y < size - half))
                )
                boxes.append(found[inside] + np.array([left, top, 0, 0]))
                scores.append(score[inside])
        ratio = np.array([small.shape[1] / width, small.shape[0] / height] * 2)
        return np.concatenate(boxes) / ratio, np.concatenate(scores)


def _resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    height, width = rgb.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _starts(length: int, size: int) -> list[int]:
    """Tile origins along one axis: tiles of ``size`` overlapping by at least ``TILE_OVERLAP``."""
    if length <= size:
        return [0]
    count = math.ceil((length - TILE_OVERLAP) / (size - TILE_OVERLAP))
    return [round(i * (length - size) / (count - 1)) for i in range(count)]


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression: each cluster of overlapping detections becomes the
    score-weighted mean of its boxes (steadier than keeping the single best one) and its best score."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    merged = []
    while len(boxes):
        overlap = _iou(boxes[0], boxes) > NMS_IOU
        overlap[0] = True
        weights = scores[overlap]
        merged.append(((boxes[overlap] * weights[:, None]).sum(axis=0) / weights.sum(), float(scores[0])))
        boxes, scores = boxes[~overlap], scores[~overlap]
    return merged


def _merge(boxes: np.ndarray, scores: np.ndarray, width: int, height: int) -> list[Detection]:
    """The detections of all passes as one box a face: merged, in whole pixels inside the image, largest first."""
    merged = [
        Detection(clip(Box(*np.rint(box).astype(int).tolist()), width, height), score)
        for box, score in _weighted_nms(boxes, scores)
    ]
    kept = _drop_enclosing([d for d in merged if d.box.width > 0 and d.box.height > 0])
    return sorted(kept, key=lambda d: d.box.area, reverse=True)


def _drop_enclosing(found: list[Detection]) -> list[Detection]:
    """The detections, less those around the centre of a smaller, surer face or of two smaller faces.

    The short-range network sometimes answers small faces with a large, unsure box around them (overlapping
    too little for suppression to merge the two), and a face never holds another face.
    """

    def centre_in(inner: Box, outer: Box) -> bool:
        cx, cy = inner.x + inner.width / 2, inner.y + inner.height / 2
        return outer.x <= cx < outer.x + outer.width and outer.y <= cy < outer.y + outer.height

    kept = []
    for face in found:
        inside = [o.score for o in found if o.box.area < face.box.area and centre_in(o.box, face.box)]
        if len(inside) < 2 and not any(score >= face.score for score in inside):
            kept.append(face)
    return kept


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[0] + box[2], boxes[:, 0] + boxes[:, 2])
    y2 = np.minimum(box[1] + box[3], boxes[:, 1] + boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = np.maximum(box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - inter, 1e-9)
    return np.asarray(inter / union, dtype=np.float64)
