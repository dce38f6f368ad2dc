"""Training smoke test: a few steps on a tiny slice, exported to .tflite and served by EmotionClassifier."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from emotion import EMOTIONS, EmotionClassifier

from .conftest import SHARED_DATA

pytest.importorskip("tensorflow", reason="training needs tensorflow-cpu (pip install -r requirements-dev.txt)")


def _tiny_split(path, count: int, seed: int) -> None:
    """FER2013-shaped data: from ../shared when present, else synthetic faces the test draws."""
    real = SHARED_DATA / "fer2013" / "val.npz"
    if real.is_file():
        with np.load(real) as data:
            pick = np.random.default_rng(seed).choice(len(data["y"]), count, replace=False)
            x, y = data["x"][pick], data["y"][pick]
    else:
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 256, (count, 48, 48), dtype=np.uint8)
        y = np.arange(count) % len(EMOTIONS)
    np.savez(path, x=x, y=y.astype(np.uint8), names=np.array([f"{i}.png" for i in range(count)]))


def test_train_export_and_serve(tmp_path) -> None:
    from emotion.train import main

    _tiny_split(tmp_path / "train.npz", 96, 1)
    _tiny_split(tmp_path / "val.npz", 32, 2)
    out = tmp_path / "model.tflite"
    main(
        [
            "--train",
            str(tmp_path / "train.npz"),
            "--val",
            str(tmp_path / "val.npz"),
            "--out",
            str(out),
            "--run-dir",
            str(tmp_path / "run"),
            "--epochs",
            "2",
            "--steps",
            "2",
            "--batch",
            "16",
            "--width",
            "8",
            "--verbose",
            "0",
        ]
    )
    assert out.stat().st_size > 10_000
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(history) == 3, history  # header + one row per epoch
    info = json.loads((tmp_path / "run" / "train_info.json").read_text())
    assert info["tflite_bytes"] == out.stat().st_size

    classifier = EmotionClassifier(out)
    probs = classifier.predict(np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8))
    assert probs.shape == (3, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_a_resumed_run_knows_where_it_stopped(tmp_path) -> None:
    """The data seed of a resumed run moves on by the epochs already trained, so it replays none of them."""
    from emotion.train import resumed_epoch

    backup = tmp_path / "backup"
    assert resumed_epoch(backup) == 0
    backup.mkdir()
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 9, "batch": 0}))
    assert resumed_epoch(backup) == 9


def test_export_writes_a_model_and_card_that_serve(tmp_path) -> None:
    """Trained weights → ``emotion.export`` → a .tflite with a matching model.json (over a stale one)."""
    from emotion.export import main as export
    from emotion.train import main as train

    _tiny_split(tmp_path / "train.npz", 64, 3)
    _tiny_split(tmp_path / "val.npz", 32, 4)
    run = tmp_path / "run"
    common = [
        "--train",
        str(tmp_path / "train.npz"),
        "--val",
        str(tmp_path / "val.npz"),
        "--width",
        "8",
        "--batch",
        "16",
    ]
    train([*common, "--out", str(tmp_path / "t.tflite"), "--run-dir", str(run), "--epochs", "1", "--steps", "2"])
    out = tmp_path / "models"
    out.mkdir()
    (out / "model.json").write_text(json.dumps({"sha256": "stale", "classes": list(EMOTIONS)}))

    weights = ["--weights", str(run / "final.keras"), "--run-dir", str(run)]
    export([*weights, "--val", str(tmp_path / "val.npz"), "--out-dir", str(out), "--width", "8"])
    card = json.loads((out / "model.json").read_text())
    assert card["sha256"] == hashlib.sha256((out / "emotion.tflite").read_bytes()).hexdigest()
    assert card["quantization"] in ("int8", "float16") and card["validation"]["images"] == 32
    assert (out / "training_curves.png").stat().st_size > 0 and (out / "confusion_matrix.png").stat().st_size > 0
    classifier = EmotionClassifier(out / "emotion.tflite")
    assert (classifier.info.flip_tta, classifier.info.zoom_tta) == (card["flip_tta"], card["zoom_tta"])
