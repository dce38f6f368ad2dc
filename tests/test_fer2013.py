"""``python -m emotion.training.fer2013``: the public FER2013 download (CSV or image folders) → training npz files."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from emotion import EMOTIONS
from emotion.training.fer2013 import main


def _face(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 48), dtype=np.uint8)


def test_the_challenge_csv_becomes_one_npz_per_usage_in_our_class_order(tmp_path) -> None:
    # The CSV numbers classes 0 Angry .. 4 Sad, 5 Surprise, 6 Neutral; ours are alphabetical.
    rows = [(0, "Training"), (4, "Training"), (6, "Training"), (5, "PublicTest"), (3, "PrivateTest")]
    with (tmp_path / "fer2013.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for seed, (label, usage) in enumerate(rows):
            writer.writerow([label, " ".join(map(str, _face(seed).ravel())), usage])
    assert main([str(tmp_path / "fer2013.csv"), "--out-dir", str(tmp_path / "out")]) == 0
    with np.load(tmp_path / "out" / "train.npz") as train:
        assert [EMOTIONS[i] for i in train["y"]] == ["angry", "sad", "neutral"]
        assert train["x"].shape == (3, 48, 48) and train["x"].dtype == np.uint8
        np.testing.assert_array_equal(train["x"][1], _face(1))
    with np.load(tmp_path / "out" / "val.npz") as val:
        assert [EMOTIONS[i] for i in val["y"]] == ["surprise"]
    with np.load(tmp_path / "out" / "test.npz") as test:
        assert [EMOTIONS[i] for i in test["y"]] == ["happy"]


def test_a_row_without_48x48_pixels_is_refused_with_its_line(tmp_path) -> None:
    (tmp_path / "bad.csv").write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2"):
        main([str(tmp_path / "bad.csv"), "--out-dir", str(tmp_path / "out")])


def test_the_image_folder_layout_becomes_train_and_val(tmp_path) -> None:
    for split, emotion, seed in [("train", "fear", 1), ("train", "happy", 2), ("test", "disgust", 3)]:
        (tmp_path / "src" / split / emotion).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "src" / split / emotion / f"{seed}.png"), _face(seed))
    cv2.imwrite(str(tmp_path / "src" / "train" / "happy" / "big.png"), np.full((96, 96), 200, np.uint8))
    main([str(tmp_path / "src"), "--out-dir", str(tmp_path / "out")])
    with np.load(tmp_path / "out" / "train.npz") as train:
        assert [EMOTIONS[i] for i in train["y"]] == ["fear", "happy", "happy"]
        np.testing.assert_array_equal(train["x"][0], _face(1))
        assert np.all(train["x"][2] == 200)  # big.png, resized to 48x48
    with np.load(tmp_path / "out" / "val.npz") as val:
        assert val["names"].tolist() == ["disgust/3.png"]


def test_a_folder_without_the_layout_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="train/<class>/"):
        main([str(tmp_path), "--out-dir", str(tmp_path / "out")])
