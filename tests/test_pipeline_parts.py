"""The pipeline's own parts: the crop the model sees, a face's entry in the result, full-size boxes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from emotion import Analyzer
from emotion.config import Settings
from emotion.geometry import Box
from emotion.labels import EMOTIONS
from emotion.pipeline import _crop, _face, _ms

from .conftest import encode
from .test_detect import HEAD


@pytest.fixture(scope="module")
def gray() -> np.ndarray:
    return np.random.default_rng(4).integers(0, 256, (100, 160), dtype=np.uint8)


def test_a_face_is_cropped_square_with_a_tenth_of_its_size_around_it(gray: np.ndarray) -> None:
    """A 20x20 face at (40, 40): 10% on every side makes a 24-px square at (38, 38)."""
    np.testing.assert_array_equal(_crop(gray, Box(40, 40, 20, 20), "face"), gray[38:62, 38:62])
    np.testing.assert_array_equal(_crop(gray, Box(40, 40, 50, 30), "face"), gray[25:85, 35:95])  # 50 * 1.2 = 60


def test_the_whole_image_is_cropped_to_its_centre_square_without_margin(gray: np.ndarray) -> None:
    np.testing.assert_array_equal(_crop(gray, Box(0, 0, 160, 100), "whole_image"), gray[0:100, 30:130])


def test_a_face_entry() -> None:
    row = np.array([0.05, 0.01, 0.04, 0.7, 0.1, 0.06, 0.04], dtype=np.float32)
    entry = _face(Box(1, 2, 3, 4), "face", 0.123456789, row)
    assert entry.to_json() == {
        "box": {"x": 1, "y": 2, "width": 3, "height": 4},
        "detection": "face",
        "detection_score": 0.1235,
        "emotions": dict(zip(EMOTIONS, row.tolist(), strict=True)),
        "dominant_emotion": "happy",
    }
    other = _face(Box(0, 0, 5, 5), "whole_image", None, np.roll(row, 1))
    assert (other.detection_score, other.dominant_emotion) == (None, "neutral")


def test_durations_are_milliseconds_to_a_microsecond() -> None:
    assert _ms(10.0, 10.0123456) == 12.346
    assert _ms(0.5, 2.0) == 1500.0


def test_a_large_jpeg_decoded_at_reduced_scale_reports_boxes_at_full_size(astronaut: np.ndarray, coffee) -> None:
    """A 1920x1080 JPEG is decoded at half size; the face of about 100 px (50 decoded) is still sought
    (DETECT_MIN_FACE counts pixels of the photo) and its box is given in the photo's pixels."""
    canvas = np.asarray(Image.fromarray(coffee).resize((1920, 1080)))
    head = np.asarray(Image.fromarray(astronaut[HEAD]).resize((200, 200)))
    canvas = canvas.copy()
    canvas[500:700, 900:1100] = head
    analyzer = Analyzer(Settings(detect_min_face=48))
    result = analyzer.analyze(encode(canvas, "JPEG", quality=90), preview=False).to_json()
    assert analyzer.decode(encode(canvas, "JPEG", quality=90)).rgb.shape[:2] == (540, 960)
    assert result["image"] == {"width": 1920, "height": 1080, "format": "jpeg"}
    (face,) = result["faces"]
    assert face["detection"] == "face"
    box = face["box"]
    # the head's face, measured on this photo at full size (as test_detect pins it: about 84 px at (956, 554))
    assert abs(box["x"] - 956) <= 6 and abs(box["y"] - 554) <= 6 and abs(box["width"] - 84) <= 6, box
    strict = Analyzer(Settings(detect_min_face=400, whole_image_fallback=False))
    assert strict.analyze(encode(canvas, "JPEG", quality=90), preview=False).faces == ()


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(Settings())


def test_the_dominant_emotion_is_that_of_the_largest_face(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    """The astronaut (about 96 px, happy) beside the cameraman of scikit-image's camera() (about 49 px)."""
    from skimage import data

    canvas = np.full((600, 1100, 3), 128, np.uint8)
    canvas[0:512, 0:512] = astronaut
    canvas[100:500, 600:1000] = np.asarray(Image.fromarray(data.camera()).convert("RGB").resize((400, 400)))
    result = analyzer.analyze(encode(canvas, "PNG"), preview=False).to_json()
    first, second = result["faces"]
    assert first["box"]["width"] > second["box"]["width"] and first["box"]["x"] < 512 < second["box"]["x"]
    assert first["dominant_emotion"] != second["dominant_emotion"], "the test needs two different answers"
    assert result["dominant_emotion"] == first["dominant_emotion"] == "happy"


def test_without_a_face_the_model_sees_the_centre_square(analyzer: Analyzer) -> None:
    ramp = np.tile(np.linspace(0, 255, 200).astype(np.uint8), (120, 1))  # a horizontal ramp, no face
    image = analyzer.decode(encode(np.stack([ramp] * 3, axis=-1), "PNG"))
    faces = analyzer.find_faces(image)
    assert (faces.detection, faces.boxes, faces.full_boxes, faces.scores) == (
        "whole_image",
        [Box(0, 0, 200, 120)],
        [Box(0, 0, 200, 120)],
        [None],
    )
    (crop,) = faces.crops
    np.testing.assert_array_equal(crop, ramp[:, 40:160])
    with pytest.raises(dataclasses.FrozenInstanceError):  # shared by the steps after it, so never changed
        faces.detection = "face"  # type: ignore[misc]


def test_the_library_call_includes_the_preview_unless_asked_not_to(astronaut_jpeg: bytes) -> None:
    import emotion

    assert emotion.analyze(astronaut_jpeg).to_json()["preview"]["mime_type"] == "image/jpeg"
    assert "preview" not in emotion.analyze(astronaut_jpeg, preview=False).to_json()
