"""Recover Keras weights from a served ``.tflite`` of the network ``train.build_model`` makes.

``python -m emotion.training.recover --model models/emotion.tflite --out recovered.weights.h5 [--data train.npz]``

The served model's Keras weights were not kept, and an ensemble (``train.load_ensemble``) is built from
Keras weights. The converter folded each batch normalisation into the layer before it (and the input's
rescaling into the first convolution) and stored the weights as int8 with one scale per output channel;
those values are read back exactly, and the folded network is written into ``build_model``'s layers with
each batch normalisation set to the identity plus the folded bias. Exporting the result again quantizes
the same values to the same int8 numbers. To train on from them, pass ``--data``: each batch normalisation then
gets the statistics of its input on those faces (``restore_statistics``), so that training, which normalises
by each batch's statistics, starts from the function the file serves.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass
from pathlib import Path

import numpy as np

from emotion.training.cli import option, parse_config

BLOCKS = 4


@dataclass(frozen=True)
class RecoverConfig:
    """What a recovery is told; ``--help`` lists it from here."""

    model: str = option(MISSING, "the .tflite file (one network of train.build_model, as export writes it)")
    out: str = option(MISSING, "the .weights.h5 file to write")
    width: int = option(32, "filters of the first block (as trained)")
    data: str = option(
        "", "faces (npz) to measure each batch normalisation's input on, so training goes on from the served network"
    )
    limit: int = option(4096, "how many of --data's faces to measure on")


def constants(path: Path) -> list[tuple[str, np.ndarray]]:
    """Every weight tensor of the file as float32 (int8 ones dequantized per output channel), with its name."""
    from emotion.litert import load_interpreter

    interpreter = load_interpreter(path)
    found = []
    for detail in interpreter.get_tensor_details():
        if detail["shape"].size < 1 or detail["shape"][0] == 1 or detail["dtype"] not in (np.float32, np.int8):
            continue  # activations have a batch dimension of 1; shapes and indices are int32
        values = interpreter.get_tensor(detail["index"]).astype(np.float32)
        scales = detail["quantization_parameters"]["scales"]
        if detail["dtype"] == np.int8:
            values *= scales.reshape((-1,) + (1,) * (values.ndim - 1))
        found.append((detail["name"], values))
    return found


def pick(found: list[tuple[str, np.ndarray]], key: str, ndim: int) -> np.ndarray:
    """The one weight tensor with ``ndim`` dimensions whose name mentions layer ``key``."""
    matches = [values for name, values in found if key in name and values.ndim == ndim]
    if len(matches) != 1:
        raise ValueError(f"expected one {ndim}-d tensor for {key!r}, found {len(matches)}")
    return matches[0]


def recover(path: Path, width: int = 32):
    """A ``build_model`` network computing what the ``.tflite`` file computes."""
    from keras import layers

    from emotion.training.train import build_model

    found = constants(path)
    model = build_model(width)
    rescaling = next(layer for layer in model.layers if isinstance(layer, layers.Rescaling))

    def fold(bn: layers.BatchNormalization, bias: np.ndarray) -> None:
        variance = np.full_like(bias, 1.0 - bn.epsilon)  # so that 1 / sqrt(variance + epsilon) is 1
        bn.set_weights([np.ones_like(bias), bias, np.zeros_like(bias), variance])

    for i in range(BLOCKS):
        for j in range(2):
            kernel = pick(found, f"conv{i}_{j}_", 4).transpose(1, 2, 3, 0)  # (out, h, w, in) -> (h, w, in, out)
            if i == j == 0:  # the input's 1/255 rescaling was folded into the first convolution
                kernel = kernel / rescaling.scale
            model.get_layer(f"conv{i}_{j}").set_weights([kernel])
            fold(model.get_layer(f"bn{i}_{j}"), pick(found, f"bn{i}_{j}_", 1))
    dense, logits = (layer for layer in model.layers if isinstance(layer, layers.Dense))
    dense.set_weights([pick(found, "batch_normalization", 2).T])
    last_bn = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)][-1]
    fold(last_bn, pick(found, "batch_normalization", 1))
    logits.set_weights([pick(found, "logits", 2).T, pick(found, "logits", 1)])
    return model


def restore_statistics(model, faces: np.ndarray) -> None:
    """Give each batch normalisation the mean and variance its input has on ``faces``, and a scale and offset
    that undo them, so it still computes what ``recover`` set (its bias added) when serving, and, in training,
    where it normalises by each batch's own statistics, nearly that too. Without this the first training step
    rescales every layer to unit variance: fine-tuning from recovered weights started at 0.46 on val.npz, not
    near the served 0.66 (no test-time views)."""
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    inputs = keras.Model(model.inputs, [norm.input for norm in norms]).predict(faces, batch_size=256, verbose=0)
    for norm, seen in zip(norms, inputs, strict=True):  # one pass: serving, each normalisation is its bias alone
        axes = tuple(range(seen.ndim - 1))
        mean, variance = seen.mean(axis=axes), seen.var(axis=axes)
        bias = norm.get_weights()[1]
        norm.set_weights([np.sqrt(variance + norm.epsilon), mean + bias, mean, variance])


def main(argv: list[str] | None = None) -> None:
    config = parse_config(RecoverConfig, argv, __doc__.splitlines()[0])
    model = recover(Path(config.model), config.width)
    if config.data:
        from emotion.training.data import load_split

        faces, _ = load_split(Path(config.data))
        restore_statistics(model, faces[: config.limit].astype(np.float32)[..., None])
    model.save_weights(config.out)
    print(f"wrote {config.out}")


if __name__ == "__main__":
    main()
