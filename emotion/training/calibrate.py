"""Fit the served model's calibration temperature on held-out faces and record it in ``model.json``.

``python -m emotion.training.calibrate --data HELD.npz [--data MORE.npz] --val PATH/val.npz [--map] [--write]``

The temperature divides the log of the averaged test-time-view probabilities (``classifier.apply_temperature``),
so it is fitted on exactly what serving computes, with the model's own views. ``--map`` then fits a
confidence map on the same faces (``classifier.apply_confidence_map``): the top probability moved to the
accuracy those faces had at it. Both must be fitted on faces the network never trained on and that are
not the validation split, which only measures the result; the map also needs faces like the ones served
(a run's held-out tenth of FER2013, not a few hundred easy photos).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from emotion.classifier import EmotionClassifier, Knot, apply_confidence_map, apply_temperature
from emotion.training.card import fitting_parser, read_card, write_card
from emotion.training.data import load_split, load_splits
from emotion.training.evaluate import probabilities
from emotion.training.metrics import calibration

#: The search range of the temperature (the same range ``model.json`` may hold).
T_RANGE = (0.05, 20.0)

#: Quantile bins of the top probability that the confidence map is fitted on: on a run's held-out tenth
#: (2,872 faces) about 290 faces a bin, each bin's accuracy known to about 2.7 points. Five-fold
#: cross-validation on three networks' held-out tenths put 8 to 10 bins lowest (models/README.md).
MAP_BINS = 10


def nll(probs: np.ndarray, truth: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true classes after calibrating by ``temperature``."""
    scaled = apply_temperature(probs, temperature)
    return float(-np.log(np.maximum(scaled[np.arange(len(truth)), truth], 1e-12)).mean())


def fit_temperature(probs: np.ndarray, truth: np.ndarray, tolerance: float = 1e-4) -> float:
    """The temperature that minimises the NLL of ``probs`` (a golden-section search over log T: NLL is
    unimodal in it)."""
    low, high = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    ratio = (np.sqrt(5) - 1) / 2
    while high - low > tolerance:
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if nll(probs, truth, float(np.exp(a))) < nll(probs, truth, float(np.exp(b))):
            high = b
        else:
            low = a
    return float(np.exp((low + high) / 2))


def fit_confidence_map(probs: np.ndarray, truth: np.ndarray, bins: int = MAP_BINS) -> list[Knot]:
    """Knots of the confidence map: each quantile bin's mean top probability and accuracy, with adjacent
    bins pooled where the accuracy falls (pool adjacent violators), so a surer answer never ends up less
    sure than a less sure one."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == truth
    blocks: list[list[float]] = []  # right answers, faces, sum of confidences
    order = np.argsort(confidence, kind="stable")
    for group in np.array_split(order, min(bins, len(order))):  # never an empty bin
        blocks.append([float(correct[group].sum()), float(len(group)), float(confidence[group].sum())])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            right, count, total = blocks.pop()
            blocks[-1] = [blocks[-1][0] + right, blocks[-1][1] + count, blocks[-1][2] + total]
    return [(round(total / count, 4), round(right / count, 4)) for right, count, total in blocks]


def measure(model: Path, fit_paths: list[str], val_path: str, with_map: bool = False) -> dict[str, Any]:
    """Fit the temperature (and with ``with_map`` the confidence map) on ``fit_paths`` and measure the
    validation split before and after."""
    raw = EmotionClassifier(model, temperature=1.0, confidence_map=())
    faces, truth = load_splits(fit_paths)
    held = probabilities(raw, faces)
    temperature = fit_temperature(held, truth)
    knots = fit_confidence_map(apply_temperature(held, temperature), truth) if with_map else []
    val_faces, val_truth = load_split(val_path)
    val_probs = probabilities(raw, val_faces)
    tempered = apply_temperature(val_probs.astype(np.float64), temperature)
    figures = {
        "temperature": round(temperature, 4),
        "fitted_on": {"files": [Path(p).name for p in fit_paths], "faces": len(truth)},
        "val_before": calibration(val_truth, val_probs),
        "val_after": calibration(val_truth, apply_confidence_map(tempered, knots)),
    }
    if with_map:
        figures |= {"confidence_map": knots, "val_after_temperature": calibration(val_truth, tempered)}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = fitting_parser(__doc__, fit="fit on", measure="measured before and after", record="the calibration")
    parser.add_argument("--map", action="store_true", help="also fit a confidence map after the temperature")
    args = parser.parse_args(argv)
    figures = measure(args.model, args.data, args.val, args.map)
    print(json.dumps(figures, indent=2))
    if args.write:
        card = read_card(args.model)
        card.pop("confidence_map", None)  # a map fits the temperature it was fitted after, and only that one
        card |= {key: figures[key] for key in ("temperature", "confidence_map") if key in figures}
        card["calibration"] = {k: v for k, v in figures.items() if k not in ("temperature", "confidence_map")}
        write_card(args.model, card)
    return 0


if __name__ == "__main__":
    sys.exit(main())
