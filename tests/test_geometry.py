"""The detector's pure parts, each against values worked out by hand: tiles, anchors, suppression, boxes."""

from __future__ import annotations

import dataclasses
import itertools

import cv2
import numpy as np
import pytest

from emotion.detect import (
    FULL_RANGE,
    SHORT_RANGE,
    Detection,
    _drop_enclosing,
    _iou,
    _merge,
    _resize,
    _starts,
    _weighted_nms,
)
from emotion.geometry import Box, clip, crop_region, to_full_size, whole_image


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (1, [0]),
        (192, [0]),  # one tile holds the whole axis
        (193, [0, 1]),
        (320, [0, 128]),  # two tiles overlapping by exactly 64
        (321, [0, 64, 129]),  # one pixel more needs a third tile
        (480, [0, 96, 192, 288]),  # ceil((480 - 64) / 128) = 4 tiles, 288 / 3 apart
        (777, [0, 117, 234, 351, 468, 585]),
    ],
)
def test_tile_origins(length: int, expected: list[int]) -> None:
    """The fewest 192-px tiles that overlap by at least 64 px, spread evenly from edge to edge."""
    assert _starts(length, 192) == expected


@pytest.mark.parametrize("length", [193, 250, 320, 321, 480, 777, 1920])
def test_tiles_overlap_by_64_and_no_fewer_would_do(length: int) -> None:
    starts = _starts(length, 192)
    assert starts[-1] + 192 == length
    assert min(before + 192 - after for before, after in itertools.pairwise(starts)) >= 64
    fewer = len(starts) - 1  # one tile fewer, spread the same way, would overlap by less than 64
    if fewer > 1:
        assert 192 - (length - 192) / (fewer - 1) < 64


def test_anchor_centres_run_along_rows_with_each_anchor_repeated() -> None:
    short = SHORT_RANGE.anchors()
    assert short.shape == (16 * 16 * 2 + 8 * 8 * 6, 2)
    assert short.dtype == np.float32
    np.testing.assert_array_equal(short[:3], [[1 / 32, 1 / 32], [1 / 32, 1 / 32], [3 / 32, 1 / 32]])
    np.testing.assert_array_equal(short[32], [1 / 32, 3 / 32])  # second row of the 16x16 grid
    np.testing.assert_array_equal(short[511], [31 / 32, 31 / 32])
    np.testing.assert_array_equal(short[512:519], [[1 / 16, 1 / 16]] * 6 + [[3 / 16, 1 / 16]])
    np.testing.assert_array_equal(short[-1], [15 / 16, 15 / 16])
    full = FULL_RANGE.anchors()
    assert full.shape == (48 * 48, 2)
    np.testing.assert_allclose(
        full[[0, 1, 48, -1]], [[1 / 96, 1 / 96], [3 / 96, 1 / 96], [1 / 96, 3 / 96], [95 / 96] * 2]
    )


def test_intersection_over_union() -> None:
    box = np.array([0.0, 0.0, 10.0, 10.0])
    others = np.array(
        [
            [0, 0, 10, 10],  # the same box
            [5, 0, 10, 10],  # half of it: 50 / 150
            [0, 5, 10, 10],  # half of it, vertically
            [10, 0, 10, 10],  # touching on the right
            [0, 10, 10, 10],  # touching below
            [2, 2, 4, 4],  # inside it: 16 / 100
            [-4, -4, 8, 8],  # over its top-left corner: 16 / 148
            [30, 30, 5, 5],  # far away
            [20, 0, 10, 10],  # beside it, level with it
            [0, 20, 10, 10],  # below it, in line with it
            [0, 0, 10, 4],  # its top strip: 40 / 100
            [0, 0, 4, 10],  # its left strip
        ],
        dtype=float,
    )
    np.testing.assert_allclose(_iou(box, others), [1, 1 / 3, 1 / 3, 0, 0, 0.16, 16 / 148, 0, 0, 0, 0.4, 0.4])
    assert _iou(np.zeros(4), np.zeros((1, 4)))[0] == 0  # two empty boxes: no overlap, no division by zero
    wide = np.array([0.0, 0.0, 20.0, 10.0])  # width and height differ, so neither can stand in for the other
    np.testing.assert_allclose(_iou(wide, np.array([[10.0, 0, 20, 10], [0, 5, 20, 10], [0, 0, 10, 20]])), [1 / 3] * 3)
    tiny = np.array([3.0, 3.0, 0.5, 0.5])  # boxes under a pixel still compare by their own areas
    np.testing.assert_allclose(_iou(tiny, np.array([tiny, [3.25, 3.0, 0.5, 0.5]])), [1, 1 / 3])


