"""The Cloud Storage edge: analyze an uploaded object once and store its result as JSON beside it.

Every decision is a pure function of what was read (``screen``, ``result_name``, ``judge_stored``,
``inflate``, ...), unit-tested without a server; ``handle_event`` is the thin I/O around them and logs
each outcome. An event either ends in a logged outcome (a result, an error result or a skip) and is
acknowledged, or raises for a fault a retry can fix (storage unavailable, a precondition race lost
too often). Whatever an uploader controls (name, bytes, metadata, encoding, content type) cannot
make every delivery fail: a delivery that dies or raises is counted, and after ``MAX_ATTEMPTS`` the
object gets an error result instead of another try.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, BinaryIO, Protocol, cast

from google.api_core import exceptions as gexc
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from emotion.config import Settings
from emotion.errors import CorruptImageError, EmotionError, ImageTooLargeError
from emotion.result import Failure, ObjectSource, Outcome, Result

log = logging.getLogger("emotion.gcs")

#: The only event type analyzed; every other type is acknowledged and logged.
FINALIZED = "google.cloud.storage.object.v1.finalized"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
#: Content types that say nothing about the bytes; for these the object's name decides.
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
#: Cloud Storage's limit on an object name, in bytes of UTF-8 (https://cloud.google.com/storage/docs/objects).
MAX_NAME_BYTES = 1024
#: Hex digits of SHA-256 that stand for the cut part of a result name too long to keep whole.
NAME_HASH_HEX = 32
RESULT_SUFFIX = ".json"
#: Attempt markers live here, under the results prefix (so they are never analyzed).
ATTEMPTS_FOLDER = ".attempts/"
#: Deliveries that may die (crash, timeout) or raise for one object generation before it gets an error result.
MAX_ATTEMPTS = 2
#: Precondition races retried in-process before the event fails (and the platform redelivers it).
WRITE_ROUNDS = 4
GENERATION_KEY = "source-generation"
ATTEMPTS_KEY = "attempts"
#: Cloud Storage generations are positive int64 values.
MAX_GENERATION = 2**63 - 1
#: Bucket names: 3-222 characters of lower-case letters, digits, '-', '_' and '.', starting and ending
#: with a letter or digit (https://cloud.google.com/storage/docs/buckets#naming).
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_DECIMAL = re.compile(r"[0-9]{1,19}")
#: Storage calls retry transient failures this long; past it the event fails and the platform redelivers.
STORAGE_RETRY = DEFAULT_RETRY.with_timeout(30.0)


class MalformedEventError(ValueError):
    """The event payload is not a storage object event; it is logged and acknowledged, never retried."""


class StorageRaceError(RuntimeError):
    """Concurrent deliveries won every precondition race in a row; the event fails and is redelivered."""


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
    def parse(cls, data: Any, event_time: Any) -> ObjectEvent:
        """Read and check the payload; raises ``MalformedEventError`` for anything Cloud Storage never sends."""
        if not isinstance(data, dict):
            raise MalformedEventError("the event data is not a JSON object")
        bucket, name = data.get("bucket"), data.get("name")
        if not isinstance(bucket, str) or not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
            raise MalformedEventError(f"not a bucket name: {str(bucket)[:80]!r}")
        if not isinstance(name, str) or not valid_object_name(name):
            raise MalformedEventError(f"not an object name: {str(name)[:80]!r}")
        content_type = data.get("contentType") or ""
        if not isinstance(content_type, str):
            raise MalformedEventError("contentType is not a string")
        when = _timestamp(event_time) or _timestamp(data.get("timeCreated"))
        if when is None:
            raise MalformedEventError("the event has no readable time")
        return cls(
            bucket=bucket,
            name=name,
            generation=_integer(data.get("generation"), "generation", minimum=1),
            content_type=content_type.split(";")[0].strip().lower(),
            size=_integer(data.get("size", 0), "size", minimum=0),
            time=when,
        )

    def source(self) -> ObjectSource:
        return ObjectSource(self.bucket, self.name, self.generation)


@dataclass(frozen=True)
class StoredResult:
    """What is at the result name: its own generation (for the write precondition) and its source generation.

    ``source_generation`` is None when the metadata is missing or malformed: such a result is stale.
    """

    generation: int
    source_generation: int | None


@dataclass(frozen=True)
class Verdict:
    """What to do about the stored result: write (with ``if_generation_match``) or skip with a message."""

    skip: str | None
    if_generation_match: int = 0
    note: str | None = None


# --- pure decisions --------------------------------------------------------------------------------


def valid_object_name(name: str) -> bool:
    """Cloud Storage's rules: 1-1024 bytes of UTF-8, no CR or LF, not '.' or '..'."""
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape
        return False
    return 0 < len(encoded) <= MAX_NAME_BYTES and "\r" not in name and "\n" not in name and name not in {".", ".."}


