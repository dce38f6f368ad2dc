"""Train several ensemble members side by side, one process each, and collect their weights.

``python -m emotion.training.members --train T.npz --val V.npz --members 4 --epochs 150 --time-limit 480
--run-root RUNS --out-dir OUT``

Made for a lent GPU machine (Keras on ``jax`` or ``torch``, no TensorFlow): one small network leaves most
of a GPU idle, so members train at once, each ``emotion.training.train`` with its own seed and run directory.
Each member's output goes to its ``train.log`` and, line by line with its seed in front, to this process's
output (a machine's call returns only its output's tail, also when it is cut off). Every member stops by
itself before ``--time-limit`` (resumable from its backup); the weights of each are
copied to ``--out-dir`` as ``member-SEED.keras`` with ``members.json`` (each member's history), small enough
to come back from the machine, to be exported and calibrated where TensorFlow is.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

from emotion.training.cli import option, parse_config


@dataclass(frozen=True)
class MembersConfig:
    """What a members run is told; ``--help`` lists it from here."""

    train: str = option(MISSING, "training npz (e.g. written by emotion.training.bundle, held-out part removed)")
    val: str = option(MISSING, "validation npz, for the progress display")
    members: int = option(4, "how many members train at once")
    first_seed: int = option(3001, "seed of the first member; the others count up from it")
    epochs: int = option(150, "epochs of each member's one cosine schedule")
    lr: float = option(0.05, "peak learning rate")
    batch: int = option(128, "batch size")
    time_limit: float = option(0.0, "each member stops (resumably) before this many seconds; 0: no limit")
    run_root: str = option("runs/members", "one run directory per member goes here")
    out_dir: str = option("runs/members/out", "where member-SEED.keras and members.json are collected")


def member_command(config: MembersConfig, seed: int, run_dir: Path) -> list[str]:
    """The ``emotion.training.train`` command line of one member."""
    argv = ["--train", config.train, "--val", config.val, "--epochs", str(config.epochs), "--lr", str(config.lr)]
    argv += ["--batch", str(config.batch), "--seed", str(seed), "--time-limit", str(config.time_limit)]
    argv += ["--run-dir", str(run_dir), "--verbose", "2"]
    return [sys.executable, "-m", "emotion.training.train", *argv]


def history(run_dir: Path) -> list[dict[str, float]]:
    """The per-epoch figures a member's ``history.csv`` holds (empty if it wrote none)."""
    path = run_dir / "history.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def relay(process: subprocess.Popen[bytes], log: Path, seed: int) -> threading.Thread:
    """A thread copying a member's output to its log and, prefixed by its seed, to this process's output."""

    def copy() -> None:
        assert process.stdout is not None
        with log.open("ab") as handle:
            for line in process.stdout:
                handle.write(line)
                handle.flush()
                print(f"[{seed}] {line.decode(errors='replace').rstrip()}", flush=True)

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def run_members(config: MembersConfig) -> dict[str, Any]:
    """Start every member, wait for all, collect weights and histories; returns what ``members.json`` holds."""
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Each JAX process would otherwise claim most of the GPU's memory for itself; lines are relayed as they come.
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "PYTHONUNBUFFERED": "1"}
    started, running = time.monotonic(), {}
    for seed in range(config.first_seed, config.first_seed + config.members):
        run_dir = Path(config.run_root) / f"member-{seed}"
        run_dir.mkdir(parents=True, exist_ok=True)
        command = member_command(config, seed, run_dir)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        running[seed] = (run_dir, process, relay(process, run_dir / "train.log", seed))
    report: dict[str, Any] = {"epochs": config.epochs, "lr": config.lr, "batch": config.batch, "members": {}}
    for seed, (run_dir, process, relaying) in running.items():
        code = process.wait()
        relaying.join()
        weights = next((run_dir / n for n in ("final.keras", "last.keras") if (run_dir / n).is_file()), None)
        if weights is not None:
            shutil.copyfile(weights, out_dir / f"member-{seed}.keras")
        report["members"][str(seed)] = {
            "exit_code": code,
            "weights": weights.name if weights else None,
            "history": history(run_dir),
        }
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    (out_dir / "members.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    report = run_members(parse_config(MembersConfig, argv, __doc__.splitlines()[0]))
    for seed, member in report["members"].items():
        last = member["history"][-1] if member["history"] else {}
        print(
            f"member {seed}: exit {member['exit_code']}, {member['weights']}, epochs {len(member['history'])}, "
            f"val_accuracy {last.get('val_accuracy', float('nan')):.4f}"
        )
    print(f"{report['wall_seconds']} s")
    return int(any(member["exit_code"] != 0 for member in report["members"].values()))


if __name__ == "__main__":
    sys.exit(main())
