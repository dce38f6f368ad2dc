"""The face detector: BlazeFace networks over the whole image and over tiles, merged into one box a face."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from emotion.detect import (
    FULL_RANGE,
    SHORT_RANGE,
    TILE_OVERLAP,
    FaceDetector,
    Network,
    _starts,
    _weighted_nms,
)
from emotion.geometry import Box
from emotion.litert import load_interpreter

HEAD = (slice(10, 230), slice(115, 335))  # the astronaut's head; her face is about half of it


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def paste_heads(canvas: np.ndarray, astronaut: np.ndarray, spots: list[tuple[int, int, int]]) -> np.ndarray:
    """``canvas`` with the astronaut's head pasted at each (x, y, side), every other one mirrored."""
    canvas = canvas.copy()
    head = Image.fromarray(astronaut[HEAD])
    for i, (x, y, side) in enumerate(spots):
        tile = head.resize((side, side), Image.Resampling.LANCZOS)
        if i % 2:
            tile = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        canvas[y : y + side, x : x + side] = np.asarray(tile)
    return canvas


def holds(box: Box, spot: tuple[int, int, int]) -> bool:
    """Whether the centre of ``box`` lies in the middle of the pasted head at ``spot``."""
    x, y, side = spot
    return (
        abs(box.x + box.width / 2 - (x + side / 2)) < side / 4
        and abs(box.y + box.height / 2 - (y + side / 2)) < side / 3
    )


@pytest.mark.parametrize("network", [SHORT_RANGE, FULL_RANGE], ids=["short_range", "full_range"])
def test_anchor_layout_matches_the_network_outputs(network: Network) -> None:
    interpreter = load_interpreter(network.path)
    rows = {tuple(o["shape"]) for o in interpreter.get_output_details()}
    anchors = len(network.anchors())
    assert rows == {(1, anchors, 16), (1, anchors, 1)}
    assert tuple(interpreter.get_input_details()[0]["shape"]) == (1, network.size, network.size, 3)


@pytest.mark.parametrize("length", [1, 100, 192, 193, 250, 480, 777, 1920])
def test_tiles_cover_the_axis_and_overlap_enough(length: int) -> None:
    size = FULL_RANGE.size
    starts = _starts(length, size)
    assert starts[0] == 0
    assert starts[-1] + size >= length
    for before, after in itertools.pairwise(starts):
        assert before + size - after >= TILE_OVERLAP, (before, after)


def test_small_faces_across_a_large_photo_are_each_found_once(
    detector: FaceDetector, astronaut: np.ndarray, coffee: np.ndarray
) -> None:
    """Faces far too small for the whole-image passes are found on tiles, including those cut by a tile edge;
    the large box the short-range network draws around this group is dropped."""
    canvas = np.asarray(Image.fromarray(coffee).resize((1920, 1080)))
    # At 1920 wide the working image is 480x270, in tiles at x = 0, 96, 192, 288 and y = 0, 78 working px
    # (x = 0, 384, 768, 1152 and y = 0, 312 here). The second and fifth heads sit across tile edges. The third
    # is centred at x = 610 (152.5 working px), where only the cores of the first two tiles (a tile less half
    # the overlap on inner sides: x < 160 and x >= 128) hold it. The first and last sit in the outer margins
    # that only one tile covers: x and y under 32 working px, and x over 448 with y over 238.
    spots = [
        (0, 0, 200),
        (300, 600, 210),
        (520, 830, 180),
        (700, 150, 190),
        (1100, 560, 220),
        (1500, 200, 200),
        (1740, 895, 180),
    ]
    found = detector.detect(paste_heads(canvas, astronaut, spots))
    assert all(0.5 <= face.score <= 1 for face in found)
    boxes = [face.box for face in found]
    assert len(boxes) == len(spots), boxes
    for spot in spots:
        assert sum(holds(box, spot) for box in boxes) == 1, (spot, boxes)


def test_a_face_filling_the_frame_is_one_box(detector: FaceDetector, astronaut: np.ndarray) -> None:
    face = astronaut[40:200, 150:310]
    found = detector.detect(face)
    assert len(found) == 1
    assert found[0].box.width > 0.6 * face.shape[1]


def test_a_photo_without_people_has_no_faces(detector: FaceDetector, coffee: np.ndarray) -> None:
    big = np.asarray(Image.fromarray(coffee).resize((1280, 960)))
    assert detector.detect(coffee) == []
    assert detector.detect(big) == []


