"""The served model: loads with LiteRT, valid distributions, deterministic, sensible on a real face."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from emotion import EMOTIONS, EmotionClassifier, ModelError
from emotion.classifier import DEFAULT_MODEL, DEFAULT_ZOOMS, MODELS_DIR, ModelInfo, read_model_info, scaled

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


def _uncalibrated(*, flip: bool, zoom: bool) -> EmotionClassifier:
    """The committed model with these views (zoomed: as is and 2 px in), and neither the card's temperature nor
    its confidence map."""
    return EmotionClassifier(flip_tta=flip, zoom_tta=zoom, zoom_pixels=(0, 2), temperature=1.0, confidence_map=())


def test_test_time_views_average_the_plain_mirrored_and_zoomed_face() -> None:
    """With both views on, each face's answer is the mean of four single-view answers, in one batch."""
    rng = np.random.default_rng(11)
    faces = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    plain = _uncalibrated(flip=False, zoom=False)
    inner = np.stack([cv2.resize(f[2:46, 2:46].astype(np.float32), (48, 48)) for f in faces])
    views = [faces, faces[:, :, ::-1], inner, inner[:, :, ::-1]]
    expected = np.mean([plain._invoke(plain.preprocess(v) if v.dtype == np.uint8 else v[..., None]) for v in views], 0)
    expected /= expected.sum(axis=1, keepdims=True)
    both = _uncalibrated(flip=True, zoom=True).predict(faces)
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
    assert EmotionClassifier().info.ref.to_json() == {
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


# --- model.json: what the result reports, and a card that does not match refuses the model -------------------


@pytest.fixture
def model_copy(tmp_path):
    """The committed model copied alone into a folder (no model.json beside it) and its card as a dict."""
    path = tmp_path / "emotion.tflite"
    path.write_bytes(DEFAULT_MODEL.read_bytes())
    return path, json.loads((MODELS_DIR / "model.json").read_text())


def test_without_a_card_the_model_is_described_by_its_file(model_copy) -> None:
    path, card = model_copy
    assert read_model_info(path) == ModelInfo(
        name="emotion", version="unversioned", sha256=card["sha256"], input_size=48, flip_tta=False, zoom_tta=False
    )


def test_model_info_cannot_change_once_read(model_copy) -> None:
    info = read_model_info(model_copy[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.flip_tta = True  # type: ignore[misc]


def test_the_card_names_the_model_and_its_views(model_copy) -> None:
    path, card = model_copy
    card |= {"name": "other", "version": "7", "input_size": 48, "flip_tta": True, "zoom_tta": False}
    (path.parent / "model.json").write_text(json.dumps(card))
    t, knots = card["temperature"], tuple(tuple(knot) for knot in card.get("confidence_map", ()))
    first, second = card.get("zoom_pixels", DEFAULT_ZOOMS)
    expected = ModelInfo("other", "7", card["sha256"], 48, True, False, t, knots, (first, second))
    assert read_model_info(path) == expected
    card |= {"flip_tta": False, "zoom_tta": True, "temperature": 0.5, "confidence_map": [[0.3, 0.2], [0.9, 0.95]]}
    card |= {"zoom_pixels": [-3, 4]}
    (path.parent / "model.json").write_text(json.dumps(card))
    expected = ModelInfo("other", "7", card["sha256"], 48, False, True, 0.5, ((0.3, 0.2), (0.9, 0.95)), (-3, 4))
    assert read_model_info(path) == expected
    del card["zoom_pixels"]  # a card from before zoom_pixels: the pair it was measured with
    (path.parent / "model.json").write_text(json.dumps(card))
    assert read_model_info(path).zoom_pixels == DEFAULT_ZOOMS == (0, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha256": "0" * 64}, "does not match the sha256 in"),
        ({"sha256": None}, "does not match the sha256 in"),
        ({"classes": ["happy", "angry", "disgust", "fear", "neutral", "sad", "surprise"]}, "lists classes"),
        ({"classes": ["angry", "disgust", "fear", "happy", "neutral", "sad"]}, "lists classes"),
        ({"classes": None}, "lists classes"),
    ],
    ids=["wrong_sha256", "no_sha256", "classes_reordered", "class_missing", "no_classes"],
)
def test_a_card_that_does_not_match_refuses_the_model(model_copy, change: dict, message: str) -> None:
    path, card = model_copy
    card |= change
    card = {k: v for k, v in card.items() if v is not None}
    (path.parent / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=message):
        read_model_info(path)
    with pytest.raises(ModelError, match=message):
        EmotionClassifier(path)


def test_an_empty_card_refuses_the_model(model_copy) -> None:
    """A model.json is checked whenever it is there, even one that says nothing."""
    path, _ = model_copy
    (path.parent / "model.json").write_text("{}")
    with pytest.raises(ModelError, match="does not match the sha256"):
        read_model_info(path)


def test_the_card_decides_the_views_unless_forced(model_copy) -> None:
    path, card = model_copy
    (path.parent / "model.json").write_text(json.dumps(card | {"flip_tta": True, "zoom_tta": False}))
    assert (EmotionClassifier(path).info.flip_tta, EmotionClassifier(path).info.zoom_tta) == (True, False)
    forced = EmotionClassifier(path, flip_tta=False, zoom_tta=True).info
    assert (forced.flip_tta, forced.zoom_tta) == (False, True)
    assert EmotionClassifier(path, zoom_tta=True).info.flip_tta is True
    assert EmotionClassifier(path, flip_tta=False).info.zoom_tta is False


# --- preprocessing and the test-time views, against OpenCV called directly --------------------------------------


def test_crops_are_shrunk_with_area_averaging_and_enlarged_linearly(classifier: EmotionClassifier) -> None:
    rng = np.random.default_rng(5)
    area, linear = cv2.INTER_AREA, cv2.INTER_LINEAR
    cases = [
        ((96, 96), area),
        ((24, 30), linear),
        ((96, 30), area),  # shrunk along one side is enough
        ((30, 96), area),
        ((48, 30), linear),  # the model's size along one side is not shrinking
        ((30, 48), linear),
    ]
    faces = [rng.integers(0, 256, shape, dtype=np.uint8) for shape, _ in cases]
    exact = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    batch = classifier.preprocess([*faces, exact])
    assert batch.shape == (7, 48, 48, 1) and batch.dtype == np.float32
    for got, face, (shape, how) in zip(batch, faces, cases, strict=False):
        expected = cv2.resize(face, (48, 48), interpolation=how)
        np.testing.assert_array_equal(got[..., 0], expected, err_msg=str(shape))
    np.testing.assert_array_equal(batch[6, ..., 0], exact)


def test_a_bad_crop_is_named_in_the_error(classifier: EmotionClassifier) -> None:
    good = np.zeros((48, 48), np.uint8)
    with pytest.raises(ValueError, match=r"^face 1 must be a non-empty 2-D uint8 array, got uint8 \(48, 48, 3\)$"):
        classifier.preprocess([good, np.zeros((48, 48, 3), np.uint8)])
    with pytest.raises(ValueError, match=r"^face 2 must .* got int16 \(48, 48\)$"):
        classifier.preprocess([good, good, good.astype(np.int16)])
    with pytest.raises(ValueError, match=r"^face 0 must .* got uint8 \(48, 0\)$"):
        classifier.preprocess([np.zeros((48, 0), np.uint8)])


def test_a_scaled_view_cuts_or_adds_pixels_on_every_side() -> None:
    batch = np.random.default_rng(9).uniform(0, 255, (2, 48, 48, 1)).astype(np.float32)
    larger = [cv2.resize(face[2:46, 2:46, 0], (48, 48), interpolation=cv2.INTER_LINEAR) for face in batch]
    got = scaled(batch, 2)
    assert got.shape == (2, 48, 48, 1)
    np.testing.assert_array_equal(got[..., 0], np.stack(larger))
    padded = [np.pad(face[..., 0], 3, mode="edge") for face in batch]  # 54 px: the edge repeated 3 px a side
    smaller = [cv2.resize(face, (48, 48), interpolation=cv2.INTER_LINEAR) for face in padded]
    np.testing.assert_array_equal(scaled(batch, -3)[..., 0], np.stack(smaller))
    assert scaled(batch, 0) is batch


def test_the_cards_zoom_pixels_are_the_two_scales_seen(model_copy) -> None:
    path, card = model_copy
    (path.parent / "model.json").write_text(
        json.dumps(card | {"flip_tta": True, "zoom_tta": True, "zoom_pixels": [-2, 5]})
    )
    classifier = EmotionClassifier(path)
    faces = np.random.default_rng(17).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    batch = classifier.preprocess(faces)
    views = [scaled(batch, -2), scaled(batch, 5)]
    expected = [classifier._invoke(v) for v in [*views, *(v[:, :, ::-1] for v in views)]]
    np.testing.assert_allclose(classifier.view_probabilities(faces), np.stack(expected), atol=1e-6)
    other = EmotionClassifier(path, zoom_pixels=(0, 2)).view_probabilities(faces)
    assert np.abs(other - np.stack(expected)).max() > 1e-3, "another pair must see other views"


@pytest.mark.parametrize("bad", [[2], [0, 2, 4], [0, 13], [-9, 0], ["0", 2], [True, 2], [0.5, 2], 2, None])
def test_a_card_with_zoom_pixels_that_are_not_two_scales_is_refused(model_copy, bad) -> None:
    path, card = model_copy
    (path.parent / "model.json").write_text(json.dumps(card | {"zoom_pixels": bad}))
    with pytest.raises(ModelError, match="zoom_pixels"):
        EmotionClassifier(path)


@pytest.mark.parametrize(("flip", "zoom"), [(True, False), (False, True)])
def test_one_view_at_a_time_averages_two_answers(flip: bool, zoom: bool) -> None:
    faces = np.random.default_rng(13).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    plain = _uncalibrated(flip=False, zoom=False)
    batch = plain.preprocess(faces)
    other = batch[:, :, ::-1] if flip else scaled(batch, 2)
    expected = (plain._invoke(batch) + plain._invoke(other)) / 2
    got = _uncalibrated(flip=flip, zoom=zoom).predict(faces)
    np.testing.assert_allclose(got, expected / expected.sum(axis=1, keepdims=True), atol=1e-6)
    assert np.abs(got - plain.predict(faces)).max() > 1e-3, "the second view must change the answer"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON"),
        (b"\xff\xfe{}", "is not valid JSON"),
        ("[1, 2]", "holds list, not a JSON object"),
    ],
    ids=["truncated", "not_utf8", "a_list"],
)
def test_a_broken_card_is_a_model_error(model_copy, text, message: str) -> None:
    path, _ = model_copy
    card = path.parent / "model.json"
    card.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ModelError, match=message):
        read_model_info(path)


def test_an_interpreter_runs_on_the_calling_thread_alone() -> None:
    """Requests already run on threads of their own: a network that started a thread pool of its own (as
    LiteRT does for ``num_threads`` above 1) would take the CPU of the other requests. Counted in a fresh
    process, where no other test's threads come and go."""
    script = """
import os
import numpy as np
from emotion.classifier import DEFAULT_MODEL
from emotion.litert import load_interpreter
before = len(os.listdir("/proc/self/task"))
interpreter = load_interpreter(DEFAULT_MODEL)
(tensor,) = interpreter.get_input_details()
interpreter.resize_tensor_input(tensor["index"], [1, 48, 48, 1])
interpreter.allocate_tensors()
interpreter.set_tensor(tensor["index"], np.zeros((1, 48, 48, 1), np.float32))
interpreter.invoke()
print(before, len(os.listdir("/proc/self/task")))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    before, after = map(int, out.stdout.split())
    assert after == before
