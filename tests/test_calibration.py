"""Calibration: the expected calibration error and NLL, the fitted temperature and confidence map, and the served
model's use of them."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from emotion import EMOTIONS, EmotionClassifier, ModelError
from emotion.classifier import DEFAULT_MODEL, apply_confidence_map, apply_temperature
from emotion.training.calibrate import fit_confidence_map, fit_temperature
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
    raw = EmotionClassifier(temperature=1.0, confidence_map=()).predict(faces).astype(np.float64)
    tempered = _model_copy(tmp_path, temperature=0.5, confidence_map=[])
    assert tempered.info.temperature == 0.5
    np.testing.assert_allclose(tempered.predict(faces), apply_temperature(raw, 0.5), atol=1e-5)
    served = EmotionClassifier().info
    expected = apply_confidence_map(apply_temperature(raw, served.temperature), served.confidence_map)
    np.testing.assert_allclose(EmotionClassifier().predict(faces), expected, atol=1e-5)


def test_calibrate_fits_on_held_out_faces_and_records_the_temperature(tmp_path) -> None:
    _model_copy(tmp_path, temperature=1.0)
    rng = np.random.default_rng(4)
    faces = rng.integers(0, 256, (64, 48, 48), dtype=np.uint8)
    labels = EmotionClassifier(temperature=1.0, confidence_map=()).predict(faces).argmax(axis=1)
    labels[:2] = (labels[:2] + 1) % len(EMOTIONS)  # right far more often than confident: the fit must sharpen
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


def test_the_confidence_map_moves_the_top_probability_and_keeps_the_rest_in_proportion() -> None:
    probs = _softmax(np.random.default_rng(5).normal(scale=1.5, size=(200, 7)))
    probs[0] = np.eye(7)[3]  # already certain: stays
    knots = ((0.2, 0.1), (0.5, 0.6), (0.9, 0.7))
    mapped = apply_confidence_map(probs, knots)
    rows, top = np.arange(len(probs)), probs.argmax(axis=1)
    np.testing.assert_allclose(mapped.sum(axis=1), 1.0, atol=1e-12)
    assert np.array_equal(mapped.argmax(axis=1), top)
    np.testing.assert_array_equal(mapped[0], probs[0])
    wanted = np.interp(probs[rows, top], [0.2, 0.5, 0.9], [0.1, 0.6, 0.7])
    moved = mapped[rows, top]
    # Where the map would put the top class under the runner-up, it stops just above it instead.
    assert np.all(moved >= wanted - 1e-12) and np.mean(np.isclose(moved, wanted)) > 0.5
    others = np.ones_like(probs, dtype=bool)
    others[rows, top] = False
    ratio = mapped[1:][others[1:]].reshape(-1, 6) / probs[1:][others[1:]].reshape(-1, 6)
    np.testing.assert_allclose(ratio, ratio[:, :1].repeat(6, axis=1), rtol=1e-9)
    assert apply_confidence_map(probs, ()) is probs


def test_a_confidence_map_fixes_what_a_temperature_cannot() -> None:
    """Answers under-confident when unsure and over-confident when sure: one temperature leaves it wrong
    at one end or the other; the map, fitted on one sample, is calibrated on a fresh one."""
    rng = np.random.default_rng(6)

    def sample(count: int) -> tuple[np.ndarray, np.ndarray]:
        logits = rng.normal(scale=2.5, size=(count, 7))
        probs = _softmax(logits)
        top, confidence = probs.argmax(axis=1), probs.max(axis=1)
        right = rng.random(count) < 0.35 + 0.5 * confidence  # true accuracy: not the confidence
        return probs, np.where(right, top, (top + 1 + rng.integers(0, 6, count)) % 7)

    probs, truth = sample(20000)
    temperature = fit_temperature(probs, truth)
    knots = fit_confidence_map(apply_temperature(probs, temperature), truth)
    assert all(a[1] <= b[1] and a[0] < b[0] for a, b in itertools.pairwise(knots))
    fresh, fresh_truth = sample(20000)
    tempered = apply_temperature(fresh, temperature)
    only_t, mapped = calibration(fresh_truth, tempered), calibration(fresh_truth, apply_confidence_map(tempered, knots))
    assert mapped["ece"] < 0.015 < 0.04 < only_t["ece"] and mapped["nll"] < only_t["nll"]


def test_the_fitted_map_pools_bins_whose_accuracy_falls() -> None:
    # Four bins of two faces: accuracies 0, 1, 0, 1 -> the middle two pool to 0.5.
    probs = np.array([[c, 1 - c] for c in (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)])
    truth = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    assert fit_confidence_map(probs, truth, bins=4) == [(0.575, 0.0), (0.725, 0.5), (0.875, 1.0)]
    assert fit_confidence_map(probs[:3], truth[:3], bins=4) == [(0.575, 0.0), (0.65, 1.0)]


@pytest.mark.parametrize(
    "bad",
    [
        "0.5",
        [[0.5, 0.5]],
        [[0.2, 0.3], [0.1, 0.4]],
        [[0.2, 0.5], [0.4, 0.3]],
        [[0.2, True], [0.5, 0.6]],
        [[0.2, 0.3, 0.1], [0.5, 0.6]],
        [[0.2, 1.5], [0.5, 0.6]],
        [["0.2", 0.3], [0.5, 0.6]],
    ],
)
def test_a_card_with_a_confidence_map_that_is_not_a_rising_curve_is_refused(tmp_path, bad) -> None:
    with pytest.raises(ModelError, match="confidence_map"):
        _model_copy(tmp_path, confidence_map=bad)


def test_the_served_probabilities_follow_the_cards_confidence_map(tmp_path) -> None:
    faces = np.random.default_rng(7).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    raw = EmotionClassifier(temperature=1.0, confidence_map=()).predict(faces).astype(np.float64)
    knots = ((0.2, 0.3), (0.9, 0.8))
    mapped = _model_copy(tmp_path, temperature=0.5, confidence_map=[list(k) for k in knots])
    assert mapped.info.confidence_map == knots
    expected = apply_confidence_map(apply_temperature(raw, 0.5), knots)
    assert not np.allclose(expected, apply_temperature(raw, 0.5), atol=1e-3)
    np.testing.assert_allclose(mapped.predict(faces), expected, atol=1e-5)


def test_calibrate_records_a_map_and_a_later_temperature_alone_removes_it(tmp_path) -> None:
    _model_copy(tmp_path, temperature=1.0)
    rng = np.random.default_rng(8)
    faces = rng.integers(0, 256, (80, 48, 48), dtype=np.uint8)
    labels = EmotionClassifier(temperature=1.0).predict(faces).argmax(axis=1)
    labels[::3] = (labels[::3] + 1) % len(EMOTIONS)
    np.savez(tmp_path / "held.npz", x=faces, y=labels.astype(np.uint8))
    model = tmp_path / DEFAULT_MODEL.name
    argv = ["--model", str(model), "--data", str(tmp_path / "held.npz"), "--val", str(tmp_path / "held.npz")]

    def calibrate(*flags: str) -> dict:
        command = [sys.executable, "-m", "emotion.training.calibrate", *argv, *flags, "--write"]
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        return json.loads((tmp_path / "model.json").read_text())

    card = calibrate("--map")
    knots = tuple(tuple(k) for k in card["confidence_map"])
    assert len(knots) >= 2 and EmotionClassifier(model).info.confidence_map == knots
    assert card["calibration"]["val_after"]["ece"] <= card["calibration"]["val_after_temperature"]["ece"]
    assert "confidence_map" not in calibrate() and EmotionClassifier(model).info.confidence_map == ()


def test_evaluate_measures_the_cards_calibration_or_only_the_temperature_it_is_given(tmp_path) -> None:
    knots = [[0.2, 0.3], [0.9, 0.8]]
    _model_copy(tmp_path, temperature=0.5, confidence_map=knots)
    faces = np.random.default_rng(9).integers(0, 256, (12, 48, 48), dtype=np.uint8)
    truth = np.arange(12) % len(EMOTIONS)
    np.savez(tmp_path / "split.npz", x=faces, y=truth.astype(np.uint8))
    raw = EmotionClassifier(temperature=1.0, confidence_map=()).predict(faces).astype(np.float64)

    def evaluate(*flags: str) -> dict:
        command = [sys.executable, "-m", "emotion.training.evaluate", str(tmp_path / "split.npz"), "--json"]
        command += ["--model", str(tmp_path / DEFAULT_MODEL.name), *flags]
        return json.loads(subprocess.run(command, cwd=ROOT, capture_output=True, check=True).stdout)

    as_card = evaluate()
    assert as_card["model"]["confidence_map"] == knots
    carded = apply_confidence_map(apply_temperature(raw, 0.5), [(0.2, 0.3), (0.9, 0.8)])
    assert as_card["calibration"] == pytest.approx(calibration(truth, carded), abs=1e-5)
    given = evaluate("--temperature", "1.0")
    assert given["model"]["confidence_map"] == [] and given["model"]["temperature"] == 1.0
    assert given["calibration"] == pytest.approx(calibration(truth, raw), abs=1e-5)
