"""Classification figures shared by the evaluation commands: accuracy, recalls, confusion matrix."""

from __future__ import annotations

from typing import Any

import numpy as np

from emotion.labels import EMOTIONS


def confusion(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns, in ``EMOTIONS`` order."""
    matrix = np.zeros((len(EMOTIONS), len(EMOTIONS)), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def report(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro recall (over classes present), per-class recall and the confusion matrix."""
    matrix = confusion(truth, predicted)
    support = matrix.sum(axis=1)
    present = support > 0
    recall = np.divide(np.diag(matrix), support, out=np.zeros(len(EMOTIONS)), where=present)
    return {
        "images": int(support.sum()),
        "accuracy": float(np.trace(matrix) / max(support.sum(), 1)),
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "per_class_recall": {
            name: round(float(r), 4) for name, r, p in zip(EMOTIONS, recall, present, strict=False) if p
        },
        "support": {name: int(s) for name, s in zip(EMOTIONS, support, strict=False)},
        "confusion_matrix": {"labels": list(EMOTIONS), "rows_true_columns_predicted": matrix.tolist()},
    }


#: Equal-width confidence bins of the expected calibration error.
ECE_BINS = 15


def calibration(truth: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> dict[str, float]:
    """Expected calibration error (top-class confidence against accuracy, ``bins`` equal-width bins, weighted
    by their share of faces), negative log-likelihood of the true class, mean top probability and accuracy."""
    truth = np.asarray(truth, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == truth
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    ece = sum(
        abs(correct[which == b].mean() - confidence[which == b].mean()) * np.mean(which == b)
        for b in range(bins)
        if np.any(which == b)
    )
    nll = -np.log(np.maximum(probs[np.arange(len(truth)), truth], 1e-12)).mean()
    return {
        "ece": float(ece),
        "nll": float(nll),
        "mean_confidence": float(confidence.mean()),
        "accuracy": float(correct.mean()),
    }


def format_report(figures: dict[str, Any]) -> str:
    """The report as a few readable lines and a confusion table."""
    lines = [
        f"images        {figures['images']}",
        f"accuracy      {figures['accuracy']:.4f}",
        f"macro recall  {figures['macro_recall']:.4f}",
        *(
            [
                f"ECE           {figures['calibration']['ece']:.4f} ({ECE_BINS} bins)",
                f"NLL           {figures['calibration']['nll']:.4f}",
                f"mean top prob {figures['calibration']['mean_confidence']:.4f}",
            ]
            if "calibration" in figures
            else []
        ),
        "per-class recall:",
        *(
            f"  {name:<9} {value:.4f}  (n={figures['support'][name]})"
            for name, value in figures["per_class_recall"].items()
        ),
        "confusion matrix (rows: true, columns: predicted):",
        "          " + " ".join(f"{name[:7]:>7}" for name in EMOTIONS),
    ]
    rows = figures["confusion_matrix"]["rows_true_columns_predicted"]
    lines += [f"  {name:<8}" + " ".join(f"{v:>7}" for v in row) for name, row in zip(EMOTIONS, rows, strict=False)]
    return "\n".join(lines)
