"""Calibration: the expected calibration error and NLL, the fitted temperature, and the served model's use of it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from emotion import EMOTIONS, EmotionClassifier, ModelError
from emotion.classifier import DEFAULT_MODEL, apply_temperature
from emotion.training.calibrate import fit_temperature
from emotion.training.metrics import calibration

from .conftest import ROOT


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_ece_and_nll_on_a_hand_checked_case() -> None:
    # Two faces at confidence 0.9 (one right), two at 0.6 (both right): bins 13 and 9 of 15.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    truth = np.array([0, 1, 0, 1])
    figures = calibration(truth, probs)
    assert figures["ece"] == pytest.approx(0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.6))
    assert figures["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.1, 0.6, 0.6])))
    assert figures["mean_confidence"] == pytest.approx(0.75) and figures["accuracy"] == pytest.approx(0.75)


def test_a_perfectly_confident_right_answer_has_no_calibration_error() -> None:
    figures = calibration(np.array([0, 2]), np.eye(3)[[0, 2]])
    assert figures["ece"] == 0.0 and figures["nll"] == pytest.approx(0.0, abs=1e-9)


def test_temperature_one_changes_nothing_and_others_keep_the_ranking() -> None:
    probs = _softmax(np.random.default_rng(1).normal(size=(50, 7)))
    np.testing.assert_allclose(apply_temperature(probs, 1.0), probs, atol=1e-12)
    sharp, soft = apply_temperature(probs, 0.5), apply_temperature(probs, 2.0)
    for scaled in (sharp, soft):
        np.testing.assert_allclose(scaled.sum(axis=1), 1.0, atol=1e-12)
        assert np.array_equal(scaled.argmax(axis=1), probs.argmax(axis=1))
    assert np.all(sharp.max(axis=1) > probs.max(axis=1)) and np.all(soft.max(axis=1) < probs.max(axis=1))
    np.testing.assert_allclose(sharp, _softmax(np.log(probs) / 0.5), atol=1e-12)


def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_with() -> None:
    """Labels drawn from softmax(logits / 0.7): the model's softmax(logits) is under-confident by exactly 0.7."""
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=2.0, size=(20000, 7))
    truth_probs = _softmax(logits / 0.7)
    truth = (truth_probs.cumsum(axis=1) > rng.random((len(logits), 1))).argmax(axis=1)
    probs = _softmax(logits)
    temperature = fit_temperature(probs, truth)
    assert temperature == pytest.approx(0.7, abs=0.03)
    before, after = calibration(truth, probs), calibration(truth, apply_temperature(probs, temperature))
    assert after["ece"] < 0.02 < before["ece"] and after["nll"] < before["nll"]


def _model_copy(tmp_path, **card_changes) -> EmotionClassifier:
    shutil.copy(DEFAULT_MODEL, tmp_path / DEFAULT_MODEL.name)
    card = json.loads(DEFAULT_MODEL.with_name("model.json").read_text()) | card_changes
    (tmp_path / "model.json").write_text(json.dumps(card))
    return EmotionClassifier(tmp_path / DEFAULT_MODEL.name)


@pytest.mark.parametrize("bad", [0, -1.0, 50, "0.9", True, None])
def test_a_card_with_a_temperature_that_is_not_a_sane_number_is_refused(tmp_path, bad) -> None:
    with pytest.raises(ModelError, match="temperature"):
        _model_copy(tmp_path, temperature=bad)


def test_the_served_probabilities_are_tempered_by_the_cards_temperature(tmp_path) -> None:
    faces = np.random.default_rng(3).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    raw = EmotionClassifier(temperature=1.0).predict(faces).astype(np.float64)
    tempered = _model_copy(tmp_path, temperature=0.5)
    assert tempered.info.temperature == 0.5
    np.testing.assert_allclose(tempered.predict(faces), apply_temperature(raw, 0.5), atol=1e-5)
    card_t = EmotionClassifier().info.temperature
    np.testing.assert_allclose(EmotionClassifier().predict(faces), apply_temperature(raw, card_t), atol=1e-5)


def test_calibrate_fits_on_held_out_faces_and_records_the_temperature(tmp_path) -> None:
    _model_copy(tmp_path, temperature=1.0)
    rng = np.random.default_rng(4)
    faces = rng.integers(0, 256, (64, 48, 48), dtype=np.uint8)
    labels = EmotionClassifier(temperature=1.0).predict(faces).argmax(axis=1)
    labels[:8] = (labels[:8] + 1) % len(EMOTIONS)  # mostly right: the fit must sharpen (T < 1)
    np.savez(tmp_path / "held.npz", x=faces, y=labels.astype(np.uint8))
    np.savez(tmp_path / "val.npz", x=faces[:16], y=labels[:16].astype(np.uint8))
    model = tmp_path / DEFAULT_MODEL.name
    argv = ["--model", str(model), "--data", str(tmp_path / "held.npz"), "--val", str(tmp_path / "val.npz")]
    subprocess.run(
        [sys.executable, "-m", "emotion.training.calibrate", *argv, "--write"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    card = json.loads((tmp_path / "model.json").read_text())
    assert 0.05 <= card["temperature"] < 1.0
    assert card["calibration"]["fitted_on"] == {"files": ["held.npz"], "faces": 64}
    assert EmotionClassifier(model).info.temperature == card["temperature"]
