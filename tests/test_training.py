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
    from emotion.training.train import main

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
    from emotion.training.train import resumed_epoch

    backup = tmp_path / "backup"
    assert resumed_epoch(backup) == 0
    backup.mkdir()
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 9, "batch": 0}))
    assert resumed_epoch(backup) == 9


def test_export_writes_a_model_and_card_that_serve(tmp_path) -> None:
    """Trained weights → ``emotion.training.export`` → a .tflite with a matching model.json (over a stale one)."""
    from emotion.training.export import main as export
    from emotion.training.train import main as train

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
    digest = hashlib.sha256((run / "final.keras").read_bytes()).hexdigest()
    assert card["members"] == [{"weights": "final.keras", "sha256": digest}]
    assert (out / "training_curves.png").stat().st_size > 0 and (out / "confusion_matrix.png").stat().st_size > 0
    classifier = EmotionClassifier(out / "emotion.tflite")
    assert (classifier.info.flip_tta, classifier.info.zoom_tta) == (card["flip_tta"], card["zoom_tta"])


def test_the_holdout_keeps_a_tenth_of_each_class_apart() -> None:
    from emotion.training.train import holdout_split

    labels = np.repeat(np.arange(len(EMOTIONS)), [400, 40, 410, 720, 500, 480, 320])
    kept, held = holdout_split(labels, 0.1, seed=7)
    assert not set(kept) & set(held) and len(kept) + len(held) == len(labels)
    assert np.bincount(labels[held], minlength=7).tolist() == [40, 4, 41, 72, 50, 48, 32]
    again_kept, again_held = holdout_split(labels, 0.1, seed=7)
    assert np.array_equal(held, again_held) and np.array_equal(kept, again_kept)
    assert not np.array_equal(held, holdout_split(labels, 0.1, seed=8)[1])


def test_cosine_restarts_end_where_each_doubled_cycle_ends() -> None:
    from emotion.training.train import cycle_ends

    assert cycle_ends(20, 300) == {20, 60, 140, 300}
    assert cycle_ends(20, 299) == {20, 60, 140}
    assert cycle_ends(5, 4) == set()


