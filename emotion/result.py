"""The documents the service answers with, as typed values: a result, each face, the image, the model, the
source, and an error. ``to_json()`` is the one place each becomes JSON (and bytes become base64).

The published contract is ``result.schema.json`` and ``error.schema.json``; ``tests/test_result_types.py``
holds these types and those schemas equal, field for field.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from emotion.errors import EmotionError, ErrorCode
from emotion.geometry import Box

#: How a face was found: by the detector, or the whole image when it found none.
DetectionKind = Literal["face", "whole_image"]


@dataclass(frozen=True)
class Face:
    """One face: where, how it was found, how sure the detector is (None for the whole image), and the
    probability of each emotion (in ``EMOTIONS`` order) with the most likely one."""

    box: Box
    detection: DetectionKind
    detection_score: float | None
    emotions: Mapping[str, float]
    dominant_emotion: str

    def to_json(self) -> dict[str, Any]:
        return {
            "box": self.box.to_json(),
            "detection": self.detection,
            "detection_score": self.detection_score,
            "emotions": dict(self.emotions),
            "dominant_emotion": self.dominant_emotion,
        }


@dataclass(frozen=True)
class ImageInfo:
    """The upright (EXIF-corrected) image's size in pixels and the format its signature names."""

    width: int
    height: int
    format: str

    def to_json(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "format": self.format}


@dataclass(frozen=True)
class ModelRef:
    """Which model answered: a result names it so a re-run after a model change can tell stale results."""

    name: str
    version: str
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class Preview:
    """The annotated photo as JPEG bytes; base64 only in JSON."""

    jpeg: bytes
    mime_type: Literal["image/jpeg"] = "image/jpeg"

    def to_json(self) -> dict[str, Any]:
        return {"mime_type": self.mime_type, "base64": base64.b64encode(self.jpeg).decode("ascii")}


@dataclass(frozen=True)
class Timing:
    """Milliseconds spent in each step of one analysis."""

    decode: float
    detect: float
    classify: float
    total: float

    def to_json(self) -> dict[str, Any]:
        return {"decode": self.decode, "detect": self.detect, "classify": self.classify, "total": self.total}


@dataclass(frozen=True)
class ObjectSource:
    """A Cloud Storage object at the generation that was analyzed (a decimal string in JSON: int64)."""

    bucket: str
    name: str
    generation: int

    def to_json(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "name": self.name, "generation": str(self.generation)}


@dataclass(frozen=True)
class FileSource:
    """A local file (the batch pipeline): its path, size and modification time in ns (a string in JSON)."""

    path: str
    size: int
    mtime_ns: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "mtime_ns": str(self.mtime_ns)}


Source = ObjectSource | FileSource


@dataclass(frozen=True)
class Result:
    """What one analysis found, largest face first; stored results also name their ``source``."""

    faces: tuple[Face, ...]
    image: ImageInfo
    model: ModelRef
    timing_ms: Timing
    preview: Preview | None = None
    source: Source | None = None

    @property
    def dominant_emotion(self) -> str | None:
        """That of the largest face; None when there is no face."""
        return self.faces[0].dominant_emotion if self.faces else None

    def with_source(self, source: Source) -> Result:
        return dataclasses.replace(self, source=source)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "faces": [face.to_json() for face in self.faces],
            "dominant_emotion": self.dominant_emotion,
            "image": self.image.to_json(),
        }
        if self.preview is not None:
            body["preview"] = self.preview.to_json()
        body["model"] = self.model.to_json()
        body["timing_ms"] = self.timing_ms.to_json()
        if self.source is not None:
            body["source"] = self.source.to_json()
        return body


@dataclass(frozen=True)
class Failure:
    """An error: the body of every 4xx/5xx answer, and the document stored for a photo that cannot be
    analyzed. The one place an error body is built."""

    code: ErrorCode
    message: str
    source: Source | None = None

    @classmethod
    def of(cls, error: EmotionError) -> Failure:
        """The error a typed library error stands for (its stable ``code`` and its message)."""
        return cls(error.code, str(error))

    def with_source(self, source: Source) -> Failure:
        return dataclasses.replace(self, source=source)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": {"code": self.code, "message": self.message}}
        if self.source is not None:
            body["source"] = self.source.to_json()
        return body


#: What a stored document holds: a result or an error.
Outcome = Result | Failure
