"""Emotion Detector: find the faces in a photo and say how likely each shows each of seven emotions.

Importing the package loads nothing heavy: the pipeline (OpenCV, LiteRT, NumPy) loads on first use of
``Analyzer``, ``analyze``, ``default_analyzer`` or ``EmotionClassifier``, so the model tooling and the
batch pipeline pay for the serving runtimes only when they use them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from emotion.errors import (
    CorruptImageError,
    EmotionError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageError,
    ModelError,
)
from emotion.labels import EMOTIONS

if TYPE_CHECKING:
    from emotion.classifier import EmotionClassifier
    from emotion.pipeline import Analyzer, analyze, default_analyzer

#: Names re-exported on first use, and the module each comes from.
_LAZY = {
    "Analyzer": "emotion.pipeline",
    "analyze": "emotion.pipeline",
    "default_analyzer": "emotion.pipeline",
    "EmotionClassifier": "emotion.classifier",
}

__all__ = [
    "EMOTIONS",
    "Analyzer",
    "CorruptImageError",
    "EmotionClassifier",
    "EmotionError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "InvalidImageError",
    "ModelError",
    "analyze",
    "default_analyzer",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'emotion' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