def test_a_run_stopped_by_its_time_limit_resumes_and_finishes(tmp_path) -> None:
    """--time-limit stops after an epoch, keeps the backup and no final weights; the same command finishes."""
    from emotion.training.train import main

    _tiny_split(tmp_path / "train.npz", 64, 5)
    _tiny_split(tmp_path / "val.npz", 16, 6)
    run = tmp_path / "run"
    args = ["--train", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"), "--run-dir", str(run)]
    args += ["--out", str(tmp_path / "m.tflite"), "--epochs", "3", "--steps", "2", "--batch", "16", "--width", "8"]
    args += ["--verbose", "0"]
    main([*args, "--time-limit", "0.001"])
    assert (run / "last.keras").is_file() and not (run / "final.keras").exists()
    assert len((run / "history.csv").read_text().splitlines()) == 2  # header + the one epoch done
    main(args)
    assert len((run / "history.csv").read_text().splitlines()) == 4  # the two epochs left, not three more
    assert (run / "final.keras").is_file() and (tmp_path / "m.tflite").is_file()


#: Run first in a child process: any import of TensorFlow fails there, as on a machine without it.
#: (Libraries that only look for it with find_spec get a spec without an origin, as for a namespace stub.)
NO_TENSORFLOW = """
import importlib.machinery, sys
class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name.split(".")[0] == "tensorflow" else None
    def create_module(self, spec):
        raise ImportError("no TensorFlow on this machine")
    def exec_module(self, module):
        pass
sys.meta_path.insert(0, NoTensorFlow())
"""


def test_training_runs_without_tensorflow_on_another_backend(tmp_path) -> None:
    """A GPU machine may have PyTorch but no TensorFlow: training runs there (TensorFlow made unimportable
    here), and its .keras weights export to .tflite on this side, unchanged."""
    import os
    import subprocess
    import sys

    pytest.importorskip("torch", reason="the other-backend test needs torch (requirements-dev.txt)")
    from emotion.training.export import main as export

    from .conftest import ROOT

    _tiny_split(tmp_path / "train.npz", 64, 7)
    _tiny_split(tmp_path / "val.npz", 32, 8)
    run = tmp_path / "run"
    argv = ["--train", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"), "--run-dir", str(run)]
    argv += ["--epochs", "2", "--steps", "2", "--batch", "16", "--width", "8", "--verbose", "0", "--no-bf16"]
    code = f"{NO_TENSORFLOW}\nfrom emotion.training.train import main\nmain({argv!r})"
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    info = json.loads((run / "train_info.json").read_text())
    assert info["backend"] == "torch" and info["tflite_bytes"] is None
    assert len((run / "history.csv").read_text().splitlines()) == 3

    out = tmp_path / "models"
    out.mkdir()
    weights = ["--weights", str(run / "final.keras"), "--run-dir", str(run)]
    export([*weights, "--val", str(tmp_path / "val.npz"), "--out-dir", str(out), "--width", "8"])
    probs = EmotionClassifier(out / "emotion.tflite").predict(np.zeros((2, 48, 48), dtype=np.uint8))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_the_taught_target_mixes_the_teacher_and_the_smoothed_label() -> None:
    """``taught_loss`` is the cross-entropy against ``share`` of the teacher and the rest the smoothed truth."""
    from emotion.training.train import taught_loss

    rng = np.random.default_rng(0)
    student, teacher = rng.dirichlet(np.ones(7), 4), rng.dirichlet(np.ones(7), 4)
    truth = np.eye(7)[[0, 3, 5, 6]]
    predicted = np.concatenate([student, teacher], axis=1).astype(np.float32)

    def cross_entropy(target: np.ndarray) -> np.ndarray:
        return -(target * np.log(student)).sum(axis=1)

    smoothed = truth * 0.9 + 0.1 / 7
    for share, target in ((0.0, smoothed), (1.0, teacher), (0.3, 0.7 * smoothed + 0.3 * teacher)):
        loss = np.asarray(taught_loss(share, 0.1)(truth.astype(np.float32), predicted))
        np.testing.assert_allclose(loss, cross_entropy(target), rtol=1e-4)


def test_a_student_learns_from_a_frozen_teacher_and_exports(tmp_path) -> None:
    """--teacher: only the student's weights train (the teacher's stay frozen inside the trained graph), the
    run records its teacher, and what it saves is the student alone, which exports like any network."""
    from emotion.training.export import main as export
    from emotion.training.train import build_model, load_ensemble, main, trainable

    _tiny_split(tmp_path / "train.npz", 64, 9)
    _tiny_split(tmp_path / "val.npz", 32, 10)
    common = ["--train", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"), "--width", "8"]
    common += ["--steps", "2", "--batch", "16", "--verbose", "0", "--epochs", "1"]
    main([*common, "--run-dir", str(tmp_path / "teacher")])
    teacher_file = tmp_path / "teacher" / "final.keras"
    before = teacher_file.read_bytes()

    student = build_model(8)
    fitted = trainable(student, 1, teacher=load_ensemble([str(teacher_file)] * 2, 8, "teacher"))
    assert fitted.output_shape == (None, 14)
    assert len(fitted.trainable_weights) == len(student.trainable_weights)

    run = tmp_path / "student"
    main([*common, "--run-dir", str(run), "--teacher", str(teacher_file), "--distill", "0.7"])
    info = json.loads((run / "train_info.json").read_text())
    assert info["teacher"] == [str(teacher_file)] and info["distill"] == 0.7
    assert teacher_file.read_bytes() == before
    assert "accuracy" in (run / "history.csv").read_text().splitlines()[0].split(",")
    out = tmp_path / "models"
    weights = ["--weights", str(run / "final.keras"), "--run-dir", str(run)]
    export([*weights, "--val", str(tmp_path / "val.npz"), "--out-dir", str(out), "--width", "8"])
    probs = EmotionClassifier(out / "emotion.tflite").predict(np.zeros((2, 48, 48), dtype=np.uint8))
    assert probs.shape == (2, 7)


def test_runs_with_one_holdout_seed_hold_out_the_same_faces(tmp_path) -> None:
    """Members of one ensemble must share their held-out faces, or none is left out of all of them to fit on."""
    from emotion.training.train import parse_args, training_data

    data = str(tmp_path / "train.npz")
    _tiny_split(data, 140, seed=3)
    common = ["--train", data, "--val", data, "--holdout", "0.2", "--batch", "8"]

    def held(*flags: str) -> np.ndarray:
        run = tmp_path / "-".join(flags)
        run.mkdir(exist_ok=True)
        x_train = training_data(parse_args([*common, *flags]), run)[0]
        with np.load(run / "holdout.npz") as split:
            assert len(x_train) + len(split["index"]) == 140
            return split["index"]

    assert np.array_equal(held("--seed", "1", "--holdout-seed", "9"), held("--seed", "2", "--holdout-seed", "9"))
    assert np.array_equal(held("--seed", "9"), held("--seed", "1", "--holdout-seed", "9"))
    assert not np.array_equal(held("--seed", "1"), held("--seed", "2"))
