"""Fit the served model's calibration temperature on held-out faces and record it in ``model.json``.

``python -m emotion.training.calibrate --data HELD.npz [--data MORE.npz] --val PATH/val.npz [--write]``

The temperature divides the log of the averaged test-time-view probabilities (``classifier.apply_temperature``),
so it is fitted on exactly what serving computes, with the model's own views. It must be fitted on faces the
network never trained on and that are not the validation split, which only measures the result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from emotion.classifier import DEFAULT_MODEL, EmotionClassifier, apply_temperature
from emotion.training.data import load_split, load_splits
from emotion.training.evaluate import probabilities
from emotion.training.metrics import calibration

#: The search range of the temperature (the same range ``model.json`` may hold).
T_RANGE = (0.05, 20.0)


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


def measure(model: Path, fit_paths: list[str], val_path: str) -> dict[str, Any]:
    """Fit the temperature on ``fit_paths`` and measure the validation split before and after."""
    raw = EmotionClassifier(model, temperature=1.0)
    faces, truth = load_splits(fit_paths)
    temperature = fit_temperature(probabilities(raw, faces), truth)
    val_faces, val_truth = load_split(val_path)
    val_probs = probabilities(raw, val_faces)
    return {
        "temperature": round(temperature, 4),
        "fitted_on": {"files": [Path(p).name for p in fit_paths], "faces": len(truth)},
        "val_before": calibration(val_truth, val_probs),
        "val_after": calibration(val_truth, apply_temperature(val_probs.astype(np.float64), temperature)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="the .tflite file (model.json beside it)")
    parser.add_argument("--data", action="append", required=True, help="held-out npz (x, y) to fit on; repeatable")
    parser.add_argument("--val", required=True, help="the validation npz, measured before and after")
    parser.add_argument("--write", action="store_true", help="record the temperature in model.json")
    args = parser.parse_args(argv)
    figures = measure(args.model, args.data, args.val)
    print(json.dumps(figures, indent=2))
    if args.write:
        card_path = args.model.with_name("model.json")
        card = json.loads(card_path.read_text())
        card["temperature"] = figures["temperature"]
        card["calibration"] = {key: value for key, value in figures.items() if key != "temperature"}
        card_path.write_text(json.dumps(card, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
