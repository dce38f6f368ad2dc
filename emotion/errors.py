"""Typed errors of the library; the entry points map each one to a status code and a stable ``code``."""

from __future__ import annotations

from typing import ClassVar, Literal

#: Every ``error.code`` a client can get (the enum of ``error.schema.json``).
ErrorCode = Literal[
    "bad_request",
    "method_not_allowed",
    "unsupported_media_type",
    "unsupported_image",
    "corrupt_image",
    "image_too_small",
    "image_too_large",
    "model_error",
    "internal",
    "unreadable_file",
]


class EmotionError(Exception):
    """Base of every error the library raises on purpose; ``code`` is stable for clients (a subclass
    without its own code is our fault: ``internal``)."""

    code: ClassVar[ErrorCode] = "internal"


class InvalidImageError(EmotionError):
    """The bytes are not an image in a supported format."""

    code = "unsupported_image"


class CorruptImageError(EmotionError):
    """The bytes look like a supported image but cannot be decoded (truncated, damaged, empty)."""

    code = "corrupt_image"


class ImageTooSmallError(EmotionError):
    """The image is too small to hold a face."""

    code = "image_too_small"


class ImageTooLargeError(EmotionError):
    """The file or its declared pixel count is over the configured limit."""

    code = "image_too_large"


class ModelError(EmotionError):
    """The model file is missing, unreadable or does not match its description."""

    code = "model_error"
