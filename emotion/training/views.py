"""Choose the two scales of the zoomed test-time views on held-out faces, and record them with the validation
figures they give.

``python -m emotion.training.views --data HELD.npz [--data MORE.npz] --val PATH/val.npz [--model M] [--write]``:
every pair of scales in ``CANDIDATES`` (pixels a side, see ``emotion.classifier.scaled``) is scored on the held-out
faces, mirrored too when the card says so; the pair with the best accuracy, then macro recall, wins. ``--write``
records it in ``model.json`` as ``zoom_pixels``, with its validation figures, and removes what was measured with
the old views (calibration, photo figures): run ``calibrate`` and ``validate_photos`` again after it.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from emotion.classifier import DEFAULT_ZOOMS, EmotionClassifier, ZoomPair
from emotion.training.card import fitting_parser, read_card, validation_entry, write_card
from emotion.training.data import load_split, load_splits
from emotion.training.evaluate import predict_split
from emotion.training.metrics import report

#: The scales tried: from 4 edge pixels added a side (the face smaller) to 6 cut off (larger).
CANDIDATES = tuple(range(-4, 7))
#: What a view's measurement changes and ``--write`` therefore removes.
STALE_KEYS = ("temperature", "confidence_map", "calibration", "photo_validation")


def scale_probabilities(model: Path, faces: np.ndarray, flip: bool, batch: int = 256) -> dict[int, np.ndarray]:
    """Uncalibrated probabilities ``(N, 7)`` of each candidate scale, its mirrored view averaged in when ``flip``."""
    out: dict[int, np.ndarray] = {}
    last = len(CANDIDATES) - 1
    for first, second in [(CANDIDATES[i], CANDIDATES[min(i + 1, last)]) for i in range(0, len(CANDIDATES), 2)]:
        classifier = EmotionClassifier(
            model, flip_tta=flip, zoom_tta=True, zoom_pixels=(first, second), temperature=1.0, confidence_map=()
        )
        views = np.concatenate(
            [classifier.view_probabilities(faces[i : i + batch]) for i in range(0, len(faces), batch)], axis=1
        )
        out[first], out[second] = (views[0::2].mean(axis=0), views[1::2].mean(axis=0))
    return out


def rank_pairs(probs: dict[int, np.ndarray], truth: np.ndarray) -> list[tuple[ZoomPair, dict[str, float]]]:
    """Every pair of scales with its accuracy and macro recall, best first."""
    scores = []
    for pair in itertools.combinations(CANDIDATES, 2):
        figures = report(truth, ((probs[pair[0]] + probs[pair[1]]) / 2).argmax(axis=1))
        scores.append((pair, {k: round(figures[k], 4) for k in ("accuracy", "macro_recall")}))
    return sorted(scores, key=lambda item: (item[1]["accuracy"], item[1]["macro_recall"]), reverse=True)


def main(argv: list[str] | None = None) -> int:
    parser = fitting_parser(
        __doc__, fit="choose on", measure="measured with the chosen pair", record="the pair and its figures"
    )
    args = parser.parse_args(argv)
    card = read_card(args.model)
    if not card.get("zoom_tta"):
        parser.error(f"{args.model.with_name('model.json')} has no zoomed views (zoom_tta) to choose scales for")
    faces, truth = load_splits(args.data)
    ranking = rank_pairs(scale_probabilities(args.model, faces, bool(card.get("flip_tta"))), truth)
    pair, held_out = ranking[0]
    val_faces, val_truth = load_split(args.val)
    chosen = EmotionClassifier(args.model, zoom_pixels=pair, temperature=1.0, confidence_map=())
    val = report(val_truth, predict_split(chosen, val_faces))
    selection: dict[str, Any] = {
        "fitted_on": {"files": [Path(p).name for p in args.data], "faces": len(truth)},
        "held_out": held_out,
        "held_out_default_pair": dict(ranking)[DEFAULT_ZOOMS],
        "candidates": list(CANDIDATES),
    }
    print(json.dumps({"zoom_pixels": pair, **selection, "val": {k: val[k] for k in ("accuracy", "macro_recall")}}))
    if args.write:
        card = {k: v for k, v in card.items() if k not in STALE_KEYS}
        card |= {"zoom_pixels": list(pair), "zoom_selection": selection, "validation": validation_entry(val)}
        write_card(args.model, card)
    return 0


if __name__ == "__main__":
    sys.exit(main())