def looks_like_image(event: ObjectEvent) -> bool:
    """Trust an ``image/*`` content type; with a generic one, trust the file name's suffix."""
    if event.content_type.startswith("image/"):
        return True
    return event.content_type in GENERIC_TYPES and PurePosixPath(event.name).suffix.lower() in IMAGE_SUFFIXES


def screen(event: ObjectEvent, settings: Settings, now: datetime) -> str | None:
    """Why the event needs no work at all (a skip message), or None when it may need analysis."""
    if (now - event.time).total_seconds() > settings.max_event_age_seconds:
        return "skipped: event too old"
    if event.bucket == results_bucket(event, settings) and event.name.startswith(settings.results_prefix):
        return "skipped: a result object"
    if not looks_like_image(event):
        return "skipped: not an image"
    return None


def results_bucket(event: ObjectEvent, settings: Settings) -> str:
    return settings.results_bucket or event.bucket


def results_folder(event: ObjectEvent, settings: Settings) -> str:
    """``RESULTS_PREFIX`` in the uploads bucket itself; in a separate results bucket, also the source bucket.

    The bucket folder keeps results of ``photo.jpg`` from two upload buckets apart when they share one
    results bucket.
    """
    if results_bucket(event, settings) == event.bucket:
        return settings.results_prefix
    return f"{settings.results_prefix}{event.bucket}/"


def result_name(event: ObjectEvent, settings: Settings) -> str:
    """``folder + name + ".json"``, or, when that is over 1024 bytes, the name cut to fit plus a hash.

    The short form is ``folder + cut + "~" + sha256(name)[:32] + ".json"``: deterministic, and it sorts
    beside its source because ``cut`` is the longest prefix of the name that fits (on a character
    boundary). The result itself records the full name in ``source.name``.
    """
    folder = results_folder(event, settings)
    whole = folder + event.name + RESULT_SUFFIX
    if len(whole.encode("utf-8")) <= MAX_NAME_BYTES:
        return whole
    tail = "~" + hashlib.sha256(event.name.encode("utf-8")).hexdigest()[:NAME_HASH_HEX] + RESULT_SUFFIX
    room = max(0, MAX_NAME_BYTES - len((folder + tail).encode("utf-8")))
    cut = event.name.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return folder + cut + tail


def marker_name(event: ObjectEvent, settings: Settings) -> str:
    """Where the attempts at one object generation are counted: a short, fixed-length name."""
    identity = hashlib.sha256(f"{event.bucket}/{event.name}".encode()).hexdigest()[:NAME_HASH_HEX]
    return f"{settings.results_prefix}{ATTEMPTS_FOLDER}{identity}.{event.generation}"


def parse_count(value: Any) -> int | None:
    """A metadata value as a non-negative int64, or None when it is missing or malformed."""
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        return None
    number = int(value)
    return number if number <= MAX_GENERATION else None


def needs_live_generation(generation: int, stored: StoredResult | None) -> bool:
    """A stored result claiming a newer generation is believed only if the source has reached it."""
    return stored is not None and stored.source_generation is not None and stored.source_generation > generation


def judge_stored(generation: int, stored: StoredResult | None, live_generation: int | None) -> Verdict:
    """Whether a result for ``generation`` should be written over what is stored.

    ``live_generation`` is the source object's current generation (None when it is gone or was not
    looked up). Missing or malformed metadata is stale. A claimed generation the source never reached
    is planted (anyone who can write the results folder can write one) and is replaced, so it can hold
    back no later result.
    """
    if stored is None:
        return Verdict(None, 0)
    claimed = stored.source_generation
    if claimed is None:
        return Verdict(None, stored.generation, "replacing a result with malformed source metadata")
    if claimed == generation:
        return Verdict("skipped: result already stored")
    if claimed < generation:
        return Verdict(None, stored.generation)
    if live_generation is not None and claimed > live_generation:
        return Verdict(None, stored.generation, "replacing a result that claims a generation the source never had")
    return Verdict("skipped: a newer generation's result is stored")


