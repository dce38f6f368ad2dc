"""The data files the tooling reads: ``x``/``y`` npz splits and the labelled-photos CSV."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emotion.labels import EMOTIONS

PathLike = str | os.PathLike[str]


def load_split(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Faces (uint8 N x 48 x 48) and class indices (int64) of one npz split (plain, or as ``save_compact``
    wrote it)."""
    with np.load(path) as data:
        if "x_row_deltas" in data:  # modulo-256 differences along each row sum back to the pixels exactly
            return np.cumsum(data["x_row_deltas"], axis=2, dtype=np.uint8), data["y"].astype(np.int64)
        return data["x"].astype(np.uint8), data["y"].astype(np.int64)


def save_compact(path: PathLike, x: np.ndarray, y: np.ndarray) -> None:
    """Write a split losslessly in about 15% fewer bytes than a plain compressed npz (neighbouring pixels
    differ little), so the training split fits the working-tree limit of a lent GPU machine."""
    deltas = np.diff(x.astype(np.uint8), axis=2, prepend=np.uint8(0))
    np.savez_compressed(path, x_row_deltas=deltas, y=y.astype(np.uint8))


def load_splits(paths: Sequence[PathLike]) -> tuple[np.ndarray, np.ndarray]:
    """Several splits, concatenated in order."""
    parts = [load_split(path) for path in paths]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def read_labels(path: Path) -> list[dict[str, str]]:
    """The rows of a labelled-photos CSV (``image, emotion[, person]``) whose emotion is one we classify."""
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["emotion"] in EMOTIONS]
