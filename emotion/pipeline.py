"""The pipeline: bytes → image → faces → probabilities → result (and preview)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from emotion import memory
from emotion.classifier import EmotionClassifier
from emotion.config import PIPELINE_MB, Settings
from emotion.decode import DecodedImage, decode_image
from emotion.detect import FaceDetector
from emotion.geometry import Box, crop_region, to_full_size, whole_image
from emotion.labels import EMOTIONS
from emotion.preview import MAX_SIDE as PREVIEW_SIDE
from emotion.preview import render_preview
from emotion.result import DetectionKind, Face, ImageInfo, Preview, Result, Timing

#: Context kept around a detected face when cropping it for the model (FER2013 crops include some).
CROP_MARGIN = 0.1


@dataclass(frozen=True)
class Faces:
    """What detection found: boxes on the decoded pixels, the same at full size, how, and the crops."""

    boxes: list[Box]
    full_boxes: list[Box]
    detection: DetectionKind
    scores: list[float | None]
    crops: list[np.ndarray]


class Analyzer:
    """Holds the model and detector for one process; ``analyze`` is safe to call from many threads."""

    def __init__(self, settings: Settings | None = None, classifier: EmotionClassifier | None = None) -> None:
        self.settings = settings or Settings()
        self.classifier = classifier or EmotionClassifier()
        self.detector = FaceDetector(max_side=self.settings.detect_max_side)
        # The work is CPU-bound: more images in flight than cores only adds memory (decoded pixels,
        # per-thread allocator arenas), so requests beyond this wait their turn.
        self._slots = threading.BoundedSemaphore(self.settings.max_parallel_analyses)

    def analyze(self, data: bytes | Callable[[], bytes], *, preview: bool = True) -> Result:
        """The result for one image file; raises a typed ``EmotionError`` for bad input.

        ``data`` may be a function that reads the file: it is called once a slot is free, so requests
        that wait hold no bodies in memory.
        """
        with self._slots, memory.given_back():
            return self._analyze(data() if callable(data) else data, preview)

    def decode(self, data: bytes) -> DecodedImage:
        """The image at the resolution the pipeline needs (see ``decode_image``), within this analysis's
        share of the instance's memory, less the file itself and the rest of the pipeline."""
        settings = self.settings
        return decode_image(
            data,
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            long_side=max(settings.detect_max_side, PREVIEW_SIDE),
            max_decode_bytes=settings.analysis_memory_bytes - len(data) - PIPELINE_MB * 1_000_000,
        )

    def find_faces(self, image: DecodedImage) -> Faces:
        """Boxes and the crops the model sees; training data for photos is cut with this same code."""
        gray = cv2.cvtColor(image.rgb, cv2.COLOR_RGB2GRAY)
        found = self.detector.detect(image.rgb, min_face=self.settings.detect_min_face * image.scale)
        boxes = [face.box for face in found]
        scores: list[float | None] = [face.score for face in found]
        full_boxes = [to_full_size(box, image.scale, image.width, image.height) for box in boxes]
        detection: DetectionKind = "face"
        if not boxes and self.settings.whole_image_fallback:
            boxes, detection, scores = [whole_image(gray.shape[1], gray.shape[0])], "whole_image", [None]
            full_boxes = [whole_image(image.width, image.height)]
        return Faces(boxes, full_boxes, detection, scores, [_crop(gray, box, detection) for box in boxes])

    def _analyze(self, data: bytes, preview: bool) -> Result:
        started = time.perf_counter()
        image = self.decode(data)
        decoded = time.perf_counter()
        found = self.find_faces(image)
        detected = time.perf_counter()
        probabilities = self.classifier.predict(found.crops)
        classified = time.perf_counter()
        faces = tuple(
            _face(box, found.detection, score, row)
            for box, score, row in zip(found.full_boxes, found.scores, probabilities, strict=True)
        )
        drawn = None
        if preview:
            labels = [(face.dominant_emotion, face.emotions[face.dominant_emotion]) for face in faces]
            drawn = Preview(render_preview(image.rgb, found.boxes, labels))
        timing = Timing(
            decode=_ms(started, decoded),
            detect=_ms(decoded, detected),
            classify=_ms(detected, classified),
            total=_ms(started, time.perf_counter()),
        )
        info = ImageInfo(image.width, image.height, image.format)
        return Result(faces, info, self.classifier.info.ref, timing, drawn)


def _crop(gray: np.ndarray, box: Box, detection: DetectionKind) -> np.ndarray:
    """The model's view of a face: a square with margin around a detection, the centre square otherwise."""
    height, width = gray.shape
    margin = CROP_MARGIN if detection == "face" else 0.0
    region = crop_region(box, margin, width, height)
    return gray[region.y : region.y + region.height, region.x : region.x + region.width]


def _face(box: Box, detection: DetectionKind, score: float | None, row: np.ndarray) -> Face:
    return Face(
        box=box,
        detection=detection,
        detection_score=None if score is None else round(score, 4),
        emotions={name: float(p) for name, p in zip(EMOTIONS, row, strict=True)},
        dominant_emotion=EMOTIONS[int(np.argmax(row))],
    )


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000.0, 3)


_default: Analyzer | None = None
_default_lock = threading.Lock()


def default_analyzer() -> Analyzer:
    """The process-wide analyzer (settings from the environment, committed model), built once."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Analyzer(Settings.from_env())
        return _default


def analyze(data: bytes, *, preview: bool = True) -> Result:
    """Analyze the image file ``data`` with the process-wide analyzer (see ``Analyzer.analyze``)."""
    return default_analyzer().analyze(data, preview=preview)
