"""``python -m emotion.training.validate_photos``: pipeline figures on labelled photos."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emotion.classifier import DEFAULT_MODEL
from emotion.training.photo_crops import split_people

from .conftest import ROOT, SHARED_DATA, encode

PHOTOS = SHARED_DATA / "facial_expressions" / "labels.csv"


def _validate(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "emotion.training.validate_photos", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=check)


def test_figures_on_photos_the_test_builds(tmp_path, astronaut) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "smile.jpg").write_bytes(encode(astronaut, "JPEG"))
    (images / "mirror.png").write_bytes(encode(astronaut[:, ::-1].copy(), "PNG"))
    (images / "broken.jpg").write_bytes(b"nope")
    (tmp_path / "labels.csv").write_text(
        "image,emotion,person\nsmile.jpg,happy,a\nmirror.png,sad,a\nbroken.jpg,happy,b\nskip.jpg,contempt,c\n"
    )
    figures = json.loads(_validate(tmp_path / "labels.csv", "--json").stdout)
    assert figures["photos"] == 3  # the contempt row is not one of our classes
    assert figures["images"] == 2 and figures["accuracy"] == pytest.approx(0.5)
    assert figures["detection"] == {"face": 2, "error: unsupported_image": 1}
    assert figures["per_class_recall"] == {"happy": 1.0, "sad": 0.0}


def test_held_out_people_only_and_the_figures_recorded_in_the_card(tmp_path, astronaut) -> None:
    """``--held-out`` measures the people photo_crops keeps out of training; ``--write`` puts the figures in the
    card of the model measured, and nowhere else."""
    images = tmp_path / "images"
    images.mkdir()
    people = [f"person{i}" for i in range(10)]
    held = split_people(people)
    assert 0 < len(held) < len(people)
    rows = []
    for i, person in enumerate(people):  # held-out people smile, the others are labelled sad
        (images / f"{i}.jpg").write_bytes(encode(astronaut, "JPEG"))
        rows.append(f"{i}.jpg,{'happy' if person in held else 'sad'},{person}")
    labels = tmp_path / "labels.csv"
    labels.write_text("image,emotion,person\n" + "\n".join(rows) + "\n")
    model = tmp_path / "model" / DEFAULT_MODEL.name
    model.parent.mkdir()
    shutil.copy(DEFAULT_MODEL, model)
    shutil.copy(DEFAULT_MODEL.with_name("model.json"), model.parent)

    figures = json.loads(_validate(labels, "--held-out", "--json", "--model", model, "--write").stdout)
    assert figures["photos"] == figures["images"] == len(held) and figures["accuracy"] == 1.0
    card = json.loads((model.parent / "model.json").read_text())
    recorded = card.pop("photo_validation")
    assert recorded["images"] == len(held) and recorded["accuracy"] == 1.0 and "holds out" in recorded["data"]
    committed = json.loads(DEFAULT_MODEL.with_name("model.json").read_text())
    committed.pop("photo_validation", None)
    assert card == committed, "--write changes nothing but photo_validation"

    everyone = json.loads(_validate(labels, "--json", "--model", model).stdout)
    assert everyone["images"] == len(people) and everyone["accuracy"] == pytest.approx(len(held) / len(people))

    (tmp_path / "nameless.csv").write_text("image,emotion\n0.jpg,happy\n")
    refused = _validate(tmp_path / "nameless.csv", "--images", images, "--held-out", check=False)
    assert refused.returncode == 2 and "person column" in refused.stderr


@pytest.mark.skipif(not PHOTOS.is_file(), reason="needs ../shared/data/facial_expressions (present in CI)")
def test_committed_model_meets_its_card_on_the_held_out_photos() -> None:
    """The whole pipeline on the people held out of fine-tuning scores what model.json says: a network that is
    worse on real photos than its FER2013 figures suggest cannot be swapped in with an unchanged card."""
    card = json.loads(DEFAULT_MODEL.with_name("model.json").read_text())["photo_validation"]
    figures = json.loads(_validate(PHOTOS, "--held-out", "--json").stdout)
    assert figures["images"] == card["images"] >= 700
    assert figures["accuracy"] == pytest.approx(card["accuracy"], abs=1e-6)
    assert figures["macro_recall"] == pytest.approx(card["macro_recall"], abs=1e-6)


@pytest.mark.skipif(not PHOTOS.is_file(), reason="needs ../shared/data/facial_expressions (present in CI)")
def test_real_photos_sample() -> None:
    """An evenly spread sample of the labelled photos: the pipeline must clearly beat the majority guess."""
    figures = json.loads(_validate(PHOTOS, "--limit", "300", "--json").stdout)
    assert figures["images"] >= 290
    majority = max(figures["support"].values()) / figures["images"]
    assert figures["accuracy"] > majority + 0.1, figures
    assert np.isfinite(figures["macro_recall"])
