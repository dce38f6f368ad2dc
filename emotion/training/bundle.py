"""Pack what a lent GPU machine needs to train members: the data, compactly, and Keras as wheels.

``python -m emotion.training.bundle --train PATH/train.npz --val PATH/val.npz --out .device``

The machine has PyTorch and JAX but neither TensorFlow nor Keras nor a network, and takes a working tree of
at most 64 MiB: the training split less the held-out tenth (the same faces ``train.py --holdout`` leaves out
with the same seed, so calibrating on the run's ``holdout.npz`` stays honest) is written row-delta coded,
a slice of the validation split for the progress display, and the Keras wheels for Python 3.12. The folder
must be git-ignored (``.git/info/exclude``) and named in the device call's ``carry``: data is never committed.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import MISSING, dataclass
from pathlib import Path

import numpy as np

from emotion.training.cli import option, parse_config
from emotion.training.data import load_split, save_compact
from emotion.training.train import holdout_split

#: Keras and the two packages it needs that the GPU machine's image lacks (its numpy, h5py, rich, absl-py,
#: ml-dtypes and packaging serve), pinned to what trains here.
WHEELS = ("keras==3.15.1", "namex==0.1.0", "optree==0.20.0")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


@dataclass(frozen=True)
class BundleConfig:
    """What a bundle is made of; ``--help`` lists it from here."""

    train: str = option(MISSING, "the training npz")
    val: str = option(MISSING, "the validation npz")
    out: str = option(".device", "the folder to write (git-ignored, carried to the machine)")
    holdout: float = option(0.1, "fraction of each class left out, as train.py --holdout does")
    seed: int = option(2027, "the seed of that held-out split (the long run's)")
    val_images: int = option(1000, "validation faces kept for the progress display")
    wheels: bool = option(True, "download the Keras wheels too (--no-wheels: data only)")


def bundle(config: BundleConfig) -> dict[str, int]:
    """Write the bundle; returns each written file's size in bytes."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = load_split(config.train)
    if config.holdout:
        kept, _ = holdout_split(y, config.holdout, config.seed)
        x, y = x[kept], y[kept]
    save_compact(out / "train.npz", x, y)
    x_val, y_val = load_split(config.val)
    pick = np.random.default_rng(config.seed).permutation(len(x_val))[: config.val_images]
    save_compact(out / "val.npz", x_val[pick], y_val[pick])
    if config.wheels:
        platforms = [arg for name in PLATFORMS for arg in ("--platform", name)]
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version"]
        command += ["3.12", "--implementation", "cp", *platforms, "-d", str(out / "whl"), *WHEELS]
        subprocess.run(command, check=True, capture_output=True)
    return {str(path.relative_to(out)): path.stat().st_size for path in sorted(out.rglob("*")) if path.is_file()}


def main(argv: list[str] | None = None) -> None:
    sizes = bundle(parse_config(BundleConfig, argv, __doc__.splitlines()[0]))
    for name, size in sizes.items():
        print(f"{size:>12,}  {name}")
    print(f"{sum(sizes.values()):>12,}  in all")


if __name__ == "__main__":
    main()
