"""Where a training step's time goes on this machine (made for a lent GPU, where a first members run sat idle).

``KERAS_BACKEND=jax python -m bench.training_step [--batches 128 512]`` prints, for the network of
``emotion.training.train``: the first step (compilation), then the mean of repeated ``train_on_batch`` steps
with the augmentation compiled into the step and without it, in bfloat16 and float32; then one short
``fit`` through the Python batch pipeline that ``train.py`` uses on non-TensorFlow backends. Lines print as
they are measured, so a run cut off by its time limit still says how far it got.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def step_times(augment: bool, bf16: bool, batch: int, repeats: int = 30) -> tuple[float, float]:
    """(first step, mean later step) in seconds of ``train_on_batch`` on random faces."""
    import keras

    from emotion.training.train import build_model, compile_for_training, trainable

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if bf16 else "float32")
    model = trainable(build_model(32), 1) if augment else build_model(32)
    compile_for_training(model, 0.01, 5e-4, 0.1, "auto")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, 48, 48, 1)).astype(np.float32)
    y = np.eye(7, dtype=np.float32)[np.arange(batch) % 7]
    started = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(repeats):
        loss = model.train_on_batch(x, y)
    np.asarray(loss)  # waits for the device
    return first, (time.perf_counter() - started) / repeats


def pipeline_epoch(batch: int, steps: int = 60) -> float:
    """Seconds per step of ``fit`` over the Python batch pipeline (after a warm-up epoch)."""
    import keras

    from emotion.training.train import build_model, compile_for_training, make_dataset, trainable

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch * steps, 48, 48), dtype=np.uint8)
    y = np.arange(len(x)) % 7
    model = trainable(build_model(32), 1)
    compile_for_training(model, 0.01, 5e-4, 0.1, "auto")
    data = make_dataset(x, y, batch, 1, True, steps=steps)
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    started = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return (time.perf_counter() - started) / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[128])
    args = parser.parse_args(argv)
    import keras

    print(f"backend {keras.backend.backend()}", flush=True)
    for batch in args.batches:
        for augment in (True, False):
            for bf16 in (True, False):
                first, step = step_times(augment, bf16, batch)
                name = f"batch {batch}, augment {'in step' if augment else 'none'}, {'bf16' if bf16 else 'fp32'}"
                print(f"{name}: first step {first:.1f} s, then {step * 1e3:.1f} ms a step", flush=True)
        print(f"batch {batch}, fit over the Python pipeline: {pipeline_epoch(batch) * 1e3:.1f} ms a step", flush=True)


if __name__ == "__main__":
    main()
