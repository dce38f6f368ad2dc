"""Evaluate the served model (LiteRT, exactly as the function runs it) on an ``x``/``y`` npz split.

``python -m emotion.training.evaluate PATH.npz [--model FILE] [--json]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from emotion.classifier import EmotionClassifier
from emotion.labels import EMOTIONS
from emotion.training.metrics import calibration, format_report, report


def probabilities(classifier: EmotionClassifier, faces: np.ndarray, batch: int = 256) -> np.ndarray:
    """Served probabilities ``(N, 7)`` for a stack of crops, in batches so memory stays flat."""
    return (
        np.concatenate([classifier.predict(faces[i : i + batch]) for i in range(0, len(faces), batch)])
        if len(faces)
        else np.zeros((0, len(EMOTIONS)), dtype=np.float32)
    )


def per_face_ms(classifier: EmotionClassifier, batch: int = 1, side: int = 90, repeats: int = 300) -> float:
    """Median milliseconds per face of ``predict`` on batches of ``batch`` crops of ``side`` pixels (resizing
    included, as serving pays it); one request with one face pays the ``batch=1`` figure."""
    faces = np.random.default_rng(0).integers(0, 256, (batch, side, side), dtype=np.uint8)
    classifier.predict(faces)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        classifier.predict(faces)
        samples.append((time.perf_counter() - start) * 1000 / batch)
    return round(float(np.median(samples)), 3)


def predict_split(classifier: EmotionClassifier, faces: np.ndarray, batch: int = 256) -> np.ndarray:
    """Class predictions for a stack of crops."""
    return probabilities(classifier, faces, batch).argmax(axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split", help="npz file with x (N,H,W uint8) and y (class index)")
    parser.add_argument("--model", help="a .tflite file (default: the committed model)")
    parser.add_argument(
        "--tta",
        choices=("model", "off", "flip", "flip+zoom"),
        default="model",
        help="test-time views (mirrored, at two scales): as model.json says, or forced",
    )
    parser.add_argument(
        "--temperature", type=float, help="calibration temperature instead of model.json's (and no confidence map)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    with np.load(args.split) as data:
        faces, truth = data["x"], data["y"]
    flip, zoom = (None, None) if args.tta == "model" else ("flip" in args.tta, "zoom" in args.tta)
    classifier = EmotionClassifier(
        args.model,
        flip_tta=flip,
        zoom_tta=zoom,
        temperature=args.temperature,
        confidence_map=None if args.temperature is None else (),
    )
    probs = probabilities(classifier, faces)
    figures = report(truth, probs.argmax(axis=1))
    figures["calibration"] = calibration(truth, probs)
    figures["model"] = classifier.info.ref.to_json() | {
        "flip_tta": classifier.info.flip_tta,
        "zoom_tta": classifier.info.zoom_tta,
        "zoom_pixels": classifier.info.zoom_pixels,
        "temperature": classifier.info.temperature,
        "confidence_map": classifier.info.confidence_map,
    }
    print(json.dumps(figures) if args.json else format_report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
