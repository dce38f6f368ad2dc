"""Export trained weights as the served model: choose quantization and test-time views by measurement,
then write ``models/emotion.tflite``, ``models/model.json`` and the model card's pictures.

``python -m emotion.training.export --weights runs/emotion/final.keras [more.keras ...] --val PATH/val.npz``

Several weight files make one ensemble model (their probabilities averaged inside one graph), so
serving still makes a single LiteRT call per request.
"""

from __future__ import annotations

import csv
import hashlib
import json
import tempfile
from dataclasses import MISSING, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from emotion.classifier import EmotionClassifier
from emotion.labels import EMOTIONS, INPUT_SIZE
from emotion.training.card import validation_entry, write_card
from emotion.training.cli import option, parse_config
from emotion.training.data import load_split
from emotion.training.evaluate import per_face_ms, predict_split
from emotion.training.metrics import report

#: A quantization or TTA choice must buy at least this much validation accuracy to be worth its cost.
MIN_GAIN = 0.003
#: Test-time views as (flip_tta, zoom_tta), cheapest first: each step is taken only if it pays for itself.
TTA_STEPS = ((False, False), (True, False), (True, True))


def tta_name(tta: tuple[bool, bool]) -> str:
    return "+".join(name for name, on in zip(("flip", "zoom"), tta, strict=True) if on) or "none"


def choose(
    candidates: dict[str, Path], faces: np.ndarray, truth: np.ndarray, max_face_ms: float = float("inf")
) -> tuple[str, tuple[bool, bool], dict[str, Any], dict[str, Any]]:
    """Pick the smallest file unless it costs accuracy, then each further test-time view only if it pays and
    keeps one face within ``max_face_ms`` (an ensemble pays every view once per member); returns the choice,
    every trial's figures in short, and the full figures of the choice."""
    scores = {
        (name, tta): report(truth, predict_split(EmotionClassifier(path, flip_tta=tta[0], zoom_tta=tta[1]), faces))
        for name, path in candidates.items()
        for tta in TTA_STEPS
    }
    plain = TTA_STEPS[0]
    by_size = sorted(candidates, key=lambda n: candidates[n].stat().st_size)
    best = max(scores[(name, plain)]["accuracy"] for name in candidates)
    quant = next(n for n in by_size if scores[(n, plain)]["accuracy"] >= best - MIN_GAIN)
    tta = plain
    for step in TTA_STEPS[1:]:
        if scores[(quant, step)]["accuracy"] < scores[(quant, tta)]["accuracy"] + MIN_GAIN:
            break
        if per_face_ms(EmotionClassifier(candidates[quant], flip_tta=step[0], zoom_tta=step[1])) > max_face_ms:
            break
        tta = step
    trials = {
        f"{name}+{tta_name(t)}": {
            "accuracy": round(s["accuracy"], 4),
            "macro_recall": round(s["macro_recall"], 4),
            "bytes": candidates[name].stat().st_size,
        }
        for (name, t), s in scores.items()
    }
    return quant, tta, trials, scores[(quant, tta)]