def test_min_face_decides_whether_small_faces_are_searched(
    detector: FaceDetector, astronaut: np.ndarray, coffee: np.ndarray
) -> None:
    """A 1920x1080 photo with one face of about 100 px, far too small for the whole-image passes: the tiles
    find it when faces of 48 px are wanted, and are not run when only faces of 400 px are."""
    canvas = np.asarray(Image.fromarray(coffee).resize((1920, 1080)))
    spot = (900, 500, 200)
    photo = paste_heads(canvas, astronaut, [spot])
    found = detector.detect(photo, min_face=48)
    assert len(found) == 1 and holds(found[0].box, spot)
    assert detector.detect(photo, min_face=400) == []


# Boxes the networks give on fixed images, measured once with this code. They pin how raw outputs become
# boxes (anchors, the grow and lift framing, scaling back from each pass's input, the tiles' offsets) to
# about a pixel: LiteRT's kernels may round a little differently on another CPU.
def _cluster(found: tuple[np.ndarray, np.ndarray]) -> list[tuple[list[float], float]]:
    return [(box.round(1).tolist(), round(score, 3)) for box, score in _weighted_nms(*found)]


def _close(got: list[tuple[list[float], float]], expected: list[tuple[list[float], float]]) -> bool:
    return len(got) == len(expected) and all(
        np.allclose(box, want_box, atol=1.5) and abs(score - want_score) < 0.01
        for (box, score), (want_box, want_score) in zip(got, expected, strict=True)
    )


def test_each_network_boxes_the_face_where_measured(detector: FaceDetector, astronaut: np.ndarray) -> None:
    """A 462x300 crop (not square, so x and y scale differently) with the face at about (127, 66)."""
    crop = astronaut[0:300, 50:512]
    short = _cluster(detector._whole(detector._short, crop))
    full = _cluster(detector._whole(detector._full, crop))
    assert _close(short, [([126.8, 67.5, 94.1, 94.2], 0.949)]), short
    assert _close(full, [([126.6, 65.3, 99.4, 99.2], 0.939)]), full
    (face,) = detector.detect(crop)
    assert np.allclose(list(face.box.to_json().values()), [127, 67, 95, 95], atol=1.5), face
    assert face.score == pytest.approx(0.949, abs=0.01)


def test_tiles_box_a_small_face_where_measured(
    detector: FaceDetector, astronaut: np.ndarray, coffee: np.ndarray
) -> None:
    """The face pasted at (900, 500) in a 1920x1080 photo: tiles of the image at a quarter of its size."""
    canvas = np.asarray(Image.fromarray(coffee).resize((1920, 1080)))
    photo = paste_heads(canvas, astronaut, [(900, 500, 200)])
    tiled = _cluster(detector._tiled(photo, 0.25))
    assert _close(tiled, [([956.2, 554.0, 84.3, 84.3], 0.880)]), tiled
    (face,) = detector.detect(photo)
    assert np.allclose(list(face.box.to_json().values()), [956, 554, 84, 84], atol=1.5), face


def test_faces_come_largest_first(detector: FaceDetector, astronaut: np.ndarray, coffee: np.ndarray) -> None:
    canvas = np.asarray(Image.fromarray(coffee).resize((1280, 720)))
    spots = [(100, 100, 140), (500, 200, 320), (950, 150, 220)]
    found = detector.detect(paste_heads(canvas, astronaut, spots))
    assert [next(i for i, spot in enumerate(spots) if holds(face.box, spot)) for face in found] == [1, 2, 0]
    assert [face.box.area for face in found] == sorted((face.box.area for face in found), reverse=True)


def _passes(detector: FaceDetector, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[tuple[int, ...]]]:
    """Records the shape of every input each network is given (the real networks still run)."""
    seen: dict[str, list[tuple[int, ...]]] = {"short": [], "full": []}
    for name in seen:
        runner = getattr(detector, f"_{name}")
        original = runner.run

        def run(tile: np.ndarray, _original=original, _name=name) -> tuple[np.ndarray, np.ndarray]:
            seen[_name].append(tile.shape)
            return _original(tile)

        monkeypatch.setattr(runner, "run", run)
    return seen


