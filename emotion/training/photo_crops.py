"""Cut labelled photos into 48x48 training faces with the serving pipeline's own detector and crop,
split by person so no one is in both parts.

``python -m emotion.training.photo_crops LABELS.csv --out-dir runs/photos`` writes ``train.npz``/``val.npz`` (the
``x``/``y``/``names`` format of the FER2013 files) and ``val.csv`` (the held-out rows, for
``emotion.training.validate_photos``).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from emotion.config import Settings
from emotion.errors import EmotionError
from emotion.labels import EMOTIONS
from emotion.pipeline import Analyzer
from emotion.training.data import read_labels

#: The share of the people held out of training, and the seed of their draw: ``validate_photos --held-out``
#: measures the same people.
VAL_FRACTION = 0.2
SPLIT_SEED = 1234


def split_people(people: list[str], val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED) -> set[str]:
    """The people held out for validation: a seeded draw over the sorted distinct names."""
    names = sorted(set(people))
    rng = np.random.default_rng(seed)
    return set(rng.choice(names, size=round(len(names) * val_fraction), replace=False).tolist())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path, help="CSV with columns image, emotion, person")
    parser.add_argument("--images", type=Path, help="folder of the photos (default: images/ beside the CSV)")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/photos"))
    parser.add_argument("--val-fraction", type=float, default=VAL_FRACTION)
    parser.add_argument("--seed", type=int, default=SPLIT_SEED)
    args = parser.parse_args(argv)
    images = args.images or args.labels.parent / "images"
    rows = read_labels(args.labels)
    held_out = split_people([row["person"] for row in rows], args.val_fraction, args.seed)

    analyzer = Analyzer(Settings())
    parts: dict[str, list[tuple[np.ndarray, int, str]]] = {"train": [], "val": []}
    for row in rows:
        try:
            found = analyzer.find_faces(analyzer.decode((images / row["image"]).read_bytes()))
        except (OSError, EmotionError):
            continue
        face = analyzer.classifier.preprocess(found.crops[:1])[0, :, :, 0].astype(np.uint8)
        parts["val" if row["person"] in held_out else "train"].append(
            (face, EMOTIONS.index(row["emotion"]), row["image"])
        )

    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, items in parts.items():
        np.savez_compressed(
            args.out_dir / f"{name}.npz",
            x=np.stack([i[0] for i in items]),
            y=np.array([i[1] for i in items], dtype=np.uint8),
            names=np.array([i[2] for i in items]),
        )
        print(f"{name}: {len(items)} faces, per class {np.bincount([i[1] for i in items], minlength=7).tolist()}")
    with (args.out_dir / "val.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "emotion", "person"])
        writer.writeheader()
        writer.writerows({k: r[k] for k in ("image", "emotion", "person")} for r in rows if r["person"] in held_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