def inflate(data: bytes, encoding: str | None, limit: int) -> bytes:
    """The object's bytes, gunzipped under ``limit`` when Cloud Storage served them gzip-encoded.

    Bytes labelled gzip that are not gzip (a mislabelled JPEG) are taken as they are.
    """
    if (encoding or "").strip().lower() != "gzip" or not data.startswith(b"\x1f\x8b"):
        return data
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise CorruptImageError(f"the object's gzip encoding is damaged: {exc}") from None
    if len(out) > limit:
        raise ImageTooLargeError(f"the object inflates to more than {limit} bytes; the limit is {limit}")
    if not inflater.eof:
        raise CorruptImageError("the object's gzip encoding is truncated")
    return out


def gave_up(attempts: int) -> Failure:
    """The error result of a generation whose analysis failed ``attempts`` times."""
    return Failure(
        "internal",
        f"the analysis failed {attempts} times (a crash, a timeout or an error); this generation is not tried again",
    )


# --- the I/O shell ---------------------------------------------------------------------------------


class Analyzes(Protocol):
    """What an event needs of an analyzer (``pipeline.Analyzer``): its settings, and the result for an
    object's bytes. Tests hand in analyzers of their own that answer without the model."""

    settings: Settings

    def analyze(self, data: bytes, /) -> Result: ...


def handle_delivery(
    event_type: Any,
    event_time: Any,
    event_id: Any,
    data: Any,
    analyzer: Analyzes,
    make_client: Callable[[], storage.Client],
) -> str:
    """One CloudEvent delivery: only ``FINALIZED`` is analyzed; malformed events are logged and dropped."""
    if event_type != FINALIZED:
        return _outcome("skipped: not a finalized event", {"type": str(event_type)[:200], "event_id": event_id})
    try:
        event = ObjectEvent.parse(data, event_time)
    except MalformedEventError as exc:
        return _outcome("dropped a malformed event", {"error": str(exc), "event_id": event_id}, logging.ERROR)
    return handle_event(event, analyzer, make_client())


def handle_event(event: ObjectEvent, analyzer: Analyzes, client: storage.Client, *, now: datetime | None = None) -> str:
    """Process one event and say what happened.

    Raises for what a retry may fix (storage errors, lost races); any failure after screening (an
    unexpected exception, a crash, a timeout) is counted by the attempt marker before the retry.
    """
    settings = analyzer.settings
    fields: dict[str, Any] = {"bucket": event.bucket, "object": event.name, "generation": event.generation}
    skip = screen(event, settings, now or datetime.now(UTC))
    if skip:
        return _outcome(skip, fields | {"content_type": event.content_type})

    results = client.bucket(results_bucket(event, settings))
    target = result_name(event, settings)
    fields |= {"results_bucket": results.name, "result": target}
    verdict = _judge(client, results, target, event)
    if verdict.skip:
        return _outcome(verdict.skip, fields)
    if verdict.note:
        log.warning(verdict.note, extra=fields)

    marker = marker_name(event, settings)
    attempts, marker_generation = _read_attempts(results, marker)
    limit = settings.max_image_bytes
    if attempts >= MAX_ATTEMPTS:
        result: Outcome = gave_up(attempts)
        message = "error result stored: gave up"
        fields["attempts"] = attempts
    elif event.size > limit:  # refused without a download (the size is what Cloud Storage stored)
        result = Failure(ImageTooLargeError.code, f"the object is {event.size} bytes; the limit is {limit}")
        message = "error result stored"
    else:
        _count_attempt(results, marker, attempts, marker_generation)  # from here a crash, timeout or error counts
        analyzed = _analyze(client, event, analyzer)
        if analyzed is None:
            _forget_attempts(results, marker)
            return _outcome("skipped: object no longer exists", fields)
        result, message = analyzed, "error result stored" if isinstance(analyzed, Failure) else "result stored"
    message = _store(client, results, target, event, verdict, result.with_source(event.source()), message)
    _forget_attempts(results, marker)
    if isinstance(result, Failure):
        fields["code"] = result.code
    return _outcome(message, fields, logging.ERROR if message.endswith("gave up") else logging.INFO)


def _analyze(client: storage.Client, event: ObjectEvent, analyzer: Analyzes) -> Outcome | None:
    """The result or error result for the event's object; None when that generation is gone."""
    try:
        data = _download(client, event, analyzer.settings.max_image_bytes)
    except gexc.NotFound:
        return None
    except EmotionError as exc:
        return Failure.of(exc)
    try:
        return analyzer.analyze(data)
    except EmotionError as exc:
        return Failure.of(exc)


def _judge(client: storage.Client, results: storage.Bucket, target: str, event: ObjectEvent) -> Verdict:
    stored = _read_stored(results.blob(target))
    live = _live_generation(client, event) if needs_live_generation(event.generation, stored) else None
    return judge_stored(event.generation, stored, live)


