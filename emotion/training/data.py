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
    """Faces (uint8 N x 48 x 48) and class indices (int64) of one npz split."""
    with np.load(path) as data:
        return data["x"].astype(np.uint8), data["y"].astype(np.int64)


def load_splits(paths: Sequence[PathLike]) -> tuple[np.ndarray, np.ndarray]:
    """Several splits, concatenated in order."""
    parts = [load_split(path) for path in paths]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def read_labels(path: Path) -> list[dict[str, str]]:
    """The rows of a labelled-photos CSV (``image, emotion[, person]``) whose emotion is one we classify."""
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["emotion"] in EMOTIONS]
