"""``python -m emotion.training.views``: the zoom scales chosen on held-out faces and recorded in the card."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from emotion.classifier import DEFAULT_MODEL, EmotionClassifier
from emotion.training.views import STALE_KEYS

from .conftest import ROOT


def _faces(count: int) -> np.ndarray:
    """Smooth random 48x48 crops: faces to a test, with answers that depend on the scale they are seen at."""
    rng = np.random.default_rng(5)
    blurred = [cv2.GaussianBlur(rng.integers(0, 256, (48, 48), dtype=np.uint8), (0, 0), 2) for _ in range(count)]
    stretched = [(face - face.min()) * (255 / max(1, int(face.max()) - int(face.min()))) for face in blurred]
    return np.stack(stretched).astype(np.uint8)


def _model_copy(tmp_path: Path, **card_changes: object) -> Path:
    model = tmp_path / DEFAULT_MODEL.name
    shutil.copy(DEFAULT_MODEL, model)
    card = json.loads(DEFAULT_MODEL.with_name("model.json").read_text()) | card_changes
    (tmp_path / "model.json").write_text(json.dumps(card))
    return model


def _views(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "emotion.training.views", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def test_the_pair_that_answers_best_on_held_out_faces_is_recorded_and_stale_figures_go(tmp_path) -> None:
    """Labels are the model's own answers with the scales (-3, 6): some pair must score all of them, the default
    pair does not, and the one written is a pair that does."""
    model = _model_copy(tmp_path, flip_tta=True, zoom_tta=True, photo_validation={"accuracy": 0.5})
    faces = _faces(40)
    labels = EmotionClassifier(model, zoom_pixels=(-3, 6)).predict(faces).argmax(axis=1)
    held = tmp_path / "held.npz"
    np.savez(held, x=faces, y=labels)

    run = _views("--model", model, "--data", held, "--val", held, "--write")
    assert run.returncode == 0, run.stderr
    card = json.loads((tmp_path / "model.json").read_text())
    pair = tuple(card["zoom_pixels"])
    selection = card["zoom_selection"]
    assert selection["held_out"]["accuracy"] == 1.0 > selection["held_out_default_pair"]["accuracy"]
    assert selection["fitted_on"] == {"files": ["held.npz"], "faces": 40}
    reread = EmotionClassifier(model, temperature=1.0, confidence_map=())
    assert reread.info.zoom_pixels == pair
    assert np.array_equal(reread.predict(faces).argmax(axis=1), labels)
    assert card["validation"]["accuracy"] == 1.0 and card["validation"]["images"] == 40
    assert not set(STALE_KEYS) & set(card), "calibration and photo figures of the old views must go"


def test_a_card_without_zoomed_views_has_no_scales_to_choose(tmp_path) -> None:
    model = _model_copy(tmp_path, zoom_tta=False)
    held = tmp_path / "held.npz"
    np.savez(held, x=_faces(4), y=np.zeros(4, dtype=np.int64))
    run = _views("--model", model, "--data", held, "--val", held)
    assert run.returncode == 2 and "no zoomed views" in run.stderr
