"""How often the whole pipeline (decode → detect → classify) gets the labelled emotion of real photos.

``python -m emotion.training.validate_photos LABELS.csv [--images DIR] [--held-out] [--json] [--write]`` where the
CSV has columns ``image, emotion`` (and ``person``, for ``--held-out``; as in ``facial_expressions/labels.csv``) and
images lie in ``DIR`` (default: ``images/`` beside the CSV). ``--held-out`` measures only the people that
``emotion.training.photo_crops`` keeps out of training; ``--write`` records the figures in the model's card as
``photo_validation``, so a network that is worse on real photos than on FER2013 cannot be swapped in unnoticed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from emotion.classifier import DEFAULT_MODEL, EmotionClassifier
from emotion.config import Settings
from emotion.errors import EmotionError
from emotion.labels import EMOTIONS
from emotion.pipeline import Analyzer
from emotion.training.card import read_card, write_card
from emotion.training.data import read_labels
from emotion.training.metrics import format_report, report
from emotion.training.photo_crops import split_people


def validate(labels: Path, images: Path, analyzer: Analyzer, limit: int = 0, held_out: bool = False) -> dict:
    """Figures for the dominant emotion per photo, plus how faces were found."""
    rows = read_labels(labels)
    if held_out:
        if any("person" not in row for row in rows):
            raise ValueError(f"{labels} has no person column: --held-out needs one")
        people = split_people([row["person"] for row in rows])
        rows = [row for row in rows if row["person"] in people]
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
    parser.add_argument("labels", type=Path, help="CSV with columns image, emotion[, person]")
    parser.add_argument("--images", type=Path, help="folder of the photos (default: images/ beside the CSV)")
    parser.add_argument("--limit", type=int, default=0, help="an evenly spread sample of N photos")
    parser.add_argument("--held-out", action="store_true", help="only the people photo_crops holds out of training")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="a .tflite file (default: the committed one)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--write", action="store_true", help="record the figures in model.json as photo_validation")
    args = parser.parse_args(argv)
    analyzer = Analyzer(Settings.from_env(), EmotionClassifier(args.model))
    images = args.images or args.labels.parent / "images"
    try:
        figures = validate(args.labels, images, analyzer, args.limit, args.held_out)
    except ValueError as exc:
        parser.error(str(exc))
    if args.write:
        card = read_card(args.model)
        part = "the people photo_crops holds out of training" if args.held_out else "every person"
        card["photo_validation"] = {"data": f"{args.labels.parent.name}/{args.labels.name}, {part}"} | {
            k: figures[k] for k in ("photos", "images", "accuracy", "macro_recall", "per_class_recall")
        }
        write_card(args.model, card)
    if args.json:
        print(json.dumps(figures))
    else:
        print(format_report(figures))
        print(f"photos {figures['photos']}; how faces were found: {figures['detection']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
