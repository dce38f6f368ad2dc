"""The preview: the photo scaled to at most 640 px, each face boxed where it is and tagged with its label."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from emotion.geometry import Box
from emotion.preview import render_preview

GREY = 200  # the colour of "neutral": grey boxes on black survive JPEG's colour subsampling pixel-exact


def _render(rgb: np.ndarray, boxes: list[Box], labels: list[tuple[str, float]], **options) -> np.ndarray:
    jpeg = render_preview(rgb, boxes, labels, **options)
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    return np.asarray(image.convert("RGB")).astype(int)


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (1280, 2560, (320, 640)),
        (2560, 1280, (640, 320)),
        (200, 300, (200, 300)),
        (640, 640, (640, 640)),
        (1, 2000, (1, 640)),
        (2000, 1, (640, 1)),
    ],
)
def test_the_preview_is_at_most_640_px_long(height: int, width: int, expected: tuple[int, int]) -> None:
    rgb = np.zeros((height, width, 3), np.uint8)
    assert _render(rgb, [], []).shape[:2] == expected


def test_a_box_is_drawn_on_the_scaled_photo_at_its_scaled_place() -> None:
    """A 400-px box at (400, 400) of a 1280-px photo is a 200-px box at (200, 200) of the preview: its
    2-px outline covers pixels 199-201 and 398-400 (the last pixel of the box is 399)."""
    photo = np.zeros((1280, 1280, 3), np.uint8)
    preview = _render(photo, [Box(400, 400, 400, 400)], [("neutral", 0.5)], quality=100)[..., 0]
    row, column = preview[300], preview[:, 300]
    assert row[196:205].tolist() == [0, 0, 0, GREY, GREY, GREY, 0, 0, 0]  # left edge
    assert row[395:404].tolist() == [0, 0, 0, GREY, GREY, GREY, 0, 0, 0]  # right edge
    assert column[395:404].tolist() == [0, 0, 0, GREY, GREY, GREY, 0, 0, 0]  # bottom edge
    assert preview[250:350, 250:350].max() == 0  # inside
    # the tag "1. neutral 50%" sits on top of the box: rows 179-200 (text 12 + baseline 5 + 4 px), columns
    # 200-322 (text 118 + 4 px)
    assert (abs(preview[179:181, 200:323] - GREY) <= 3).all() and preview[178, 200:323].max() <= 3
    assert (abs(preview[179:199, 322] - GREY) <= 3).all() and preview[179:199, 323:340].max() <= 3
    # and holds the label in black, 2 px in from its corner, as OpenCV writes it
    expected = np.full((19, 123), GREY, np.uint8)
    cv2.putText(expected, "1. neutral 50%", (2, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1, cv2.LINE_AA)
    assert np.abs(preview[179:198, 200:323] - expected).max() <= 8


def test_the_tag_goes_inside_a_box_that_touches_the_top() -> None:
    photo = np.zeros((1280, 1280, 3), np.uint8)
    preview = _render(photo, [Box(400, 0, 400, 400)], [("neutral", 0.5)], quality=100)[..., 0]
    assert (abs(preview[19:22, 200:322] - GREY) <= 3).all()  # its bottom rows, below the text
    assert preview[22:40, 250:300].max() == 0


def test_the_tag_stays_inside_the_right_edge() -> None:
    photo = np.zeros((1280, 1280, 3), np.uint8)
    preview = _render(photo, [Box(1200, 400, 80, 80)], [("neutral", 0.5)], quality=100)[..., 0]
    assert (abs(preview[179:181, 518:640] - GREY) <= 3).all()  # 640 - 122 = 518
    assert preview[179:181, 490:518].max() <= 3


@pytest.mark.parametrize(
    ("emotion", "colour", "ink"),
    [("happy", (255, 200, 0), "dark"), ("angry", (220, 50, 47), "light"), ("sad", (38, 139, 210), "dark")],
)
def test_each_emotion_has_its_colour_and_a_readable_ink(emotion: str, colour: tuple, ink: str) -> None:
    photo = np.full((640, 640, 3), 128, np.uint8)
    preview = _render(photo, [Box(200, 200, 200, 200)], [(emotion, 0.9)], quality=100)
    tag = preview[180:182, 204:300]  # two rows above the text: one block of JPEG's colour subsampling
    assert np.abs(tag.mean(axis=(0, 1)) - colour).max() <= 16, tag.mean(axis=(0, 1))
    text = preview[181:195, 202:300]
    dark, light = (text.max(axis=2) < 60).sum(), (text.min(axis=2) > 200).sum()
    assert (dark > 15, light > 15) == ((True, False) if ink == "dark" else (False, True)), (dark, light)


def test_an_unknown_label_is_drawn_in_white() -> None:
    photo = np.zeros((640, 640, 3), np.uint8)
    preview = _render(photo, [Box(200, 200, 200, 200)], [("contempt", 0.9)], quality=100)
    assert (preview[180:182, 204:300] >= 250).all() and (preview[300, 200] >= 250).all()


def test_every_face_is_boxed() -> None:
    photo = np.zeros((640, 640, 3), np.uint8)
    boxes = [Box(100, 100, 100, 100), Box(400, 400, 100, 100)]
    preview = _render(photo, boxes, [("neutral", 0.5), ("neutral", 0.4)], quality=100)[..., 0]
    assert preview[150, 99] == GREY and preview[450, 399] == GREY


def test_the_photo_itself_is_left_untouched() -> None:
    photo = np.zeros((300, 300, 3), np.uint8)
    render_preview(photo, [Box(10, 10, 100, 100)], [("happy", 0.9)])
    assert photo.max() == 0


def test_the_default_quality_is_85() -> None:
    photo = np.random.default_rng(2).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    default = render_preview(photo, [], [])
    assert default == render_preview(photo, [], [], quality=85)
    assert default not in (render_preview(photo, [], [], quality=84), render_preview(photo, [], [], quality=86))


def test_boxes_and_labels_must_pair_up() -> None:
    with pytest.raises(ValueError):
        render_preview(np.zeros((10, 10, 3), np.uint8), [Box(0, 0, 5, 5)], [])


def test_the_tag_goes_above_a_box_with_just_enough_room() -> None:
    """A box at y = 21 on the preview has exactly the 21 rows the tag needs above it."""
    photo = np.zeros((1280, 1280, 3), np.uint8)
    preview = _render(photo, [Box(400, 42, 400, 400)], [("neutral", 0.5)], quality=100)[..., 0]
    assert (abs(preview[0:2, 200:322] - GREY) <= 3).all()
    assert preview[23:40, 250:300].max() <= 3


def test_outlines_are_three_pixels_wide_on_a_small_photo_too() -> None:
    photo = np.zeros((200, 300, 3), np.uint8)
    preview = _render(photo, [Box(50, 60, 100, 100)], [("neutral", 0.5)], quality=100)[..., 0]
    assert preview[110, 46:55].tolist() == [0, 0, 0, GREY, GREY, GREY, 0, 0, 0]


def test_the_tag_goes_inside_a_box_one_row_short_of_room() -> None:
    photo = np.zeros((1280, 1280, 3), np.uint8)
    preview = _render(photo, [Box(400, 40, 400, 400)], [("neutral", 0.5)], quality=100)[..., 0]  # y = 20
    assert (abs(preview[38:41, 200:322] - GREY) <= 3).all()  # the tag's bottom rows, inside the box
    assert preview[0:17, 200:322].max() <= 3


def test_the_tag_starts_at_the_left_edge_of_a_box_there() -> None:
    photo = np.zeros((640, 640, 3), np.uint8)
    preview = _render(photo, [Box(0, 100, 200, 200)], [("neutral", 0.5)], quality=100)[..., 0]
    assert (abs(preview[79:81, 0:123] - GREY) <= 3).all() and preview[79:81, 123:140].max() <= 3


def test_a_tag_wider_than_the_preview_starts_at_its_left_edge() -> None:
    photo = np.zeros((300, 100, 3), np.uint8)  # taller than wide, narrower than the 122-px tag
    preview = _render(photo, [Box(10, 100, 50, 50)], [("neutral", 0.5)], quality=100)[..., 0]
    assert (abs(preview[79:81, 0:100] - GREY) <= 3).all()
    assert preview[60:78, 0:100].max() <= 3
