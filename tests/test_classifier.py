"""The served model: loads with LiteRT, valid distributions, deterministic, sensible on a real face."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from emotion import EMOTIONS, EmotionClassifier, ModelError
from emotion.classifier import DEFAULT_MODEL, MODELS_DIR

from .conftest import ROOT


@pytest.fixture(scope="module")
def classifier() -> EmotionClassifier:
    return EmotionClassifier()


def _assert_distributions(probs: np.ndarray, count: int) -> None:
    assert probs.shape == (count, len(EMOTIONS))
    assert probs.dtype == np.float32
    assert np.all(probs >= 0) and np.all(probs <= 1)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_class_order_is_the_shared_contract() -> None:
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def test_no_faces_gives_an_empty_batch(classifier: EmotionClassifier) -> None:
    _assert_distributions(classifier.predict(np.zeros((0, 48, 48), dtype=np.uint8)), 0)
    _assert_distributions(classifier.predict([]), 0)


def test_one_and_many_faces_of_any_size(classifier: EmotionClassifier) -> None:
    rng = np.random.default_rng(7)
    _assert_distributions(classifier.predict(rng.integers(0, 256, (1, 48, 48), dtype=np.uint8)), 1)
    _assert_distributions(classifier.predict(rng.integers(0, 256, (33, 64, 64), dtype=np.uint8)), 33)
    crops = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(1, 1), (20, 35), (48, 48), (300, 260)]]
    _assert_distributions(classifier.predict(crops), len(crops))


def test_predictions_are_deterministic_and_independent_of_batching(classifier: EmotionClassifier) -> None:
    rng = np.random.default_rng(3)
    faces = rng.integers(0, 256, (5, 60, 60), dtype=np.uint8)
    first = classifier.predict(faces)
    np.testing.assert_array_equal(first, classifier.predict(faces))
    one_by_one = np.concatenate([classifier.predict(faces[i : i + 1]) for i in range(len(faces))])
    np.testing.assert_allclose(first, one_by_one, atol=1e-5)
    assert not np.allclose(first[0], first[1]), "different faces should not get identical answers"


def test_test_time_views_average_the_plain_mirrored_and_zoomed_face() -> None:
    """With both views on, each face's answer is the mean of four single-view answers, in one batch."""
    rng = np.random.default_rng(11)
    faces = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    plain = EmotionClassifier(flip_tta=False, zoom_tta=False)
    inner = np.stack([cv2.resize(f[2:46, 2:46].astype(np.float32), (48, 48)) for f in faces])
    views = [faces, faces[:, :, ::-1], inner, inner[:, :, ::-1]]
    expected = np.mean([plain._invoke(plain.preprocess(v) if v.dtype == np.uint8 else v[..., None]) for v in views], 0)
    expected /= expected.sum(axis=1, keepdims=True)
    both = EmotionClassifier(flip_tta=True, zoom_tta=True, temperature=1.0).predict(faces)
    np.testing.assert_allclose(both, expected, atol=1e-5)
    assert not np.allclose(both, plain.predict(faces), atol=1e-3), "the views must change the answer"


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 48, 48), np.float32), [np.zeros((48, 48, 3), np.uint8)], [np.zeros((0, 5), np.uint8)]]
)
def test_rejects_crops_that_are_not_grayscale_uint8(classifier: EmotionClassifier, bad) -> None:
    with pytest.raises(ValueError):
        classifier.predict(bad)


def test_model_card_matches_the_committed_file() -> None:
    card = json.loads((MODELS_DIR / "model.json").read_text())
    assert card["sha256"] == hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest()
    assert tuple(card["classes"]) == EMOTIONS
    assert DEFAULT_MODEL.stat().st_size <= 8 * 1024 * 1024
    assert EmotionClassifier().info.as_dict() == {
        "name": card["name"],
        "version": card["version"],
        "sha256": card["sha256"],
    }


def test_a_missing_or_broken_model_is_a_typed_error(tmp_path) -> None:
    with pytest.raises(ModelError):
        EmotionClassifier(tmp_path / "absent.tflite")
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer" * 10)
    with pytest.raises(ModelError):
        EmotionClassifier(broken)


def test_the_astronaut_is_happy(classifier: EmotionClassifier, astronaut: np.ndarray) -> None:
    import cv2

    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    face = gray[50:180, 160:290]  # the face with some margin, as the pipeline crops it
    probs = classifier.predict([face])[0]
    assert EMOTIONS[int(probs.argmax())] == "happy", dict(zip(EMOTIONS, probs.round(3), strict=False))


def test_serving_never_imports_tensorflow() -> None:
    code = (
        "import sys, main, emotion.training.evaluate\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
