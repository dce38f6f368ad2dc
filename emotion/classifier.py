"""Faces → probabilities: the committed ``.tflite`` model run with LiteRT (never TensorFlow)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emotion.errors import ModelError
from emotion.labels import EMOTIONS, INPUT_SIZE
from emotion.litert import MODELS_DIR, load_interpreter
from emotion.result import ModelRef

DEFAULT_MODEL = MODELS_DIR / "emotion.tflite"

#: One point of a confidence map: a top probability (after the temperature) and the accuracy that held-out
#: faces had at it.
Knot = tuple[float, float]

#: With ``zoom_tta`` the model sees each face at two scales: pixels cut off every side of the 48-px input before
#: it is resized back (negative: that many edge pixels added, so the face looks smaller); 0 is the face as is.
ZoomPair = tuple[int, int]
DEFAULT_ZOOMS: ZoomPair = (0, 2)
#: The scales a card may ask for: from a face shrunk by 8 px a side to one enlarged by 12 (half the input left).
ZOOM_LIMITS = (-8, 12)


@dataclass(frozen=True)
class ModelInfo:
    """What the result reports about the model, read from ``model.json`` beside the file."""

    name: str
    version: str
    sha256: str
    input_size: int
    flip_tta: bool
    zoom_tta: bool
    #: Divides the log of the averaged probabilities (fitted on held-out faces so they mean what they say).
    temperature: float = 1.0
    #: Then moves the top probability to the accuracy held-out faces had at it (empty: no map).
    confidence_map: tuple[Knot, ...] = ()
    #: The two scales of the zoomed views (chosen on held-out faces; see ``emotion.training.views``).
    zoom_pixels: ZoomPair = DEFAULT_ZOOMS

    @property
    def ref(self) -> ModelRef:
        """What a result says about the model."""
        return ModelRef(self.name, self.version, self.sha256)


def read_model_info(model_path: Path) -> ModelInfo:
    """Describe ``model_path``; ``model.json`` is optional for ad-hoc models but must match when present."""
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    card = model_path.with_name("model.json")
    meta = {}
    if card.is_file():
        meta = _read_card(card)
        if meta.get("sha256") != digest:
            raise ModelError(f"{model_path} does not match the sha256 in {card}")
        if tuple(meta.get("classes", ())) != EMOTIONS:
            raise ModelError(f"{card} lists classes {meta.get('classes')}, expected {list(EMOTIONS)}")
    return ModelInfo(
        name=meta.get("name", model_path.stem),
        version=meta.get("version", "unversioned"),
        sha256=digest,
        input_size=int(meta.get("input_size", INPUT_SIZE)),
        flip_tta=bool(meta.get("flip_tta", False)),
        zoom_tta=bool(meta.get("zoom_tta", False)),
        temperature=calibration_temperature(meta, card),
        confidence_map=calibration_map(meta, card),
        zoom_pixels=card_zooms(meta, card),
    )


def _read_card(card: Path) -> dict[str, Any]:
    """``model.json`` as a dict; a broken card is a ``ModelError`` like a broken model."""
    try:
        meta = json.loads(card.read_text())
    except ValueError as exc:  # also bad UTF-8
        raise ModelError(f"{card} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelError(f"{card} holds {type(meta).__name__}, not a JSON object")
    return meta


def calibration_temperature(meta: dict[str, Any], card: Path) -> float:
    """The card's temperature (1.0 when it has none); a value that is not a positive number is refused."""
    value = meta.get("temperature", 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.05 <= value <= 20:
        raise ModelError(f"{card} has temperature {value!r}, expected a number in 0.05..20")
    return float(value)


def calibration_map(meta: dict[str, Any], card: Path) -> tuple[Knot, ...]:
    """The card's confidence map (none when absent): two or more ``[confidence, accuracy]`` pairs with
    confidences rising and accuracies not falling, all in 0..1; anything else is refused."""
    value = meta.get("confidence_map", [])
    pairs = value if isinstance(value, list) else [None]  # not a list: refused like a bad pair
    numbers = [p for p in pairs if isinstance(p, list) and len(p) == 2 and all(_is_unit(v) for v in p)]
    knots = tuple((float(c), float(a)) for c, a in numbers)
    rising = all(a[0] < b[0] and a[1] <= b[1] for a, b in itertools.pairwise(knots))
    if len(numbers) != len(pairs) or len(knots) == 1 or not rising:
        raise ModelError(
            f"{card} has confidence_map {value!r}, expected [confidence, accuracy] pairs in 0..1, "
            "confidences rising and accuracies not falling"
        )
    return knots


def card_zooms(meta: dict[str, Any], card: Path) -> ZoomPair:
    """The card's two zoom scales (the default pair when absent); anything but two whole pixel counts within
    ``ZOOM_LIMITS`` is refused."""
    value = meta.get("zoom_pixels", list(DEFAULT_ZOOMS))
    low, high = ZOOM_LIMITS
    pixels = [v for v in value if isinstance(v, int) and not isinstance(v, bool)] if isinstance(value, list) else []
    if len(pixels) != 2 or len(value) != 2 or not all(low <= v <= high for v in pixels):
        raise ModelError(f"{card} has zoom_pixels {value!r}, expected two whole numbers in {low}..{high}")
    return pixels[0], pixels[1]


def _is_unit(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and 0.0 <= value <= 1.0


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probs) / temperature)`` row by row: sharpens (< 1) or softens (> 1) each answer."""
    if temperature == 1.0:
        return np.asarray(probs / probs.sum(axis=1, keepdims=True))
    logits = np.log(np.maximum(probs, 1e-12)) / temperature
    scaled = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(scaled / scaled.sum(axis=1, keepdims=True))


def apply_confidence_map(probs: np.ndarray, knots: Sequence[Knot]) -> np.ndarray:
    """Each answer's top probability moved to the accuracy the map gives at it (linear between knots, flat
    beyond them), the other classes scaled to share the rest in their old ratios. A temperature cannot
    fix confidences that are too high in one range and too low in another; this can. The top class stays
    on top, and an answer already certain stays as it is."""
    if not knots:
        return probs
    confidence, accuracy = np.asarray(knots, dtype=np.float64).T
    rows, top = np.arange(len(probs)), probs.argmax(axis=1)
    old = probs[rows, top]
    rest = 1.0 - old
    second = np.partition(probs, -2, axis=1)[:, -2]
    open_ = rest > 1e-9
    # Staying on top: new >= second * (1 - new) / rest, i.e. new >= second / (rest + second).
    floor = np.divide(second, rest + second, out=np.zeros_like(old), where=open_) + 1e-6
    new = np.where(open_, np.maximum(np.interp(old, confidence, accuracy), floor), old)
    mapped = probs * np.divide(1.0 - new, rest, out=np.ones_like(old), where=open_)[:, None]
    mapped[rows, top] = new
    return np.asarray(mapped)


class EmotionClassifier:
    """Classifies grayscale face crops in one batched LiteRT call; safe to share between threads."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        num_threads: int = 1,
        flip_tta: bool | None = None,
        zoom_tta: bool | None = None,
        zoom_pixels: ZoomPair | None = None,
        temperature: float | None = None,
        confidence_map: Sequence[Knot] | None = None,
    ) -> None:
        """``flip_tta``, ``zoom_tta``, ``zoom_pixels``, ``temperature`` and ``confidence_map`` override what
        model.json says (for measuring)."""
        path = Path(model_path) if model_path is not None else DEFAULT_MODEL
        self._interpreter = load_interpreter(path, num_threads)
        self.info = read_model_info(path)
        if flip_tta is not None:
            self.info = dataclasses.replace(self.info, flip_tta=flip_tta)
        if zoom_tta is not None:
            self.info = dataclasses.replace(self.info, zoom_tta=zoom_tta)
        if zoom_pixels is not None:
            self.info = dataclasses.replace(self.info, zoom_pixels=zoom_pixels)
        if temperature is not None:
            self.info = dataclasses.replace(self.info, temperature=temperature)
        if confidence_map is not None:
            self.info = dataclasses.replace(self.info, confidence_map=tuple(confidence_map))
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = -1
        # One interpreter holds one set of tensors: requests on other threads must wait their turn.
        self._lock = threading.Lock()

    def predict(self, faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities ``(N, 7)`` in ``EMOTIONS`` order for ``N`` uint8 grayscale crops of any size.

        The answers of the face's test-time views are averaged (see ``view_probabilities``), then calibrated by
        the model's temperature and confidence map.
        """
        probs = self.view_probabilities(faces).mean(axis=0)
        if len(probs) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        tempered = apply_temperature(probs, self.info.temperature)
        return apply_confidence_map(tempered, self.info.confidence_map).astype(np.float32)

    def view_probabilities(self, faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Uncalibrated probabilities ``(V, N, 7)`` of each test-time view of each face, all in one call.

        With ``zoom_tta`` the views are the face at the two scales of ``zoom_pixels``, else the face as is; with
        ``flip_tta`` each of those mirrored as well (after them, in the same order).
        """
        batch = self.preprocess(faces)
        count = len(batch)
        if count == 0:
            return np.zeros((1, 0, len(EMOTIONS)), dtype=np.float64)
        views = [scaled(batch, pixels) for pixels in self.info.zoom_pixels] if self.info.zoom_tta else [batch]
        if self.info.flip_tta:
            views += [view[:, :, ::-1] for view in views]
        return self._invoke(np.concatenate(views)).reshape(len(views), count, -1)

    def preprocess(self, faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Resize every crop to the model's square input: float32 ``(N, S, S, 1)`` of 0..255 values."""
        size = self.info.input_size
        out = np.empty((len(faces), size, size, 1), dtype=np.float32)
        for i, face in enumerate(faces):
            face = np.asarray(face)
            if face.dtype != np.uint8 or face.ndim != 2 or 0 in face.shape:
                raise ValueError(f"face {i} must be a non-empty 2-D uint8 array, got {face.dtype} {face.shape}")
            shrink = face.shape[0] > size or face.shape[1] > size
            out[i, :, :, 0] = cv2.resize(
                face, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            )
        return out

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._batch != len(batch):
                self._interpreter.resize_tensor_input(self._input, list(batch.shape))
                self._interpreter.allocate_tensors()
                self._batch = len(batch)
            self._interpreter.set_tensor(self._input, batch)
            self._interpreter.invoke()
            return np.asarray(self._interpreter.get_tensor(self._output), dtype=np.float64)


def scaled(batch: np.ndarray, pixels: int) -> np.ndarray:
    """``batch`` (N, S, S, 1) with ``pixels`` cut off every side and the centre resized back to S (the face looks
    larger), or with ``-pixels`` edge pixels added on every side and resized back (smaller); 0: ``batch``."""
    if pixels == 0:
        return batch
    size, edge = batch.shape[1], -pixels
    if pixels > 0:
        frames = list(batch[:, pixels : size - pixels, pixels : size - pixels, 0])
    else:
        frames = [cv2.copyMakeBorder(face, edge, edge, edge, edge, cv2.BORDER_REPLICATE) for face in batch[..., 0]]
    return np.stack([cv2.resize(face, (size, size), interpolation=cv2.INTER_LINEAR) for face in frames])[..., None]