def _read_stored(blob: storage.Blob) -> StoredResult | None:
    """The stored result's generation and the source generation its metadata records, or None."""
    try:
        blob.reload(retry=STORAGE_RETRY)
    except gexc.NotFound:
        return None
    source_generation = parse_count((blob.metadata or {}).get(GENERATION_KEY))
    return StoredResult(int(blob.generation or 0), source_generation or None)


def _live_generation(client: storage.Client, event: ObjectEvent) -> int | None:
    live = client.bucket(event.bucket).get_blob(event.name, retry=STORAGE_RETRY)
    return int(live.generation) if live is not None and live.generation else None


def _read_attempts(results: storage.Bucket, name: str) -> tuple[int, int]:
    """Attempts counted so far for this object generation, and the marker's generation (0: none)."""
    marker = results.blob(name)  # a fresh blob each time: a reloaded one stays pinned to its generation
    try:
        marker.reload(retry=STORAGE_RETRY)
    except gexc.NotFound:
        return 0, 0
    return parse_count((marker.metadata or {}).get(ATTEMPTS_KEY)) or 0, int(marker.generation or 0)


def _forget_attempts(results: storage.Bucket, name: str) -> None:
    with contextlib.suppress(gexc.NotFound):
        results.blob(name).delete(retry=STORAGE_RETRY)


def _count_attempt(results: storage.Bucket, name: str, attempts: int, generation: int) -> None:
    """Record one more attempt before the download, so a delivery that dies or raises still counts."""
    for _ in range(WRITE_ROUNDS):
        marker = results.blob(name)
        marker.metadata = {ATTEMPTS_KEY: str(attempts + 1)}
        try:
            marker.upload_from_string(
                b"", content_type="text/plain", if_generation_match=generation, retry=STORAGE_RETRY
            )
            return
        except gexc.PreconditionFailed:  # a concurrent delivery counted too: count on top of it
            attempts, generation = _read_attempts(results, name)
    raise StorageRaceError("could not record the attempt: too many concurrent deliveries")


class _CappedSink:
    """A write-only buffer that refuses more than ``limit`` bytes, so a download stops at the cap."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0

    def write(self, chunk: bytes) -> int:
        self.size += len(chunk)
        if self.size > self.limit:
            raise ImageTooLargeError(f"the object is over the limit of {self.limit} bytes")
        self.chunks.append(bytes(chunk))
        return len(chunk)

    def value(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def _download(client: storage.Client, event: ObjectEvent, limit: int) -> bytes:
    """The event's generation as stored, at most ``limit`` bytes received, then inflated under ``limit``.

    ``raw_download`` keeps gzip-encoded bytes as Cloud Storage stored them (the client sends
    ``Accept-Encoding: gzip``, so there is no transcoding either); the range asks for one byte more
    than the limit, and the sink stops the transfer there even if the range were ignored.
    """
    blob = client.bucket(event.bucket).blob(event.name, generation=event.generation)
    sink = _CappedSink(limit)
    blob.download_to_file(
        cast(BinaryIO, sink), start=0, end=limit, raw_download=True, checksum=None, retry=STORAGE_RETRY
    )
    return inflate(sink.value(), blob.content_encoding, limit)


def _store(
    client: storage.Client,
    results: storage.Bucket,
    target: str,
    event: ObjectEvent,
    verdict: Verdict,
    result: Outcome,
    message: str,
) -> str:
    """Write the result under the verdict's precondition; on a lost race, judge again and retry."""
    body = json.dumps(result.to_json())
    for _ in range(WRITE_ROUNDS):
        blob = results.blob(target)
        blob.metadata = {GENERATION_KEY: str(event.generation)}
        try:
            blob.upload_from_string(
                body,
                content_type="application/json",
                if_generation_match=verdict.if_generation_match,
                retry=STORAGE_RETRY,
            )
            return message
        except gexc.PreconditionFailed:
            verdict = _judge(client, results, target, event)
            if verdict.skip:
                return "skipped: result stored by a concurrent delivery"
    raise StorageRaceError("could not store the result: too many concurrent writers")


def _timestamp(value: Any) -> datetime | None:
    """An RFC 3339 time (naive ones taken as UTC), or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _integer(value: Any, field: str, *, minimum: int) -> int:
    """A decimal field of the event (Cloud Storage sends them as strings); malformed ones fail parsing."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    number = parse_count(text)
    if number is None or number < minimum:
        raise MalformedEventError(f"{field} is not an integer >= {minimum}: {str(value)[:40]!r}")
    return number


def _outcome(message: str, fields: dict[str, Any], level: int = logging.INFO) -> str:
    log.log(level, message, extra=fields)
    return message