def test_weighted_nms_merges_a_cluster_into_its_score_weighted_mean() -> None:
    boxes = np.array([[2.0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 8, 8], [0, 1, 10, 12]])
    scores = np.array([0.6, 0.9, 0.7, 0.5])
    merged = _weighted_nms(boxes, scores)
    assert [score for _, score in merged] == [0.9, 0.7]  # best first, each cluster keeps its best score
    cluster, alone = (box for box, _ in merged)
    np.testing.assert_allclose(cluster, [0.6, 0.25, 10, 10.5])  # weights 0.9, 0.6, 0.5
    np.testing.assert_array_equal(alone, [50, 50, 8, 8])


@pytest.mark.parametrize(("shift", "clusters"), [(4, 1), (5, 1), (6, 2)])
def test_weighted_nms_threshold_is_an_iou_of_0_3(shift: int, clusters: int) -> None:
    """Boxes 10 wide shifted by 4 overlap with IoU 6/14 = 0.43 (merged), by 5 IoU 1/3 = 0.333 (merged), by
    6 IoU 4/16 = 0.25 (kept apart)."""
    boxes = np.array([[0.0, 0, 10, 10], [shift, 0, 10, 10]])
    merged = _weighted_nms(boxes, np.array([0.8, 0.8]))
    assert len(merged) == clusters


def test_weighted_nms_merges_only_above_0_3() -> None:
    """An IoU of exactly 0.3 (3 px shared of 10: boxes 8 and 5 px wide) keeps the two apart."""
    boxes = np.array([[0.0, 0, 8, 1], [5, 0, 5, 1]])
    assert _iou(boxes[0], boxes[1:])[0] == 0.3
    assert len(_weighted_nms(boxes, np.array([0.9, 0.8]))) == 2


def test_weighted_nms_keeps_an_empty_box_as_its_own_cluster() -> None:
    merged = _weighted_nms(np.array([[5.0, 5, 0, 0], [0, 0, 10, 10]]), np.array([0.9, 0.8]))
    assert [(box.tolist(), score) for box, score in merged] == [([5, 5, 0, 0], 0.9), ([0, 0, 10, 10], 0.8)]


def test_weighted_nms_of_nothing_is_nothing() -> None:
    assert _weighted_nms(np.zeros((0, 4)), np.zeros(0)) == []


def _found(x: int, y: int, side: int, score: float) -> Detection:
    return Detection(Box(x, y, side, side), score)


def test_a_large_unsure_box_around_a_surer_face_is_dropped() -> None:
    face, around = _found(40, 40, 20, 0.9), _found(0, 0, 100, 0.7)
    assert _drop_enclosing([around, face]) == [face]


def test_a_large_box_around_a_less_sure_face_is_kept() -> None:
    face, around = _found(40, 40, 20, 0.6), _found(0, 0, 100, 0.7)
    assert _drop_enclosing([around, face]) == [around, face]


def test_a_large_box_around_two_faces_is_dropped_however_sure() -> None:
    faces = [_found(10, 10, 20, 0.6), _found(60, 60, 20, 0.55)]
    around = _found(0, 0, 100, 0.99)
    assert _drop_enclosing([around, *faces]) == faces


def test_a_box_only_touching_a_surer_face_is_kept() -> None:
    """The smaller face's centre must lie inside the larger box: on its left or top edge counts, on its right
    or bottom edge (one past the last pixel) does not."""
    big = _found(10, 10, 40, 0.5)  # covers x and y from 10 to 49
    for small, inside in [
        (_found(0, 20, 20, 0.9), True),  # centre at x = 10
        (_found(40, 20, 20, 0.9), False),  # x = 50
        (_found(20, 0, 20, 0.9), True),  # y = 10
        (_found(20, 40, 20, 0.9), False),  # y = 50
        (_found(30, 20, 20, 0.9), True),  # centre at x = 40 inside, right edge (50) outside
        (_found(20, 30, 20, 0.9), True),  # centre at y = 40 inside, bottom edge (50) outside
    ]:
        assert _drop_enclosing([big, small]) == ([small] if inside else [big, small]), small


def test_equal_boxes_do_not_enclose_each_other() -> None:
    one, two = _found(0, 0, 20, 0.9), _found(0, 0, 20, 0.8)
    assert _drop_enclosing([one, two]) == [one, two]


def test_drop_enclosing_at_equal_scores_drops_the_large_box() -> None:
    face, around = _found(40, 40, 20, 0.7), _found(0, 0, 100, 0.7)
    assert _drop_enclosing([around, face]) == [face]


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (Box(10, 20, 30, 40), Box(10, 20, 30, 40)),  # inside: unchanged
        (Box(90, 80, 20, 30), Box(90, 80, 10, 20)),  # past the right and bottom edges
        (Box(-5, -10, 20, 30), Box(0, 0, 15, 20)),  # past the left and top edges
        (Box(-5, 95, 110, 10), Box(0, 95, 100, 5)),  # past three edges
    ],
)
def test_clip_keeps_boxes_inside_the_image(box: Box, expected: Box) -> None:
    assert clip(box, 100, 100) == expected


