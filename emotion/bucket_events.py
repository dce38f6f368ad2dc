"""The Cloud Storage edge: analyze an uploaded object once and store its result as JSON beside it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from emotion.analyze import Analyzer
from emotion.errors import EmotionError, ImageTooLargeError

log = logging.getLogger("emotion.gcs")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
#: Content types that say nothing about the bytes; for these the object's name decides.
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
GENERATION_KEY = "source-generation"
#: Storage calls retry transient failures this long; past it the event fails and the platform redelivers.
STORAGE_RETRY = DEFAULT_RETRY.with_timeout(30.0)


@dataclass(frozen=True)
class ObjectEvent:
    """The fields of a ``google.cloud.storage.object.v1.finalized`` event that the handler uses."""

    bucket: str
    name: str
    generation: int
    content_type: str
    size: int
    time: datetime

    @classmethod
    def parse(cls, data: Any, event_time: str | None) -> ObjectEvent:
        """Read the event payload; raises ``ValueError`` when it is not a storage object event."""
        if not isinstance(data, dict) or not data.get("bucket") or not data.get("name"):
            raise ValueError("the event data has no bucket and name")
        when = datetime.fromisoformat((event_time or data.get("timeCreated") or "").replace("Z", "+00:00"))
        return cls(
            bucket=str(data["bucket"]),
            name=str(data["name"]),
            generation=int(data.get("generation") or 0),
            content_type=str(data.get("contentType") or "").split(";")[0].strip().lower(),
            size=int(data.get("size") or 0),
            time=when if when.tzinfo else when.replace(tzinfo=UTC),
        )

    def source(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "name": self.name, "generation": str(self.generation)}


def looks_like_image(event: ObjectEvent) -> bool:
    """Trust an ``image/*`` content type; with a generic one, trust the file name's suffix."""
    if event.content_type.startswith("image/"):
        return True
    return event.content_type in GENERIC_TYPES and PurePosixPath(event.name).suffix.lower() in IMAGE_SUFFIXES


def handle_event(event: ObjectEvent, analyzer: Analyzer, client: storage.Client, *, now: datetime | None = None) -> str:
    """Process one event and say what happened; raises only what a retry may fix (storage errors)."""
    settings = analyzer.settings
    results_bucket = settings.results_bucket or event.bucket
    fields = {"bucket": event.bucket, "object": event.name, "generation": event.generation}
    age = ((now or datetime.now(UTC)) - event.time).total_seconds()
    if age > settings.max_event_age_seconds:
        return _outcome("skipped: event too old", fields | {"age_s": round(age)})
    if event.bucket == results_bucket and event.name.startswith(settings.results_prefix):
        return _outcome("skipped: a result object", fields)
    if not looks_like_image(event):
        return _outcome("skipped: not an image", fields | {"content_type": event.content_type})

    target = client.bucket(results_bucket).blob(settings.results_prefix + event.name + ".json")
    existing = _stored_generation(target)
    if existing is not None and existing >= event.generation:
        return _outcome("skipped: result already stored", fields | {"stored_generation": existing})

    if event.size > settings.max_image_bytes:
        result = _error(
            ImageTooLargeError(f"the object is {event.size} bytes; the limit is {settings.max_image_bytes}")
        )
    else:
        try:
            data = (
                client.bucket(event.bucket)
                .blob(event.name, generation=event.generation or None)
                .download_as_bytes(retry=STORAGE_RETRY)
            )
        except gexc.NotFound:
            return _outcome("skipped: object no longer exists", fields)
        try:
            result = analyzer.analyze(data)
        except EmotionError as exc:
            result = _error(exc)
    result["source"] = event.source()

    target.metadata = {GENERATION_KEY: str(event.generation)}
    try:
        target.upload_from_string(
            json.dumps(result),
            content_type="application/json",
            if_generation_match=target.generation if existing is not None else 0,
            retry=STORAGE_RETRY,
        )
    except gexc.PreconditionFailed:
        if (_stored_generation(target) or -1) >= event.generation:
            return _outcome("skipped: result stored by a concurrent delivery", fields)
        raise
    return _outcome("error result stored" if "error" in result else "result stored", fields | {"result": target.name})


def _stored_generation(blob: storage.Blob) -> int | None:
    """The source generation recorded on an existing result object, or None when there is none."""
    try:
        blob.reload(retry=STORAGE_RETRY)
    except gexc.NotFound:
        return None
    return int((blob.metadata or {}).get(GENERATION_KEY, 0))


def _error(exc: EmotionError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": str(exc)}}


def _outcome(message: str, fields: dict[str, Any]) -> str:
    log.info(message, extra=fields)
    return message
