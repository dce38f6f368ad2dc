"""Emotion Detector: find the faces in a photo and say how likely each shows each of seven emotions."""

from emotion.analyze import Analyzer, analyze, default_analyzer
from emotion.classifier import EmotionClassifier
from emotion.errors import (
    CorruptImageError,
    EmotionError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageError,
    ModelError,
)
from emotion.labels import EMOTIONS

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
