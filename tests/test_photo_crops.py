"""``python -m emotion.training.photo_crops``: faces cut by the serving pipeline, split by person."""

from __future__ import annotations

import csv

import numpy as np

from emotion.training.photo_crops import main, split_people

from .conftest import encode


def test_people_never_land_in_both_parts() -> None:
    people = [f"p{i % 37}" for i in range(500)]
    held = split_people(people, 0.2, seed=1)
    assert len(held) == round(37 * 0.2)
    assert held == split_people(list(reversed(people)), 0.2, seed=1)  # order of rows does not matter


def test_crops_and_split_files(tmp_path, astronaut) -> None:
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for person in ("ann", "bob", "cy", "dee", "eve"):
        for i, emotion in enumerate(("happy", "sad")):
            name = f"{person}_{i}.png"
            (images / name).write_bytes(encode(np.roll(astronaut, 7 * i, axis=1), "PNG"))
            rows.append({"image": name, "emotion": emotion, "person": person})
    rows.append({"image": "broken.png", "emotion": "happy", "person": "ann"})
    (images / "broken.png").write_bytes(b"nope")
    with (tmp_path / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "emotion", "person"])
        writer.writeheader()
        writer.writerows(rows)

    assert main([str(tmp_path / "labels.csv"), "--out-dir", str(tmp_path / "out"), "--val-fraction", "0.4"]) == 0
    train, val = np.load(tmp_path / "out" / "train.npz"), np.load(tmp_path / "out" / "val.npz")
    assert train["x"].shape == (6, 48, 48) and val["x"].shape == (4, 48, 48)
    assert train["x"].dtype == np.uint8 and set(train["y"].tolist()) == {3, 5}
    people = {str(n).split("_")[0] for n in train["names"]}, {str(n).split("_")[0] for n in val["names"]}
    assert not people[0] & people[1]
    with (tmp_path / "out" / "val.csv").open() as handle:
        assert {row["person"] for row in csv.DictReader(handle)} == people[1]
    # the crop is the face, as the model sees it in serving: brighter skin in the middle, not the whole photo
    assert train["x"][:, 16:32, 16:32].mean() > 120
