"""The library call ``emotion.analyze``: result contract, faces, fallback, preview, threads, /tmp only."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import emotion
from emotion import Analyzer, EmotionError
from emotion.config import Settings

from .conftest import ROOT, encode, overlaps_astronaut_face


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(Settings())


def test_astronaut_is_one_happy_face(astronaut_jpeg: bytes, validate_result) -> None:
    result = validate_result(emotion.analyze(astronaut_jpeg).to_json())
    assert len(result["faces"]) == 1
    face = result["faces"][0]
    assert face["detection"] == "face" and face["detection_score"] > 0.8
    assert overlaps_astronaut_face(face["box"]), face["box"]
    assert face["dominant_emotion"] == result["dominant_emotion"] == "happy"
    assert result["image"] == {"width": 512, "height": 512, "format": "jpeg"}
    assert result["timing_ms"]["total"] >= result["timing_ms"]["classify"] > 0


def test_preview_is_a_labelled_jpeg_no_larger_than_640(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    big = np.asarray(Image.fromarray(astronaut).resize((1600, 1600)))
    result = analyzer.analyze(encode(big, "PNG")).to_json()
    preview = Image.open(io.BytesIO(base64.b64decode(result["preview"]["base64"])))
    assert preview.format == "JPEG" and max(preview.size) == 640
    plain = np.asarray(Image.fromarray(big).resize((640, 640))).astype(int)
    # the box and label are drawn: the preview differs from the plain scaled photo around the face
    face = result["faces"][0]["box"]
    x, y = face["x"] * 640 // 1600, face["y"] * 640 // 1600
    drawn = np.asarray(preview).astype(int)[max(0, y - 20) : y + 5, x : x + 60]
    assert np.abs(drawn - plain[max(0, y - 20) : y + 5, x : x + 60]).mean() > 20


def test_preview_can_be_left_out(analyzer: Analyzer, astronaut_jpeg: bytes, validate_result) -> None:
    result = validate_result(analyzer.analyze(astronaut_jpeg, preview=False).to_json())
    assert "preview" not in result


def test_exif_rotated_photo_boxes_the_face_in_upright_coordinates(
    analyzer: Analyzer, astronaut: np.ndarray, validate_result
) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned left; viewers turn it right to show it upright
    buffer = io.BytesIO()
    Image.fromarray(astronaut).transpose(Image.Transpose.ROTATE_90).save(buffer, format="JPEG", exif=exif)
    result = validate_result(analyzer.analyze(buffer.getvalue()).to_json())
    assert len(result["faces"]) == 1
    assert overlaps_astronaut_face(result["faces"][0]["box"])
    assert result["dominant_emotion"] == "happy"


def test_every_face_in_a_group_photo_is_found(analyzer: Analyzer, astronaut: np.ndarray, validate_result) -> None:
    canvas = np.full((600, 1500, 3), 235, dtype=np.uint8)
    face = astronaut[20:220, 125:325]
    for i in range(3):
        canvas[200:400, 100 + i * 480 : 300 + i * 480] = face
    result = validate_result(analyzer.analyze(encode(canvas, "PNG")).to_json())
    assert len(result["faces"]) == 3
    lefts = sorted(f["box"]["x"] for f in result["faces"])
    assert [round((x - 100) / 480) for x in lefts] == [0, 1, 2]
    assert all(f["dominant_emotion"] == "happy" for f in result["faces"])


def test_no_face_classifies_the_whole_image(analyzer: Analyzer, validate_result) -> None:
    blank = np.full((120, 200, 3), 200, dtype=np.uint8)
    result = validate_result(analyzer.analyze(encode(blank, "PNG")).to_json())
    assert [(f["detection"], f["detection_score"]) for f in result["faces"]] == [("whole_image", None)]
    assert result["faces"][0]["box"] == {"x": 0, "y": 0, "width": 200, "height": 120}
    assert result["dominant_emotion"] == result["faces"][0]["dominant_emotion"]


def test_whole_image_fallback_can_be_switched_off(validate_result) -> None:
    strict = Analyzer(Settings(whole_image_fallback=False))
    result = validate_result(strict.analyze(encode(np.full((120, 200, 3), 200, np.uint8), "PNG")).to_json())
    assert result["faces"] == [] and result["dominant_emotion"] is None


def test_bad_input_raises_typed_errors(analyzer: Analyzer) -> None:
    for data in (b"", b"not an image", encode(np.zeros((8, 8, 3), np.uint8), "PNG")):
        with pytest.raises(EmotionError):
            analyzer.analyze(data)


def test_concurrent_requests_each_get_their_own_answer(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    """Threads share one interpreter and detector: answers must match a sequential run exactly."""
    images = [encode(np.roll(astronaut, shift, axis=1), "PNG") for shift in range(0, 240, 30)]
    images += [encode(np.full((64 + i, 80, 3), 40 * i, np.uint8), "PNG") for i in range(4)]

    def essence(data: bytes) -> list:
        result = analyzer.analyze(data, preview=False).to_json()
        return [(f["box"], f["emotions"]) for f in result["faces"]]

    expected = [essence(d) for d in images]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            assert list(pool.map(essence, images)) == expected


def test_a_request_writes_nothing_outside_tmp() -> None:
    """Audit every file the process opens for writing (and every rename/remove) while it serves requests."""
    script = textwrap.dedent(
        """
        import io, sys, json
        writes = []
        def hook(event, args):
            if event == "open" and args[1] and any(c in str(args[1]) for c in "wax+"):
                writes.append(str(args[0]))
            elif event in ("os.rename", "os.remove", "os.mkdir", "shutil.rmtree", "os.replace"):
                writes.append(str(args[0]))
        from PIL import Image
        from skimage import data
        import functions_framework
        buffer = io.BytesIO(); Image.fromarray(data.astronaut()).save(buffer, format="JPEG")
        app = functions_framework.create_app(target="analyze_http", source="main.py")
        client = app.test_client()
        sys.addaudithook(hook)
        for _ in range(2):
            assert client.post("/", data=buffer.getvalue(), content_type="image/jpeg").status_code == 200
            files = {"image": (io.BytesIO(buffer.getvalue() * 30), "big.jpg")}
            assert client.post("/", data=files, content_type="multipart/form-data").status_code == 200
        print(json.dumps(writes))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    writes = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(path.startswith("/tmp") or path.isdigit() for path in writes), writes
