"""Build the ``train.npz``/``val.npz`` files training reads from the public FER2013 download.

``python -m emotion.training.fer2013 SOURCE --out-dir DIR``

SOURCE is either the challenge's ``fer2013.csv`` (columns ``emotion, pixels, Usage``: ``Training`` becomes
``train.npz``, ``PublicTest`` ``val.npz`` and ``PrivateTest`` ``test.npz``) or a folder in the common image layout
(``train/<class>/*.png|jpg`` and ``test/<class>/*``, one folder per class name: ``train.npz`` and ``val.npz``).
Each file holds ``x`` (uint8 N x 48 x 48), ``y`` (class index in ``EMOTIONS`` order) and ``names``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from emotion.labels import EMOTIONS, INPUT_SIZE

#: The CSV's label numbers (0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral) in our order.
CSV_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: The CSV's ``Usage`` values and the file each becomes.
CSV_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
#: The image layout's folders and the file each becomes.
FOLDER_SPLITS = {"train": "train", "test": "val"}


def from_csv(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Faces, labels and row names of each split of ``fer2013.csv``."""
    parts: dict[str, list[tuple[np.ndarray, int, str]]] = {name: [] for name in CSV_SPLITS.values()}
    with path.open(newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            pixels = np.array(row["pixels"].split(), dtype=np.uint8)
            if pixels.size != INPUT_SIZE * INPUT_SIZE or row["Usage"] not in CSV_SPLITS:
                raise ValueError(f"{path}:{number}: expected {INPUT_SIZE * INPUT_SIZE} pixels and a known Usage")
            label = EMOTIONS.index(CSV_LABELS[int(row["emotion"])])
            parts[CSV_SPLITS[row["Usage"]]].append((pixels.reshape(INPUT_SIZE, INPUT_SIZE), label, f"row{number}"))
    return {name: _stack(items) for name, items in parts.items() if items}


def from_folders(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Faces, labels and file names of each split folder of the image layout (grayscale, resized to 48)."""
    import cv2

    parts = {}
    for folder, name in FOLDER_SPLITS.items():
        items = []
        for label, emotion in enumerate(EMOTIONS):
            for file in sorted((root / folder / emotion).glob("*")):
                face = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
                if face is None:
                    raise ValueError(f"{file} is not an image")
                if face.shape != (INPUT_SIZE, INPUT_SIZE):
                    face = cv2.resize(face, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
                items.append((face, label, f"{emotion}/{file.name}"))
        if items:
            parts[name] = _stack(items)
    if not parts:
        raise ValueError(f"{root} has no train/<class>/ or test/<class>/ images (classes: {', '.join(EMOTIONS)})")
    return parts


def _stack(items: list[tuple[np.ndarray, int, str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.stack([face for face, _, _ in items]),
        np.array([label for _, label, _ in items], dtype=np.uint8),
        np.array([name for _, _, name in items]),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="fer2013.csv, or a folder with train/<class>/ and test/<class>/")
    parser.add_argument("--out-dir", type=Path, required=True, help="where the .npz files go")
    args = parser.parse_args(argv)
    parts = from_folders(args.source) if args.source.is_dir() else from_csv(args.source)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, (x, y, names) in parts.items():
        np.savez_compressed(args.out_dir / f"{name}.npz", x=x, y=y, names=names)
        print(f"{name}.npz: {len(y)} faces, per class {np.bincount(y, minlength=len(EMOTIONS)).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
