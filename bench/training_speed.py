"""How fast the same network trains per epoch with each Keras backend and setting on this CPU.

``python -m bench.training_speed [--steps 30] [--configs tf-bf16-b128 torch-fp32-b128 ...]`` writes
``bench/out/training_speed.json``. Each configuration runs in a fresh process (the backend is fixed at import):
the training step of ``emotion.training.train`` (same model, augmentation, optimizer and loss) on FER2013-shaped faces,
a few warm-up steps, then ``--steps`` timed ones. Wall time and the process's CPU time are both recorded:
CPU seconds per step are the figure to compare when the machine is shared (a niced training run, other work).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from bench.common import write
from bench.servers import ROOT

#: name -> (backend, bfloat16, batch, jit_compile)
CONFIGS: dict[str, tuple[str, bool, int, str]] = {
    "tf-bf16-b128": ("tensorflow", True, 128, "auto"),
    "tf-fp32-b128": ("tensorflow", False, 128, "auto"),
    "tf-bf16-b256": ("tensorflow", True, 256, "auto"),
    "tf-fp32-b128-xla": ("tensorflow", False, 128, "on"),
    "torch-fp32-b128": ("torch", False, 128, "auto"),
    "jax-fp32-b128": ("jax", False, 128, "auto"),
    "jax-bf16-b128": ("jax", True, 128, "auto"),
}

#: One pass over 90% of FER2013's training split (the held-out tenth is not trained on).
EPOCH_IMAGES = 25_838

CHILD = """
import json, sys, time
import numpy as np
import keras
from emotion.training.train import build_model, compile_for_training, make_dataset, trainable
bf16, batch, jit, steps, warmup = {bf16}, {batch}, {jit!r}, {steps}, {warmup}
keras.utils.set_random_seed(1)
if bf16:
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (batch * 8, 48, 48), dtype=np.uint8)
y = (np.arange(len(x)) % 7).astype(np.int64)
model = trainable(build_model(32), 1)
compile_for_training(model, 0.01, 5e-4, 0.1, jit)
data = make_dataset(x, y, batch, 1, True, 1.0, steps=warmup)
model.fit(data, epochs=1, steps_per_epoch=warmup, verbose=0)
data = make_dataset(x, y, batch, 2, True, 1.0, steps=steps)
wall, cpu = time.perf_counter(), time.process_time()
model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
figures = {{"backend": keras.backend.backend(), "wall_s_per_step": wall / steps, "cpu_s_per_step": cpu / steps}}
print(json.dumps(figures))
"""


def measure(name: str, steps: int, warmup: int = 5) -> dict[str, float | str]:
    """One configuration in a fresh process; per-step and per-epoch figures."""
    backend, bf16, batch, jit = CONFIGS[name]
    code = CHILD.format(bf16=bf16, batch=batch, jit=jit, steps=steps, warmup=warmup)
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    per_epoch = EPOCH_IMAGES // batch
    figures["wall_s_per_epoch"] = figures["wall_s_per_step"] * per_epoch
    figures["cpu_s_per_epoch"] = figures["cpu_s_per_step"] * per_epoch
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per configuration")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    args = parser.parse_args(argv)
    results = {}
    for name in args.configs:
        results[name] = measure(name, args.steps)
        print(name, json.dumps(results[name]), flush=True)
    write("training_speed", {"steps": args.steps, "epoch_images": EPOCH_IMAGES, "configs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
