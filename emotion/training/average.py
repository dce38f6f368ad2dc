"""Average the weights of networks of one shape into one network (stochastic weight averaging), at no cost to
serving: the result is one network of the same size.

``python -m emotion.training.average --weights RUN/epoch-*.weights.h5 --data train.npz --out averaged.weights.h5``

The weights a run keeps at the end of its last epochs (``train --constant --keep-epochs N``) lie around one
minimum; their average sits nearer its centre, where faces the run did not see tend to score better (Izmailov et
al., 2018). Averaged batch-normalisation statistics do not describe the averaged network's activations, so each
normalisation is given the statistics of its input on ``--data``'s faces, in order from the input up, each
measured with the ones below it already set.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass
from pathlib import Path

import numpy as np

from emotion.training.cli import option, parse_config
from emotion.training.recover import STATISTICS_FACES, input_statistics, statistics_faces


@dataclass(frozen=True)
class AverageConfig:
    """What an averaging is told; ``--help`` lists it from here."""

    weights: tuple[str, ...] = option(MISSING, "the .keras or .weights.h5 files to average (one shape)", nargs="+")
    data: str = option(MISSING, "faces (npz) to measure the averaged network's normalisation statistics on")
    out: str = option(MISSING, "the .weights.h5 file to write")
    width: int = option(32, "filters of the first block (as trained)")
    limit: int = option(STATISTICS_FACES, "how many of --data's faces to measure on")


def average(paths: list[Path], faces: np.ndarray, width: int = 32):
    """A ``build_model`` network with the mean of ``paths``' weights and its own normalisation statistics."""
    from keras import layers

    from emotion.training.train import build_model

    members = []
    for path in paths:
        member = build_model(width)
        member.load_weights(path)
        members.append(member.get_weights())
    model = build_model(width)
    model.set_weights([np.mean(values, axis=0) for values in zip(*members, strict=True)])
    for norm in (layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)):
        mean, variance = input_statistics(model, norm, faces)
        scale, offset, _, _ = norm.get_weights()
        norm.set_weights([scale, offset, mean, variance])
    return model


def main(argv: list[str] | None = None) -> None:
    config = parse_config(AverageConfig, argv, __doc__.splitlines()[0])
    faces = statistics_faces(Path(config.data), config.limit)
    model = average([Path(p) for p in config.weights], faces, config.width)
    model.save_weights(config.out)
    print(f"wrote {config.out} (the mean of {len(config.weights)})")


if __name__ == "__main__":
    main()
