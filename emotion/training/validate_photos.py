"""How often the whole pipeline (decode → detect → classify) gets the labelled emotion of real photos.

``python -m emotion.training.validate_photos LABELS.csv [--images DIR] [--json]`` where the CSV has columns
``image, emotion`` (as in ``facial_expressions/labels.csv``) and images lie in ``DIR`` (default: ``images/``
beside the CSV).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from emotion.classifier import EmotionClassifier
from emotion.config import Settings
from emotion.errors import EmotionError
from emotion.labels import EMOTIONS
from emotion.pipeline import Analyzer
from emotion.training.data import read_labels
from emotion.training.metrics import format_report, report


def validate(labels: Path, images: Path, analyzer: Analyzer, limit: int = 0) -> dict:
    """Figures for the dominant emotion per photo, plus how faces were found."""
    rows = read_labels(labels)
    if limit:
        rows = rows[:: max(1, len(rows) // limit)][:limit]
    truth: list[int] = []
    predicted: list[int] = []
    detections: Counter[str] = Counter()
    for row in rows:
        try:
            result = analyzer.analyze((images / row["image"]).read_bytes(), preview=False)
        except (OSError, EmotionError) as exc:
            detections[f"error: {getattr(exc, 'code', 'unreadable')}"] += 1
            continue
        detections[result.faces[0].detection if result.faces else "none"] += 1
        if result.dominant_emotion is None:
            continue
        truth.append(EMOTIONS.index(row["emotion"]))
        predicted.append(EMOTIONS.index(result.dominant_emotion))
    figures = report(np.array(truth, dtype=np.int64), np.array(predicted, dtype=np.int64))
    figures["photos"] = len(rows)
    figures["detection"] = dict(detections)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path, help="CSV with columns image, emotion")
    parser.add_argument("--images", type=Path, help="folder of the photos (default: images/ beside the CSV)")
    parser.add_argument("--limit", type=int, default=0, help="an evenly spread sample of N photos")
    parser.add_argument("--model", help="a .tflite file (default: the committed model)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    figures = validate(
        args.labels,
        args.images or args.labels.parent / "images",
        Analyzer(Settings.from_env(), EmotionClassifier(args.model)),
        args.limit,
    )
    if args.json:
        print(json.dumps(figures))
    else:
        print(format_report(figures))
        print(f"photos {figures['photos']}; how faces were found: {figures['detection']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