def test_boxes_found_at_a_reduced_scale_map_back_to_full_size() -> None:
    assert to_full_size(Box(10, 20, 30, 40), 0.5, 200, 200) == Box(20, 40, 60, 80)
    assert to_full_size(Box(10, 20, 30, 41), 0.25, 400, 400) == Box(40, 80, 120, 164)
    assert to_full_size(Box(3, 3, 5, 5), 0.4, 100, 100) == Box(8, 8, 12, 12)  # 7.5 and 12.5 round to even
    assert to_full_size(Box(90, 90, 20, 20), 0.5, 190, 200) == Box(180, 180, 10, 20)  # clipped at full size
    assert to_full_size(Box(-1, 0, 10, 10), 1.0, 5, 5) == Box(-1, 0, 10, 10)  # full size already: as found


def test_whole_image_box() -> None:
    assert whole_image(640, 480) == Box(0, 0, 640, 480)
    assert Box(1, 2, 30, 40).area == 1200
    assert Box(1, 2, 30, 40).to_json() == {"x": 1, "y": 2, "width": 30, "height": 40}


@pytest.mark.parametrize(
    ("box", "margin", "size", "expected"),
    [
        (Box(40, 40, 20, 10), 0.1, (100, 100), Box(38, 33, 24, 24)),  # 20 * 1.2 = 24, squared on the centre
        (Box(40, 40, 20, 10), 0.0, (100, 100), Box(40, 35, 20, 20)),
        (Box(40, 40, 10, 20), 0.25, (100, 100), Box(30, 35, 30, 30)),
        (Box(90, 0, 10, 10), 0.5, (100, 100), Box(80, 0, 20, 20)),  # pushed back inside from the top-right
        (Box(0, 90, 10, 10), 0.5, (100, 100), Box(0, 80, 20, 20)),  # and from the bottom-left
        (Box(0, 0, 50, 50), 0.5, (60, 40), Box(5, 0, 40, 40)),  # no larger than the image's short side
        (Box(10, 0, 50, 50), 0.5, (40, 60), Box(0, 5, 40, 40)),
    ],
)
def test_crop_region_grows_squares_and_stays_inside(box: Box, margin: float, size: tuple, expected: Box) -> None:
    assert crop_region(box, margin, *size) == expected


def test_resize_keeps_the_original_at_scale_one_and_never_goes_below_one_pixel() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert _resize(rgb, 1.0) is rgb
    assert _resize(rgb, 0.01).shape == (1, 1, 3)
    assert _resize(rgb, 0.5).shape == (15, 20, 3)
    assert _resize(rgb, 0.26).shape == (8, 10, 3)  # rounded, not truncated: 7.8 x 10.4
    np.testing.assert_array_equal(_resize(rgb, 0.5), cv2.resize(rgb, (20, 15), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(_resize(rgb, 1.5), cv2.resize(rgb, (60, 45), interpolation=cv2.INTER_LINEAR))


def test_boxes_and_detections_are_values() -> None:
    """Frozen, so threads can share them and they can be set members or dict keys."""
    box = Box(1, 2, 3, 4)
    found = Detection(box, 0.5)
    assert {box, Box(1, 2, 3, 4)} == {box} and {found: 1}[Detection(Box(1, 2, 3, 4), 0.5)] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        box.x = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.score = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        FULL_RANGE.size = 128  # type: ignore[misc]


def test_merging_rounds_clips_drops_what_lies_outside_and_sorts_largest_first() -> None:
    boxes = np.array(
        [
            [10.0, 10.0, 20.0, 20.0],  # a small face
            [50.4, 40.5, 30.5, 31.5],  # a larger one, rounded half to even: 50, 40, 30, 32
            [90.0, 80.0, 30.0, 30.0],  # past the right and bottom edges: clipped to 10 x 20
            [100.0, 10.0, 20.0, 20.0],  # starting at the right edge: nothing left inside
            [10.0, 100.0, 20.0, 20.0],  # starting at the bottom edge
            [130.0, 10.0, 20.0, 20.0],  # wholly outside
            [99.0, 40.0, 20.0, 30.0],  # one column left inside
            [40.0, 99.0, 20.0, 20.0],  # one row left inside
        ]
    )
    scores = np.array([0.9, 0.8, 0.7, 0.95, 0.95, 0.95, 0.6, 0.5])
    assert _merge(boxes, scores, 100, 100) == [
        Detection(Box(50, 40, 30, 32), 0.8),
        Detection(Box(10, 10, 20, 20), 0.9),
        Detection(Box(90, 80, 10, 20), 0.7),
        Detection(Box(99, 40, 1, 30), 0.6),
        Detection(Box(40, 99, 20, 1), 0.5),
    ]