def plot_curves(histories: list[Path], out: Path) -> None:
    """Accuracy and loss per epoch; each fine-tuning run is drawn after the run it started from."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for history in histories for row in csv.DictReader(history.open())]
    epochs = list(range(1, len(rows) + 1))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    start = 0.5
    for i, history in enumerate(histories[:-1]):
        start += sum(1 for _ in csv.DictReader(history.open()))
        for ax in (left, right):
            ax.axvline(start, color="grey", linestyle=":", label=None if i else "fine-tuning starts")
    for key, label in (("accuracy", "train (augmented)"), ("val_accuracy", "validation")):
        left.plot(epochs, [float(r[key]) for r in rows], label=label)
    for key, label in (("loss", "train (augmented)"), ("val_loss", "validation")):
        right.plot(epochs, [float(r[key]) for r in rows], label=label)
    left.set(title="accuracy", xlabel="epoch")
    right.set(title="loss (label-smoothed)", xlabel="epoch")
    left.legend()
    right.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            ax.text(
                j, i, f"{rates[i, j]:.2f}", ha="center", va="center", color="white" if rates[i, j] > 0.5 else "black"
            )
    ax.set(xlabel="predicted", ylabel="true", title="Validation confusion (row-normalised recall)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


@dataclass(frozen=True)
class ExportConfig:
    """What one export is told; ``--help`` lists it from here."""

    weights: tuple[str, ...] = option(MISSING, ".keras or .weights.h5 files from emotion.training.train", nargs="+")
    val: str = option(MISSING, "the validation npz")
    run_dir: str = option("runs/emotion", "where history.csv and train_info.json are")
    out_dir: str = option("models", "where emotion.tflite, model.json and the pictures go")
    width: int = option(32, "filters of the first block (as trained)")
    max_face_ms: float = option(2.0, "per-face budget on one thread that test-time views must stay within (idle CPU)")
    version: str = option(datetime.now(UTC).strftime("%Y.%m.%d"), "the model version results report")
    train_seconds: float = option(0.0, "wall-clock training time to record")
    data: str = option("FER2013 Training (train.npz, 28,709 images)", "training data, in words")
    base_run: tuple[str, ...] = option(
        (), "run directories of the trainings this one fine-tuned, first one first, to record them too", nargs="*"
    )


def export(args: ExportConfig) -> dict[str, Any]:
    """Convert, choose quantization and views by measurement, write the model, its card and pictures;
    returns the card."""
    from emotion.training.train import export_tflite, load_ensemble

    model = load_ensemble(args.weights, args.width)
    faces, truth = load_split(args.val)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        candidates = {q: Path(tmp) / f"{q}.tflite" for q in ("float16", "int8")}
        for quant, path in candidates.items():
            export_tflite(model, path, quant)
        quant, tta, trials, figures = choose(candidates, faces, truth, args.max_face_ms)
        # Timed where it was made: a model.json left in the output folder describes the old file.
        chosen = candidates[quant]
        face_ms = per_face_ms(EmotionClassifier(chosen, flip_tta=tta[0], zoom_tta=tta[1]))
        target = out / "emotion.tflite"
        target.write_bytes(chosen.read_bytes())
    run_dir = Path(args.run_dir)
    train_info = _read_json(run_dir / "train_info.json")
    card = {
        "name": "emotion-cnn" if len(args.weights) == 1 else f"emotion-cnn-ensemble-{len(args.weights)}",
        "version": args.version,
        "file": target.name,
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "bytes": target.stat().st_size,
        "classes": list(EMOTIONS),
        "input_size": INPUT_SIZE,
        "input": f"float32 (N, {INPUT_SIZE}, {INPUT_SIZE}, 1): grayscale face crops resized to "
        f"{INPUT_SIZE}x{INPUT_SIZE}, pixel values 0..255",
        "preprocessing": "square crop around the face with 10% margin, grayscale, INTER_AREA resize; "
        "the model rescales to 0..1 itself",
        "quantization": quant,
        "flip_tta": tta[0],
        "zoom_tta": tta[1],
        "per_face_ms_one_thread": round(face_ms, 3),
        # The networks averaged inside the file (one unless it is an ensemble), so each can be traced to its run.
        "members": [
            {"weights": Path(w).name, "sha256": hashlib.sha256(Path(w).read_bytes()).hexdigest()} for w in args.weights
        ],
        "validation": validation_entry(figures),
        "selection_trials": trials,
        "training": {
            "data": args.data,
            **train_info,
            "wall_clock_seconds": args.train_seconds or None,
            "base_runs": [_read_json(Path(d) / "train_info.json") for d in args.base_run],
        },
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    write_card(target, card)
    histories = [Path(d, "history.csv") for d in (*args.base_run, str(run_dir))]
    plot_curves([h for h in histories if h.is_file()], out / "training_curves.png")
    plot_confusion(np.array(figures["confusion_matrix"]["rows_true_columns_predicted"]), out / "confusion_matrix.png")
    return card


def main(argv: list[str] | None = None) -> int:
    card = export(parse_config(ExportConfig, argv, __doc__.splitlines()[0]))
    figures = card["validation"]
    summary = {k: card[k] for k in ("quantization", "flip_tta", "zoom_tta", "bytes", "per_face_ms_one_thread")}
    print(json.dumps(summary | {"accuracy": figures["accuracy"], "macro_recall": figures["macro_recall"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
