"""Result → preview: the photo scaled down, each face boxed and labelled, as JPEG."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from emotion.geometry import Box

MAX_SIDE = 640
_COLOURS = {  # RGB, like the image the preview is drawn on
    "angry": (220, 50, 47),
    "disgust": (133, 153, 0),
    "fear": (108, 113, 196),
    "happy": (255, 200, 0),
    "neutral": (200, 200, 200),
    "sad": (38, 139, 210),
    "surprise": (211, 54, 130),
}


def render_preview(
    rgb: np.ndarray, boxes: Sequence[Box], labels: Sequence[tuple[str, float]], quality: int = 85
) -> bytes:
    """JPEG of ``rgb`` (long side ≤ 640 px) with each box labelled "emotion NN%"."""
    height, width = rgb.shape[:2]
    scale = min(1.0, MAX_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas = rgb.copy() if scale == 1.0 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    thickness = max(2, round(max(size) / 320))
    for number, (box, (emotion, probability)) in enumerate(zip(boxes, labels, strict=True), start=1):
        colour = _COLOURS.get(emotion, (255, 255, 255))
        x0, y0 = round(box.x * scale), round(box.y * scale)
        x1, y1 = round((box.x + box.width) * scale) - 1, round((box.y + box.height) * scale) - 1
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thickness)
        _label(canvas, f"{number}. {emotion} {probability:.0%}", (x0, y0), colour)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode the preview")
    return jpeg.tobytes()


def _label(canvas: np.ndarray, text: str, corner: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """Text on a filled tag above the box (inside it when the box touches the top edge)."""
    font, scale, weight = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    (w, h), base = cv2.getTextSize(text, font, scale, weight)
    x = min(max(corner[0], 0), max(canvas.shape[1] - w - 4, 0))
    y = corner[1] - h - base - 4 if corner[1] - h - base - 4 >= 0 else corner[1]
    cv2.rectangle(canvas, (x, y), (x + w + 4, y + h + base + 4), colour, cv2.FILLED)
    ink = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
    cv2.putText(canvas, text, (x + 2, y + h + 2), font, scale, ink, weight, cv2.LINE_AA)