@pytest.mark.parametrize(
    ("shape", "min_face", "short", "full"),
    [
        # 1920 px long, faces from 48 px: a working image of 480x270 (18/48 would allow 720, DETECT_MAX_SIDE
        # caps it), tiles at x = 0, 96, 192, 288 and y = 0, 78; 64 / 0.25 = 256 px of overlap is less than
        # the short-range reach of 0.2 x 1920 = 384, so the full-range network also sees the whole image.
        ((1080, 1920), 48, [(72, 128, 3)], [(192, 192, 3)] * 8 + [(108, 192, 3)]),
        # 512 px, faces from 48: the working image would be 512 x 18/48 = 192, one tile: no tiling.
        ((512, 512), 48, [(128, 128, 3)], [(192, 192, 3)]),
        # faces from 400 px: 1920 x 18/400 = 86 px, no tiling.
        ((1080, 1920), 400, [(72, 128, 3)], [(108, 192, 3)]),
        # 1000 px, faces from 80: a 225x135 working image in two tiles (x = 0, 33) whose 64 / 0.225 = 284 px
        # of overlap reach the short range's 0.2 x 1000 = 200: no whole-image full-range pass.
        ((600, 1000), 80, [(77, 128, 3)], [(135, 192, 3)] * 2),
        # 1280 px, faces from 72: a 320x180 working image in two tiles (x = 0, 128) whose 64 / 0.25 = 256 px of
        # overlap just reach the short range's 0.2 x 1280 = 256: no whole-image full-range pass.
        ((720, 1280), 72, [(72, 128, 3)], [(180, 192, 3)] * 2),
        # a small image is never enlarged for the tiles, whatever the smallest face asked for
        ((100, 150), 10, [(85, 128, 3)], [(128, 192, 3)]),
        ((100, 150), 0, [(85, 128, 3)], [(128, 192, 3)]),
        # by default faces from 48 px are sought: 512 px is not tiled (as above), 520 is (520 x 18/48 = 195 px,
        # two tiles a side whose 171 px of overlap reach past the short range's 104)
        ((512, 512), None, [(128, 128, 3)], [(192, 192, 3)]),
        ((520, 520), None, [(128, 128, 3)], [(192, 192, 3)] * 4),
    ],
)
def test_which_passes_run_on_which_inputs(
    detector: FaceDetector, monkeypatch: pytest.MonkeyPatch, shape, min_face: int | None, short: list, full: list
) -> None:
    seen = _passes(detector, monkeypatch)
    image = np.zeros((*shape, 3), np.uint8)
    detector.detect(image) if min_face is None else detector.detect(image, min_face=min_face)
    assert seen == {"short": short, "full": full}


def test_the_working_image_is_at_most_480_px_long_by_default(detector: FaceDetector) -> None:
    """As DETECT_MAX_SIDE's default: the tiles of a 1920-px photo cover a 480-px working image."""
    assert detector.max_side == 480


def test_the_astronaut_is_one_face_where_measured(detector: FaceDetector, astronaut: np.ndarray) -> None:
    (face,) = detector.detect(astronaut)
    assert np.allclose(list(face.box.to_json().values()), [180, 72, 90, 90], atol=1.5), face
    assert face.score == pytest.approx(0.940, abs=0.01)


def test_each_tile_keeps_the_faces_whose_centre_lies_in_its_core(
    detector: FaceDetector, monkeypatch: pytest.MonkeyPatch, astronaut: np.ndarray, coffee: np.ndarray
) -> None:
    """The tiles' answers, worked out here from what the network said on each tile: a detection is kept by
    its tile when its centre lies in the tile less 32 px (half the overlap) on each side that has a neighbour,
    then moved by the tile's origin and scaled back to the photo."""
    canvas = np.asarray(Image.fromarray(coffee).resize((1920, 1080)))
    # besides faces in the outer margins and across edges, two centred a few px inside a core's edge (x = 520 and
    # 1440, 130 and 360 working px: 34 px into the second tile, 168 px into the third) and one a few px below
    # the top edge of the lower row's core (y = 452, 113 working px: 35 px into the lower tiles)
    spots = [
        (0, 0, 200),
        (300, 600, 210),
        (430, 250, 180),
        (520, 830, 180),
        (870, 362, 180),
        (1100, 560, 220),
        (1350, 250, 180),
        (1740, 0, 180),
        (1740, 895, 180),
    ]
    photo = paste_heads(canvas, astronaut, spots)
    said = []
    original = detector._full.run

    def run(tile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        said.append(original(tile))
        return said[-1]

    monkeypatch.setattr(detector._full, "run", run)
    boxes, scores = detector._tiled(photo, 0.25)  # a 480x270 working image
    origins = [(top, left) for top in (0, 78) for left in (0, 96, 192, 288)]
    assert len(said) == len(origins)
    expected_boxes, expected_scores = [], []
    for (top, left), (found, score) in zip(origins, said, strict=True):
        for (x, y, w, h), s in zip(found.tolist(), score.tolist(), strict=True):
            cx, cy = x + w / 2, y + h / 2
            if (
                (left == 0 or cx >= 32)
                and (left == 288 or cx < 160)
                and (top == 0 or cy >= 32)
                and (top == 78 or cy < 160)
            ):
                expected_boxes.append([(x + left) * 4, (y + top) * 4, w * 4, h * 4])
                expected_scores.append(s)
    assert len(expected_boxes) > len(spots)  # every face, some in two tiles
    np.testing.assert_allclose(boxes, np.array(expected_boxes).reshape(-1, 4), rtol=1e-12)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-12)
    assert sum(len(score) for _, score in said) > len(expected_scores)  # and drops some: faces cut by an edge
