"""Evaluate the served model (LiteRT, exactly as the function runs it) on an ``x``/``y`` npz split.

``python -m emotion.evaluate PATH.npz [--model FILE] [--json]``
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from emotion.classifier import EmotionClassifier
from emotion.metrics import format_report, report


def predict_split(classifier: EmotionClassifier, faces: np.ndarray, batch: int = 256) -> np.ndarray:
    """Class predictions for a stack of crops, in batches so memory stays flat."""
    return (
        np.concatenate([classifier.predict(faces[i : i + batch]).argmax(axis=1) for i in range(0, len(faces), batch)])
        if len(faces)
        else np.zeros(0, dtype=np.int64)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split", help="npz file with x (N,H,W uint8) and y (class index)")
    parser.add_argument("--model", help="a .tflite file (default: the committed model)")
    parser.add_argument(
        "--tta",
        choices=("model", "off", "flip", "flip+zoom"),
        default="model",
        help="test-time views (mirrored, zoomed in): as model.json says, or forced",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    with np.load(args.split) as data:
        faces, truth = data["x"], data["y"]
    forced = {} if args.tta == "model" else {"flip_tta": "flip" in args.tta, "zoom_tta": "zoom" in args.tta}
    classifier = EmotionClassifier(args.model, **forced)
    figures = report(truth, predict_split(classifier, faces))
    figures["model"] = classifier.info.as_dict() | {
        "flip_tta": classifier.info.flip_tta,
        "zoom_tta": classifier.info.zoom_tta,
    }
    print(json.dumps(figures) if args.json else format_report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
