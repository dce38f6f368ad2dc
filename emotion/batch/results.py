"""Per photo: skip it when its result is current, else analyze it and store the result; and the summary row.

The result document is the storage function's (``emotion/result.schema.json``, or the error body of
``emotion/error.schema.json``) with ``source`` naming what was analyzed. No Beam here: the pipeline's DoFn
calls ``process``, and the tests run it against the storage emulator.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emotion.batch.photos import Location, Photo, read_photo
from emotion.bucket_events import GENERATION_KEY, STORAGE_RETRY
from emotion.errors import EmotionError, ImageTooLargeError
from emotion.labels import EMOTIONS
from emotion.pipeline import Analyzer
from emotion.result import Failure, Outcome

if TYPE_CHECKING:
    from google.cloud import storage

#: What ``process`` says happened to a photo; the pipeline counts each.
ANALYZED, FAILED, SKIPPED, GONE = "analyzed", "failed", "skipped", "gone"

#: The summary's columns (one JSON line, or one BigQuery row, per photo) with their BigQuery types.
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "STRING"),
    ("source", "STRING"),
    ("status", "STRING"),
    ("faces", "INTEGER"),
    ("detection", "STRING"),
    ("dominant_emotion", "STRING"),
    *((emotion, "FLOAT") for emotion in EMOTIONS),
    ("error_code", "STRING"),
)


def bigquery_schema() -> str:
    """The summary columns as a ``WriteToBigQuery`` schema string (every column nullable)."""
    return ",".join(f"{name}:{kind}" for name, kind in SUMMARY_COLUMNS)


def summary_row(photo: Photo, status: str, result: Outcome | None = None) -> dict[str, Any]:
    """One summary line: face count, and the dominant emotion and probabilities of the largest face."""
    row: dict[str, Any] = dict.fromkeys(name for name, _ in SUMMARY_COLUMNS)
    row |= {"name": photo.relative, "source": photo.uri, "status": status}
    if result is None:
        return row
    if isinstance(result, Failure):
        row["error_code"] = result.code
        return row
    row["faces"] = sum(face.detection == "face" for face in result.faces)
    if result.faces:
        largest = result.faces[0]
        row |= {"detection": largest.detection, "dominant_emotion": largest.dominant_emotion}
        row |= largest.emotions
    return row


@dataclass
class Stored:
    """What the output holds for a photo: whether its result is current, and the result object's own
    generation (Cloud Storage; None when there is none), for a write that cannot clobber a concurrent one."""

    current: bool
    generation: int | None = None


class LocalResults:
    """Results as files ``DST/<relative>.json``; current when its ``source`` is the photo's (path, size, mtime)."""

    def __init__(self, dst: Location) -> None:
        self.root = Path(dst.base)

    def path(self, photo: Photo) -> Path:
        return self.root / (photo.relative + ".json")

    def stored(self, photo: Photo) -> Stored:
        try:
            source = json.loads(self.path(photo).read_bytes()).get("source")
        except (OSError, ValueError, AttributeError):  # none yet, or a damaged one: do it again
            return Stored(False)
        return Stored(source == photo.source().to_json())

    def write(self, photo: Photo, document: Outcome, stored: Stored) -> bool:
        """Write atomically (a crash never leaves half a result that a re-run would take for done)."""
        target = self.path(photo)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(document.to_json(), out)
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise
        return True


class GcsResults:
    """Result objects ``DST/<relative>.json`` written as the storage function writes them: the photo's
    generation in the ``source-generation`` metadata, and a generation precondition on the write."""

    def __init__(self, dst: Location, client: storage.Client) -> None:
        assert dst.bucket is not None
        self.bucket = client.bucket(dst.bucket)
        self.prefix = dst.base

    def _blob(self, photo: Photo) -> storage.Blob:
        return self.bucket.blob(self.prefix + photo.relative + ".json")

    def stored(self, photo: Photo) -> Stored:
        from google.api_core import exceptions as gexc

        blob = self._blob(photo)
        try:
            blob.reload(retry=STORAGE_RETRY)
        except gexc.NotFound:
            return Stored(False)
        recorded = int((blob.metadata or {}).get(GENERATION_KEY, -1))
        return Stored(recorded >= photo.version, blob.generation)

    def write(self, photo: Photo, document: Outcome, stored: Stored) -> bool:
        """False when another writer (the storage function, a retried bundle) stored a result first."""
        from google.api_core import exceptions as gexc

        blob = self._blob(photo)
        blob.metadata = {GENERATION_KEY: str(photo.version)}
        try:
            blob.upload_from_string(
                json.dumps(document.to_json()),
                content_type="application/json",
                if_generation_match=stored.generation or 0,
                retry=STORAGE_RETRY,
            )
        except gexc.PreconditionFailed:
            return False
        return True


Results = LocalResults | GcsResults


def open_results(dst: Location, client: storage.Client | None) -> Results:
    if dst.bucket is None:
        return LocalResults(dst)
    assert client is not None, "writing to a bucket needs a storage client"
    return GcsResults(dst, client)


def analyze_photo(photo: Photo, analyzer: Analyzer, client: storage.Client | None, *, previews: bool) -> Outcome:
    """The result document; an image that cannot be analyzed gets the error body, as in the storage function.
    Raises ``FileNotFoundError`` when the photo is gone, and storage errors that a retry may fix."""
    limit = analyzer.settings.max_image_bytes
    try:
        if photo.size > limit:  # refused before reading it, like the storage function
            raise ImageTooLargeError(f"the file is {photo.size} bytes; the limit is {limit}")
        result: Outcome = analyzer.analyze(read_photo(photo, limit, client), preview=previews)
    except EmotionError as exc:
        result = Failure.of(exc)
    except FileNotFoundError:
        raise
    except OSError as exc:  # a local file we may not read: say so in its result, go on with the others
        result = Failure("unreadable_file", f"{type(exc).__name__}: {exc.strerror or exc}")
    return result.with_source(photo.source())


def process(
    photo: Photo,
    analyzer: Analyzer,
    results: Results,
    client: storage.Client | None,
    *,
    overwrite: bool,
    previews: bool,
) -> tuple[dict[str, Any], Outcome | None]:
    """Do one photo: its summary row, and the document stored (None when none was)."""
    stored = results.stored(photo)
    if stored.current and not overwrite:
        return summary_row(photo, SKIPPED), None
    try:
        document = analyze_photo(photo, analyzer, client, previews=previews)
    except FileNotFoundError:
        return summary_row(photo, GONE), None
    if not results.write(photo, document, stored):
        return summary_row(photo, SKIPPED), None
    return summary_row(photo, FAILED if isinstance(document, Failure) else ANALYZED, document), document
