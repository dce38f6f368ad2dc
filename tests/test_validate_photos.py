"""``python -m emotion.training.validate_photos``: pipeline figures on labelled photos."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from .conftest import ROOT, SHARED_DATA, encode

PHOTOS = SHARED_DATA / "facial_expressions" / "labels.csv"


def test_figures_on_photos_the_test_builds(tmp_path, astronaut) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "smile.jpg").write_bytes(encode(astronaut, "JPEG"))
    (images / "mirror.png").write_bytes(encode(astronaut[:, ::-1].copy(), "PNG"))
    (images / "broken.jpg").write_bytes(b"nope")
    (tmp_path / "labels.csv").write_text(
        "image,emotion,person\nsmile.jpg,happy,a\nmirror.png,sad,a\nbroken.jpg,happy,b\nskip.jpg,contempt,c\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "emotion.training.validate_photos", str(tmp_path / "labels.csv"), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(out.stdout)
    assert figures["photos"] == 3  # the contempt row is not one of our classes
    assert figures["images"] == 2 and figures["accuracy"] == pytest.approx(0.5)
    assert figures["detection"] == {"face": 2, "error: unsupported_image": 1}
    assert figures["per_class_recall"] == {"happy": 1.0, "sad": 0.0}


@pytest.mark.skipif(not PHOTOS.is_file(), reason="needs ../shared/data/facial_expressions (present in CI)")
def test_real_photos_sample() -> None:
    """An evenly spread sample of the labelled photos: the pipeline must clearly beat the majority guess."""
    out = subprocess.run(
        [sys.executable, "-m", "emotion.training.validate_photos", str(PHOTOS), "--limit", "300", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(out.stdout)
    assert figures["images"] >= 290
    majority = max(figures["support"].values()) / figures["images"]
    assert figures["accuracy"] > majority + 0.1, figures
    assert np.isfinite(figures["macro_recall"])
