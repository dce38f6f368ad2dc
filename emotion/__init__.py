"""Emotion Detector: find the faces in a photo and say how likely each shows each of seven emotions."""

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
from emotion.pipeline import Analyzer, analyze, default_analyzer

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
